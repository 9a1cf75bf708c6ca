"""A training set whose labels fail the test if anything reads them (for the unsupervised methods)."""

from dmlkit.data.base import DMLDataset
from dmlkit.training import trainer as trainer_module


class LabelRaising(DMLDataset):
    """``base``'s images; reading ``labels`` or ``class_names`` fails the test (even past the trainer's view)."""

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
    """Make the trainer's training sets :class:`LabelRaising` for the rest of the test."""
    build = trainer_module.build_data

    def build_data(cfg):
        data = build(cfg)
        data.train, data.train_eval = LabelRaising(data.train), LabelRaising(data.train_eval)
        return data

    monkeypatch.setattr(trainer_module, "build_data", build_data)
