"""Decoding keeps content: high bit depth scaled, not clipped; transparency composited, never blank."""

import numpy as np
import pytest
from PIL import Image

from dmlkit.data.decode import open_image
from dmlkit.errors import DatasetError


def saved(tmp_path, image, name):
    path = tmp_path / name
    image.save(path)
    return path


def test_16_bit_images_keep_their_levels(tmp_path):
    ramp = (np.arange(112, dtype=np.uint16).reshape(8, 14) * 585).astype(np.uint16)  # 0 .. 64935
    path = saved(tmp_path, Image.fromarray(ramp), "deep.png")
    assert Image.open(path).mode.startswith("I")
    clipped = np.asarray(Image.open(path).convert("L"))
    assert len(np.unique(clipped)) <= 2  # what Pillow's convert alone keeps
    out = np.asarray(open_image(path, "L", "deep.png"))
    assert len(np.unique(out)) == 112 and out.max() == round(64935 * 255 / 65535)


def test_32_bit_and_float_images_are_scaled(tmp_path):
    wide = Image.fromarray(np.array([[0, 10**6], [2 * 10**6, 4 * 10**6]], dtype=np.int32))
    assert np.asarray(open_image(saved(tmp_path, wide, "i.tif"), "L", "i")).tolist() == [[0, 64], [128, 255]]
    unit = Image.fromarray(np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32))
    assert np.asarray(open_image(saved(tmp_path, unit, "f.tif"), "L", "f")).tolist() == [[0, 128], [255, 64]]
    rgb = open_image(saved(tmp_path, unit, "f2.tif"), "RGB", "f")
    assert rgb.mode == "RGB" and rgb.getpixel((1, 1)) == (64, 64, 64)


def test_transparency_is_composited_onto_the_background(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red, half of it transparent
    rgba[:2, :, 3] = 255
    path = saved(tmp_path, Image.fromarray(rgba, "RGBA"), "cut.png")
    out = np.asarray(open_image(path, "RGB", "cut.png"))
    assert out[0, 0].tolist() == [200, 0, 0] and out[3, 3].tolist() == [255, 255, 255]
    on_black = np.asarray(open_image(path, "RGB", "cut.png", background=(0, 0, 0)))
    assert on_black[3, 3].tolist() == [0, 0, 0]


def test_content_in_the_alpha_channel_alone_is_refused_not_blanked(tmp_path):
    glyph = np.full((6, 6, 4), 255, dtype=np.uint8)  # white everywhere; the shape is the alpha
    glyph[..., 3] = 0
    glyph[2:4, 1:5, 3] = 255
    path = saved(tmp_path, Image.fromarray(glyph, "RGBA"), "glyph.png")
    assert len(np.unique(np.asarray(Image.open(path).convert("L")))) == 1  # what a plain convert gives: blank
    with pytest.raises(DatasetError, match=r"glyph\.png: its content is in the alpha channel alone.*data\.background"):
        open_image(path, "L", str(path))
    shown = np.asarray(open_image(path, "L", str(path), background=(0, 0, 0)))
    assert shown[2, 2] == 255 and shown[0, 0] == 0
