"""Builders of tiny dataset trees in the official layouts (images written with PIL)."""

import gzip
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat


def write_image(path: Path, mode: str = "RGB", size: int = 12, value: int = 0, fmt: str | None = None) -> Path:
    """A uniform ``size``×``size`` image of ``value`` in ``mode`` (format from the suffix unless ``fmt``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((size, size, 3) if mode == "RGB" else (size, size), value, dtype=np.uint8)
    Image.fromarray(array).convert(mode).save(path, format=fmt)
    return path


# ------------------------------------------------------------------ CUB-200-2011
CUB_CLASSES = (1, 2, 100, 101, 102, 200)


def make_cub(root: Path, per_class: int = 3) -> Path:
    """``root/CUB_200_2011`` with classes 1, 2, 100 (train) and 101, 102, 200 (test).

    Image 1 (class 1) is a grayscale JPEG, as some real CUB images are.
    """
    base = root / "CUB_200_2011"
    images, labels = [], []
    image_id = 0
    for cls in CUB_CLASSES:
        for j in range(per_class):
            image_id += 1
            rel = f"{cls:03d}.Bird_{cls}/Bird_{cls}_{j}.jpg"
            write_image(base / "images" / rel, mode="L" if image_id == 1 else "RGB", value=cls)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {cls}")
    (base / "images.txt").write_text("\n".join(images) + "\n")
    (base / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    return root


@pytest.fixture
def cub_root(tmp_path: Path) -> Path:
    return make_cub(tmp_path / "cub")


# ------------------------------------------------------------------------ Cars196
CARS_FIELDS = ("relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test")


def write_cars_annos(path: Path, rows: list[tuple], fields: tuple[str, ...] = CARS_FIELDS) -> None:
    """``cars_annos.mat`` as in the original release: a 1×N struct array ``annotations``.

    Each field holds a MATLAB value (string ``['car_ims/000001.jpg']``, numbers ``[[v]]``).
    """
    cells = [tuple(np.array([v]) if isinstance(v, str) else np.array([[v]], dtype=np.uint8) for v in r) for r in rows]
    annotations = np.array(cells, dtype=[(f, "O") for f in fields]).reshape(1, -1)
    savemat(path, {"annotations": annotations, "class_names": np.array(["AM General Hummer SUV 2000"], dtype=object)})


CARS_CLASSES = (1, 1, 98, 98, 98, 99, 99, 196, 196)


def make_cars(root: Path) -> Path:
    """Nine images: classes 1 and 98 (train, 5 images), 99 and 196 (test, 4); ``test`` flags mixed."""
    rows = []
    for i, cls in enumerate(CARS_CLASSES, start=1):
        rel = f"car_ims/{i:06d}.jpg"
        write_image(root / rel, value=i)
        rows.append((rel, 1, 2, 10, 11, cls, i % 2))
    write_cars_annos(root / "cars_annos.mat", rows)
    return root


@pytest.fixture
def cars_root(tmp_path: Path) -> Path:
    return make_cars(tmp_path / "cars")


# ------------------------------------------------------------- Stanford Online Products
SOP_CLASSES = {"train": [1, 1, 2, 2, 2, 5, 5], "test": [11318, 11318, 11320, 11320]}


def make_sop(root: Path) -> Path:
    """``Ebay_train.txt`` / ``Ebay_test.txt`` with the official header; JPEGs under ``<super>_final/``."""
    for split, classes in SOP_CLASSES.items():
        lines = ["image_id class_id super_class_id path"]
        for i, cls in enumerate(classes, start=1):
            rel = f"bicycle_final/{cls}_{split}_{i}.JPG"
            write_image(root / rel, fmt="JPEG", value=i)
            lines.append(f"{i} {cls} 1 {rel}")
        (root / f"Ebay_{split}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def sop_root(tmp_path: Path) -> Path:
    return make_sop(tmp_path / "sop")


# ------------------------------------------------------------------------- In-Shop
INSHOP_ROWS = [
    ("id_00000001", "train"),
    ("id_00000001", "train"),
    ("id_00000007", "train"),
    ("id_00000002", "query"),
    ("id_00000002", "gallery"),
    ("id_00000003", "gallery"),
    ("id_00000004", "query"),
    ("id_00000004", "gallery"),
    ("id_00000004", "gallery"),
]


def inshop_lines(rows: list[tuple[str, str]] = INSHOP_ROWS) -> list[str]:
    lines = [str(len(rows)), "image_name item_id evaluation_status"]
    for i, (item, status) in enumerate(rows):
        lines.append(f"img/WOMEN/Dresses/{item}/{i:02d}_1_front.jpg {item} {status}")
    return lines


def make_inshop(root: Path) -> Path:
    """``Eval/list_eval_partition.txt`` (count, header, rows) and the images under ``img/``."""
    lines = inshop_lines()
    for line in lines[2:]:
        write_image(root / line.split()[0])
    (root / "Eval").mkdir(parents=True)
    (root / "Eval" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def inshop_root(tmp_path: Path) -> Path:
    return make_inshop(tmp_path / "inshop")


# ---------------------------------------------------------------------------- MNIST
def write_idx(path: Path, array: np.ndarray, magic: int, compress: bool = True) -> Path:
    """An IDX file: big-endian magic, dimensions, then uint8 data (gzip-compressed if ``compress``)."""
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


def make_mnist(root: Path, folder: str = "", compress: bool = True) -> Path:
    """The four official files: train 20 images (labels 0..9 twice), t10k 10 (0..9 once)."""
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for prefix, n in (("train", 20), ("t10k", 10)):
        images = rng.integers(0, 256, (n, 28, 28))
        images[:, 0, 0] = np.arange(n)  # pixel (0, 0) identifies the image
        write_idx(root / folder / f"{prefix}-images-idx3-ubyte{suffix}", images, 2051, compress)
        write_idx(root / folder / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n) % 10, 2049, compress)
    return root


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    return make_mnist(tmp_path / "mnist")


# ------------------------------------------------------------------------- Omniglot
def make_omniglot_folder(root: Path, folder: str, alphabets: dict[str, int], drawings: int = 2) -> list[Path]:
    """``root/<folder>/<Alphabet>/characterNN/<id>_<rep>.png`` 105×105 1-bit PNGs."""
    paths = []
    for alphabet, characters in alphabets.items():
        for c in range(1, characters + 1):
            for r in range(1, drawings + 1):
                path = root / folder / alphabet / f"character{c:02d}" / f"09{c:02d}_{r:02d}.png"
                paths.append(write_image(path, mode="1", size=105, value=255))
    return paths


def make_omniglot_zip(root: Path, folder: str, alphabets: dict[str, int], scratch: Path) -> Path:
    """``root/<folder>.zip`` with the official internal layout (top folder, directory entries)."""
    paths = make_omniglot_folder(scratch, folder, alphabets)
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(root / f"{folder}.zip", "w") as zf:
        for directory in sorted({p.parent for p in paths} | {p.parent.parent for p in paths} | {scratch / folder}):
            zf.write(directory, directory.relative_to(scratch).as_posix() + "/")
        for path in paths:
            zf.write(path, path.relative_to(scratch).as_posix())
    return root / f"{folder}.zip"


# --------------------------------------------------------------------------- folder
def make_class_folders(root: Path, classes: dict[str, int], ext: str = ".png") -> Path:
    for cls, n in classes.items():
        for j in range(n):
            write_image(root / cls / f"{j}{ext}", value=j)
    return root
