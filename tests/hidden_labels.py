"""A training set whose labels fail the test if anything reads them (for the unsupervised methods)."""

import dataclasses

from dmlkit.assembly import data as assembly_data
from dmlkit.data.base import DMLDataset


class LabelRaising(DMLDataset):
    """``base``'s images; reading ``labels`` or ``class_names`` fails the test (even past the run's view)."""

    def __init__(self, base):
        self.base, self.mode, self.transform, self.name = base, base.mode, base.transform, "label-raising"

    @property
    def labels(self):
        raise AssertionError("a training label was read")

    @property
    def class_names(self):
        raise AssertionError("training class names were read")

    def __len__(self):
        return len(self.base)

    def load_image(self, index):
        return self.base.load_image(index)

    def with_transform(self, transform):
        return LabelRaising(self.base.with_transform(transform))


def hide_training_labels(monkeypatch) -> None:
    """Make the training split of every dataset :class:`LabelRaising` for the rest of the test
    (under the run's own label-hiding view, so that anything reaching past it fails)."""
    get_spec = assembly_data.get_dataset_spec

    def get_dataset_spec(name):
        spec = get_spec(name)

        def build(root, split):
            dataset = spec.build(root, split)
            return LabelRaising(dataset) if split == "train" else dataset

        return dataclasses.replace(spec, build=build)

    monkeypatch.setattr(assembly_data, "get_dataset_spec", get_dataset_spec)
