"""Train/eval transforms of the imagenet and small protocols; option checking."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from dmlkit.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms
from dmlkit.errors import ConfigError

WHITE = Image.fromarray(np.full((300, 400, 3), 255, dtype=np.uint8))


def kinds(compose):
    return [type(t) for t in compose.transforms]


def test_imagenet_protocol_steps():
    assert kinds(build_transforms("train", 224, "RGB")) == [
        T.RandomResizedCrop, T.RandomHorizontalFlip, T.ToTensor, T.Normalize,
    ]  # fmt: skip
    assert kinds(build_transforms("eval", 224, "RGB")) == [T.Resize, T.CenterCrop, T.ToTensor, T.Normalize]
    crop = build_transforms("train", 224, "RGB").transforms[0]
    assert crop.scale == (0.08, 1.0) and crop.size == (224, 224)
    assert build_transforms("train", 224, "RGB", scale=[0.16, 1]).transforms[0].scale == (0.16, 1.0)
    assert kinds(build_transforms("train", 224, "RGB", flip=False))[1] is T.ToTensor


def test_imagenet_protocol_shapes_and_normalisation():
    train = build_transforms("train", 224, "RGB")(WHITE)
    evaluation = build_transforms("eval", 224, "RGB")(WHITE)
    assert train.shape == evaluation.shape == (3, 224, 224) and evaluation.dtype == torch.float32
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(evaluation[:, 0, 0], expected, atol=1e-5)
    gray = build_transforms("eval", 96, "L")  # gray photos: channel-averaged statistics
    assert gray.transforms[-1].mean == [pytest.approx(0.449)] and gray(WHITE.convert("L")).shape == (1, 96, 96)


def test_eval_resize_is_256_for_224():
    steps = build_transforms("eval", 224, "RGB").transforms
    assert steps[0].size == 256 and steps[1].size == (224, 224)
    assert build_transforms("eval", 227, "RGB", resize_size=256).transforms[0].size == 256
    assert build_transforms("eval", 112, "RGB").transforms[0].size == 128


def test_small_protocol_for_gray_images():
    image = Image.fromarray(np.zeros((8, 8), dtype=np.uint8))
    out = build_transforms("train", 28, "L")(image)
    assert out.shape == (1, 28, 28) and torch.allclose(out, torch.full_like(out, -1.0))  # (0 - 0.5) / 0.5
    assert kinds(build_transforms("eval", 28, "L")) == [T.Resize, T.ToTensor, T.Normalize]
    assert kinds(build_transforms("train", 28, "L", augment=True))[1] is T.RandomAffine
    assert kinds(build_transforms("eval", 28, "L", augment=True)) == [T.Resize, T.ToTensor, T.Normalize]
    assert build_transforms("eval", 8, "L")(image).shape == (1, 8, 8)


def test_auto_protocol_and_overrides():
    assert (
        kinds(build_transforms("eval", 64, "RGB"))[0] is T.Resize
        and len(build_transforms("eval", 64, "RGB").transforms) == 3
    )
    assert kinds(build_transforms("eval", 65, "RGB"))[1] is T.CenterCrop
    assert kinds(build_transforms("eval", 28, "RGB", protocol="imagenet"))[1] is T.CenterCrop
    norm = build_transforms("eval", 28, "RGB", mean=0.1, std=[0.2, 0.3, 0.4]).transforms[-1]
    assert norm.mean == [0.1, 0.1, 0.1] and norm.std == [0.2, 0.3, 0.4]
    train = build_transforms("train", 32, "RGB", random_erasing=0.5)
    assert isinstance(train.transforms[-1], T.RandomErasing) and train.transforms[-1].p == 0.5
    assert not any(
        isinstance(t, T.RandomErasing) for t in build_transforms("eval", 32, "RGB", random_erasing=0.5).transforms
    )


def test_bad_options_name_the_key():
    with pytest.raises(ConfigError, match=r"data\.transform\.sclae; valid keys:.*random_erasing, ratio, resize_size"):
        build_transforms("train", 28, "L", sclae=(0.1, 1))
    with pytest.raises(ConfigError, match=r"data\.transform\.protocol': invalid value 'fancy'"):
        build_transforms("train", 28, "L", protocol="fancy")
    with pytest.raises(ConfigError, match=r"data\.transform\.mean': expected 1 or 3 numbers"):
        build_transforms("eval", 224, "RGB", mean=[0.1, 0.2])
    with pytest.raises(ConfigError, match=r"data\.transform\.std': values must be > 0"):
        build_transforms("eval", 224, "RGB", std=0)
    with pytest.raises(ConfigError, match=r"data\.transform\.scale': expected \[low, high\]"):
        build_transforms("train", 224, "RGB", scale=(0.5, 1.5))
    with pytest.raises(ConfigError, match=r"data\.transform\.random_erasing': a probability"):
        build_transforms("train", 224, "RGB", random_erasing=2)
    with pytest.raises(ConfigError, match=r"data\.transform\.resize_size': must be >= data\.image_size \(224\)"):
        build_transforms("eval", 224, "RGB", resize_size=200)
    with pytest.raises(ConfigError, match=r"data\.image_size': must be >= 1"):
        build_transforms("eval", 0, "RGB")
    with pytest.raises(ValueError, match="kind must be"):
        build_transforms("test", 28, "L")  # type: ignore[arg-type]
