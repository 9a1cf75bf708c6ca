"""Decoding image files without losing their content.

Pillow's ``convert("RGB")`` clips what does not fit 8 bits and drops transparency. Here:

* **High bit depth** (16-bit ``I;16*``, 32-bit ``I``, float ``F``) is *scaled* to 8 bits: 16-bit
  values by 255/65535; 32-bit integers the same when they fit 16 bits, else by their own range;
  floats by 255 when they lie in [0, 1], else by their own range. (Pillow reads 16-bit-per-channel
  colour PNGs as 8-bit ``RGB`` itself.)
* **Transparency** (``RGBA``, ``LA``, ``PA``, palette transparency) is composited onto a background
  colour (``data.background``, white by default, the usual backdrop of product and cut-out photos)
  instead of being dropped. An image whose colour channels are uniform and whose content is in
  the alpha channel alone would come out blank: it is refused, naming the file, with the hint to
  set a contrasting background.

Then the image is converted to the dataset's mode (``RGB`` or ``L``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from dmlkit.errors import DatasetError

WHITE = (255, 255, 255)
_HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _to_8bit(img: Image.Image) -> Image.Image:
    """A gray high-bit-depth image scaled (not clipped) to 8 bits."""
    values = np.asarray(img, dtype=np.float64)
    lo, hi = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if img.mode.startswith("I;16") or (img.mode == "I" and lo >= 0 and hi <= 65535):
        lo, hi = 0.0, 65535.0
    elif img.mode == "F" and lo >= 0 and hi <= 1:
        lo, hi = 0.0, 1.0
    scaled = (values - lo) * (255.0 / max(hi - lo, 1e-12))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info)


def _composite(img: Image.Image, background: Sequence[int], source: str) -> Image.Image:
    rgba = img.convert("RGBA")
    alpha = rgba.getchannel("A")
    backdrop = Image.new("RGBA", rgba.size, (*(int(c) for c in background), 255))
    out = Image.alpha_composite(backdrop, rgba).convert("RGB")
    a_lo, a_hi = alpha.getextrema()
    if a_lo != a_hi and all(lo == hi for lo, hi in out.getextrema()):
        raise DatasetError(
            f"image {source}: its content is in the alpha channel alone (the colour channels are uniform), so on "
            f"the background {list(background)} it comes out blank; set data.background to a contrasting colour, "
            "e.g. [0, 0, 0]"
        )
    return out


def to_mode(img: Image.Image, mode: str, source: str, background: Sequence[int] = WHITE) -> Image.Image:
    """``img`` converted to ``mode`` (see the module docstring); errors name ``source``."""
    if img.mode in _HIGH_DEPTH:
        img = _to_8bit(img)
    elif _has_alpha(img):
        img = _composite(img, background, source)
    return img if img.mode == mode else img.convert(mode)


def open_image(data: bytes | Path, mode: str, source: str, background: Sequence[int] = WHITE) -> Image.Image:
    """Decode an image file (a path or its bytes) and convert it to ``mode``; errors name ``source``."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            img.load()
            return to_mode(img, mode, source, background)
    except DatasetError:  # (a FileNotFoundError too) already names the image
        raise
    except FileNotFoundError as exc:
        raise DatasetError(f"image file not found: {source}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"cannot read image {source}: {exc}") from exc
