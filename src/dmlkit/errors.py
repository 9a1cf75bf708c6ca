"""Exception types raised by dmlkit for bad input.

Every error names the file, key or flag at fault and what was expected, so that
a user can fix the input without reading the source.
"""

from __future__ import annotations


class DmlkitError(Exception):
    """Base class of all dmlkit errors meant for the user."""


class ConfigError(DmlkitError, ValueError):
    """A configuration key or value is unknown or invalid."""


class NeedsClassesError(ConfigError):
    """A loss with per-class parameters (proxies, class weights) was built without training classes."""


class DatasetError(DmlkitError, FileNotFoundError):
    """A dataset root, annotation file or image is missing or malformed."""


class WeightsError(DmlkitError, FileNotFoundError):
    """Pretrained weights were requested but cannot be found or loaded."""


class TrainingError(DmlkitError, RuntimeError):
    """Training cannot go on (for example a non-finite loss)."""


class Stopped(BaseException):
    """A termination signal (SIGTERM, SIGHUP) reached a run; raised so that it records how it ended.

    A ``BaseException``, like ``KeyboardInterrupt``, so that ``except Exception`` does not swallow it.
    """

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.name}")
