"""CUB-200-2011 (Wah et al. 2011), zero-shot split of Song et al. 2016: classes 1–100 / 101–200."""

from __future__ import annotations

from pathlib import Path

from dmlkit.data.annotations import read_rows, to_int
from dmlkit.data.base import DatasetSpec, DMLDataset, ImageFileDataset, contiguous_labels
from dmlkit.data.registry import check_split, register_dataset, require_file, require_images, require_root
from dmlkit.errors import DatasetError

TRAIN_CLASSES = range(1, 101)


def build(root: Path | None, split: str) -> DMLDataset:
    check_split(SPEC, split)
    root = require_root(SPEC, root)
    if not (root / "images.txt").is_file():  # ROOT holds CUB_200_2011/ (else ROOT is that folder)
        root = root / "CUB_200_2011"
    images_txt = require_file(SPEC, root / "images.txt")
    labels_txt = require_file(SPEC, root / "image_class_labels.txt")
    paths = {to_int(f[0], images_txt, n, "cub200", "image id"): f[1] for n, f in read_rows(images_txt, 2, "cub200")}
    classes = {
        to_int(f[0], labels_txt, n, "cub200", "image id"): to_int(f[1], labels_txt, n, "cub200", "class id")
        for n, f in read_rows(labels_txt, 2, "cub200")
    }
    missing = sorted(set(paths) ^ set(classes))
    if missing:
        raise DatasetError(f"cub200: image ids {missing[:5]} appear in only one of {images_txt} and {labels_txt}")
    want_train = split == "train"
    ids = [i for i in sorted(paths) if (classes[i] in TRAIN_CLASSES) == want_train]
    labels, names = contiguous_labels([classes[i] for i in ids])
    files = [root / "images" / paths[i] for i in ids]
    require_images(SPEC, files, images_txt)
    return ImageFileDataset(files, labels, names, name=f"cub200/{split}")


SPEC = register_dataset(
    DatasetSpec(
        name="cub200",
        description="CUB-200-2011 birds; train = classes 1-100 (5,864 images), test = 101-200 (5,924)",
        layout=(
            "ROOT/CUB_200_2011/images.txt              <image_id> <relative path>\n"
            "ROOT/CUB_200_2011/image_class_labels.txt  <image_id> <class_id 1..200>\n"
            "ROOT/CUB_200_2011/images/<class folder>/<file>.jpg\n"
            "(ROOT may also be the CUB_200_2011 folder itself)"
        ),
        splits=("train", "test"),
        mode="RGB",
        build=build,
    )
)
