"""Decoded images in memory (data.cache): the same images, read once, shared by the run's views."""

import numpy as np
import pytest
from PIL import Image

from dmlkit.assembly.data import build_eval_split, build_training_sets
from dmlkit.config import load_config
from dmlkit.data import cache as cache_module
from dmlkit.data.base import ImageFileDataset
from dmlkit.data.cache import DecodedDataset, cached


def files(tmp_path, n=6):
    """``n`` RGBA PNGs of different sizes and content (transparency composited on decoding)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        array = rng.integers(0, 256, size=(8 + i, 10, 4), dtype=np.uint8)
        path = tmp_path / f"{i}.png"
        Image.fromarray(array, "RGBA").save(path)
        paths.append(path)
    return ImageFileDataset(paths, np.arange(n) % 2, ["a", "b"], mode="RGB", name="t")


def test_decoded_images_are_the_images_read_from_the_files(tmp_path):
    source = files(tmp_path).reading(background=(0, 0, 255))
    decoded = DecodedDataset(source, threads=2)
    assert isinstance(decoded.images, list)  # sizes differ: one array per image
    for i in range(len(source)):
        assert np.array_equal(np.asarray(decoded.load_image(i)), np.asarray(source.load_image(i)))
        assert decoded.describe(i) == str(tmp_path / f"{i}.png")
    assert decoded.nbytes == sum(np.asarray(source.load_image(i)).nbytes for i in range(len(source)))
    assert decoded.reading(mode="RGB", background=(0, 0, 255)) is decoded
    gray = decoded.reading(mode="L")  # another mode: read from the files again
    assert not isinstance(gray, DecodedDataset) and gray.load_image(0).mode == "L"


def test_auto_caches_only_what_fits(tmp_path, monkeypatch):
    source = files(tmp_path)
    assert isinstance(cached(source, "auto"), DecodedDataset)
    assert cached(source, "none") is source
    monkeypatch.setattr(cache_module, "AUTO_LIMIT_MB", 1e-4)
    assert cached(source, "auto") is source
    assert isinstance(cached(source, "memory"), DecodedDataset)


def test_a_run_decodes_its_training_images_once_for_both_transforms(tmp_path):
    for i in range(4):
        for j in range(3):
            folder = tmp_path / ("train" if i < 2 else "test") / f"c{i}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((9, 9, 3), 40 * i + j, np.uint8)).save(folder / f"{j}.png")
    overrides = ["data.dataset=folder", f"data.root={tmp_path}", "data.image_size=8"]
    for setting, kind in (("memory", DecodedDataset), ("none", ImageFileDataset)):
        cfg = load_config(None, [*overrides, f"data.cache={setting}"])
        sets = build_training_sets(cfg, hide_labels=False)
        assert isinstance(sets.train, kind) and isinstance(sets.train_eval, kind)
        assert isinstance(build_eval_split(cfg).query, kind)
        if setting == "memory":
            assert sets.train.images is sets.train_eval.images
    with pytest.raises(Exception, match=r"data.cache"):
        load_config(None, [*overrides, "data.cache=disk"])
