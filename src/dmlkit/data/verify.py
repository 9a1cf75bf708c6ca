"""Decoding every image of a dataset up front, and finding identical files (``dmlkit check-data``).

A file that cannot be decoded otherwise stops a run when it is first sampled, maybe hours in;
identical files in a test set (or in both the training and the test classes) inflate or leak
the zero-shot metrics without any error. Decoding runs in ``workers`` processes, with a progress
bar; files are compared by the SHA-1 of their stored bytes.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dmlkit.data.base import DMLDataset
from dmlkit.errors import DatasetError


class _Decoded(Dataset):
    """Item ``i``: ``(i, sha1 of the stored bytes or "", error message or "")``."""

    def __init__(self, dataset: DMLDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, str, str]:
        try:
            digest = hashlib.sha1(self.dataset.raw_bytes(index)).hexdigest()
            self.dataset.load_image(index)
        except DatasetError as exc:
            return index, "", str(exc)
        return index, digest, ""


@dataclass
class Verified:
    """What :func:`verify_images` found in one dataset.

    Attributes:
        name: The dataset's description (split and root).
        listings: Where every item comes from (:meth:`DMLDataset.describe`).
        digests: SHA-1 of every item's stored bytes (``""`` when unreadable).
        errors: ``(listing, message)`` of every item that could not be read or decoded.
    """

    name: str
    listings: list[str]
    digests: list[str]
    errors: list[tuple[str, str]] = field(default_factory=list)


def verify_images(dataset: DMLDataset, name: str, workers: int = 0, progress: bool = True) -> Verified:
    """Read and decode every item of ``dataset``."""
    loader = DataLoader(_Decoded(dataset), batch_size=64, num_workers=workers, collate_fn=list)
    digests, errors = [""] * len(dataset), []
    with tqdm(total=len(dataset), desc=f"checking {name}", disable=not progress, leave=False) as bar:
        for items in loader:
            for index, digest, error in items:
                digests[index] = digest
                if error:
                    errors.append((dataset.describe(index), error))
            bar.update(len(items))
    return Verified(name, [dataset.describe(i) for i in range(len(dataset))], digests, errors)


def identical_groups(sets: list[Verified]) -> list[list[str]]:
    """Groups of listings (``name: listing``) with identical content, within and across ``sets``."""
    by_digest: dict[str, list[str]] = defaultdict(list)
    for verified in sets:
        for listing, digest in zip(verified.listings, verified.digests, strict=True):
            if digest:
                by_digest[digest].append(f"{verified.name}: {listing}" if len(sets) > 1 else listing)
    return [group for group in by_digest.values() if len(group) > 1]


def identical_problems(train: Verified, test: list[Verified]) -> dict[str, list[list[str]]]:
    """The identical files that make zero-shot metrics wrong: within the test side (they retrieve each
    other), and shared by the training and the test side (test images leaked into training)."""
    mark = f"{train.name}: "
    leaks = [g for g in identical_groups([train, *test]) if any(x.startswith(mark) for x in g)]
    return {
        "identical images in the test side (they retrieve each other)": identical_groups(test),
        "identical images in train and test (a zero-shot leak)": [
            g for g in leaks if not all(x.startswith(mark) for x in g)
        ],
    }
