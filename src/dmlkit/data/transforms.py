"""Image transforms of the DML protocol, built with torchvision.

Protocols:

* ``imagenet`` (photos; the papers' protocol): train ``RandomResizedCrop(size, scale)`` +
  horizontal flip; eval ``Resize(resize_size)`` + ``CenterCrop(size)``, with
  ``resize_size = round(size * 256 / 224)`` (256 for 224); ImageNet mean/std (for gray
  images their channel averages). ``scale`` defaults to torchvision's (0.08, 1); STML and
  PL-Manifolds use (0.16, 1).
* ``small`` (8×8 digits, 28×28 MNIST/Omniglot): ``Resize(size)``; train adds, when
  ``augment`` is true, a small random affine (±10°, ±10 % shift); mean/std 0.5.
* ``auto``: ``small`` when ``size <= 64``, else ``imagenet``.

Both protocols end with ``ToTensor`` + ``Normalize`` (float tensors ``C×size×size``) and, in
training, an optional ``RandomErasing(p=random_erasing)``. Options are the keyword arguments
of :func:`build_transforms` (``data.transform`` in a config); any other key is a ConfigError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from torchvision import transforms as T

from dmlkit.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Gray images under the imagenet protocol: the channel averages of the ImageNet statistics.
IMAGENET_GRAY_MEAN = (sum(IMAGENET_MEAN) / 3,)
IMAGENET_GRAY_STD = (sum(IMAGENET_STD) / 3,)

_OPTIONS = {"protocol", "scale", "ratio", "resize_size", "mean", "std", "flip", "augment", "random_erasing"}


def _as_list(values: Any) -> list[Any]:
    return list(values) if isinstance(values, (list, tuple)) else [values]


def _stats(values: Sequence[float] | float | None, default: Sequence[float], channels: int, key: str) -> list[float]:
    """Per-channel mean or std: one value is repeated over the channels."""
    vals = _as_list(default if values is None else values)
    if len(vals) == 1:
        vals = vals * channels
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
    if len(vals) != channels or not numeric:
        raise ConfigError(f"config key 'data.transform.{key}': expected 1 or {channels} numbers, got {vals}")
    if key == "std" and min(vals) <= 0:
        raise ConfigError(f"config key 'data.transform.std': values must be > 0, got {vals}")
    return [float(v) for v in vals]


def _range(values: Sequence[float] | float, key: str, upper: float | None = None) -> tuple[float, float]:
    """A ``(low, high)`` pair with ``0 < low <= high (<= upper)``; a ConfigError naming ``key`` otherwise."""
    vals = _as_list(values)
    ok = len(vals) == 2 and all(isinstance(v, (int, float)) for v in vals)
    ok = ok and 0 < vals[0] <= vals[1] and (upper is None or vals[1] <= upper)
    if not ok:
        bound = f" <= {upper}" if upper is not None else ""
        raise ConfigError(
            f"config key 'data.transform.{key}': expected [low, high] with 0 < low <= high{bound}, got {vals}"
        )
    return float(vals[0]), float(vals[1])


def build_transforms(
    kind: Literal["train", "eval"],
    image_size: int,
    mode: str = "RGB",
    protocol: str = "auto",
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    resize_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    flip: bool = True,
    augment: bool = False,
    random_erasing: float = 0.0,
    **unknown: Any,
) -> T.Compose:
    """The train or eval transform (PIL image -> normalised float tensor).

    Args:
        kind: ``train`` (random augmentation) or ``eval`` (deterministic).
        image_size: Output side length.
        mode: ``RGB`` or ``L``: sets the number of mean/std channels.
        protocol: ``imagenet``, ``small`` or ``auto`` (see the module docstring).
        scale, ratio: RandomResizedCrop ranges (imagenet protocol; defaults (0.08, 1) and (3/4, 4/3)).
        resize_size: Eval resize before the centre crop (imagenet protocol; default
            ``round(image_size * 256 / 224)``).
        mean, std: Normalisation, one value or one per channel (defaults: ImageNet for
            ``imagenet``, 0.5 for ``small``).
        flip: Random horizontal flip in training (imagenet protocol).
        augment: Random affine jitter in training (small protocol; off by default).
        random_erasing: Probability of RandomErasing in training (default 0; Intra-batch uses 0.5).

    Raises:
        ConfigError: An unknown option or an invalid value, naming the ``data.transform`` key.
    """
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join('data.transform.' + k for k in sorted(unknown))}; "
            f"valid keys: {', '.join(sorted(_OPTIONS))}"
        )
    if kind not in ("train", "eval"):
        raise ValueError(f"kind must be 'train' or 'eval', got {kind!r}")
    if image_size < 1:
        raise ConfigError(f"config key 'data.image_size': must be >= 1, got {image_size}")
    if protocol == "auto":
        protocol = "small" if image_size <= 64 else "imagenet"
    if protocol not in ("imagenet", "small"):
        raise ConfigError(
            f"config key 'data.transform.protocol': invalid value {protocol!r}; valid choices: auto, imagenet, small"
        )
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    scale_v = _range(scale, "scale", upper=1.0)
    ratio_v = _range(ratio, "ratio")
    if not 0.0 <= random_erasing <= 1.0:
        raise ConfigError(f"config key 'data.transform.random_erasing': a probability in [0, 1], got {random_erasing}")
    if resize_size is not None and resize_size < image_size:
        raise ConfigError(
            f"config key 'data.transform.resize_size': must be >= data.image_size ({image_size}), got {resize_size}"
        )
    channels = 3 if mode == "RGB" else 1
    steps: list[Any]
    if protocol == "imagenet":
        gray = channels == 1
        mean_v = _stats(mean, IMAGENET_GRAY_MEAN if gray else IMAGENET_MEAN, channels, "mean")
        std_v = _stats(std, IMAGENET_GRAY_STD if gray else IMAGENET_STD, channels, "std")
        if kind == "train":
            steps = [T.RandomResizedCrop(image_size, scale=scale_v, ratio=ratio_v)]
            if flip:
                steps.append(T.RandomHorizontalFlip())
        else:
            resize = resize_size or round(image_size * 256 / 224)
            steps = [T.Resize(resize), T.CenterCrop(image_size)]
    else:
        mean_v = _stats(mean, (0.5,), channels, "mean")
        std_v = _stats(std, (0.5,), channels, "std")
        steps = [T.Resize((image_size, image_size))]
        if kind == "train" and augment:
            steps.append(T.RandomAffine(degrees=10, translate=(0.1, 0.1)))
    steps += [T.ToTensor(), T.Normalize(mean_v, std_v)]
    if kind == "train" and random_erasing > 0:
        steps.append(T.RandomErasing(p=random_erasing))
    return T.Compose(steps)
