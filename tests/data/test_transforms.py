import numpy as np
import pytest
import torch
from PIL import Image

from dmlkit.data.transforms import IMAGENET_MEAN, build_transforms
from dmlkit.errors import ConfigError


def test_imagenet_protocol_shapes_and_normalisation():
    image = Image.fromarray(np.full((300, 400, 3), 255, dtype=np.uint8))
    train = build_transforms("train", 224, "RGB")(image)
    evaluation = build_transforms("eval", 224, "RGB")(image)
    assert train.shape == evaluation.shape == (3, 224, 224)
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(evaluation[:, 0, 0], expected, atol=1e-5)


def test_eval_resize_is_256_for_224():
    steps = build_transforms("eval", 224, "RGB").transforms
    assert steps[0].size == 256 and steps[1].size == (224, 224)
    assert build_transforms("eval", 227, "RGB", resize_size=256).transforms[0].size == 256


def test_small_protocol_for_gray_images():
    image = Image.fromarray(np.zeros((8, 8), dtype=np.uint8))
    out = build_transforms("train", 28, "L")(image)
    assert out.shape == (1, 28, 28) and torch.allclose(out, torch.full_like(out, -1.0))
    assert len(build_transforms("train", 28, "L", augment=True).transforms) == 4


def test_bad_options_name_the_key():
    with pytest.raises(ConfigError, match=r"data\.transform\.sclae; valid keys:"):
        build_transforms("train", 28, "L", sclae=(0.1, 1))
    with pytest.raises(ConfigError, match=r"data\.transform\.protocol': invalid value 'fancy'"):
        build_transforms("train", 28, "L", protocol="fancy")
    with pytest.raises(ConfigError, match=r"data\.transform\.mean': expected 1 or 3 values"):
        build_transforms("eval", 224, "RGB", mean=[0.1, 0.2])
