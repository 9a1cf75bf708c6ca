"""Builders of tiny dataset trees in the official layouts."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image(path: Path, mode: str = "RGB", size: int = 12, value: int = 0, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((size, size, 3) if mode == "RGB" else (size, size), value, dtype=np.uint8)
    Image.fromarray(array, mode=mode).save(path, format=fmt)
    return path


@pytest.fixture
def cub_root(tmp_path):
    """CUB_200_2011 with classes 1, 2 (train) and 101, 102 (test); one grayscale JPEG."""
    base = tmp_path / "CUB_200_2011"
    rows, labels = [], []
    image_id = 0
    for cls in (1, 2, 101, 102):
        for j in range(3):
            image_id += 1
            rel = f"{cls:03d}.Bird_{cls}/img_{j}.jpg"
            write_image(base / "images" / rel, mode="L" if (cls, j) == (1, 0) else "RGB", value=cls)
            rows.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {cls}")
    (base / "images.txt").write_text("\n".join(rows) + "\n")
    (base / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    return tmp_path
