"""Checks of loss, miner and method parameters; each failure is a :class:`ConfigError` naming the key."""

from __future__ import annotations

import math
from collections.abc import Sequence

from dmlkit.errors import ConfigError, NeedsClassesError


def _fail(key: str, expected: str, value: object) -> ConfigError:
    return ConfigError(f"config key '{key}': must be {expected}, got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(key: str, value: float) -> None:
    """A finite ``int`` or ``float`` (not a bool or a string)."""
    if not _is_number(value):
        raise _fail(key, "a number", value)


def at_least(key: str, value: float, low: float = 0.0) -> None:
    """``value >= low``."""
    if not _is_number(value) or value < low:
        raise _fail(key, f">= {low:g}", value)


def positive(key: str, value: float) -> None:
    """``value > 0``."""
    if not _is_number(value) or value <= 0:
        raise _fail(key, "> 0", value)


def greater_than(key: str, value: float, low: float, what: str) -> None:
    """``value > low``, where ``low`` is the value of another key named ``what``."""
    if not _is_number(value) or value <= low:
        raise _fail(key, f"> {what} ({low:g})", value)


def in_open_interval(key: str, value: float, low: float, high: float) -> None:
    """``low < value < high``."""
    if not _is_number(value) or not low < value < high:
        raise _fail(key, f"in ({low:g}, {high:g})", value)


def positive_int(key: str, value: int) -> None:
    """An ``int`` >= 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _fail(key, "an integer >= 1", value)


def non_negative_int(key: str, value: int) -> None:
    """An ``int`` >= 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _fail(key, "an integer >= 0", value)


def flag(key: str, value: bool) -> None:
    """A ``bool`` (YAML ``true``/``false``), not a string or a number."""
    if not isinstance(value, bool):
        raise _fail(key, "true or false", value)


def choice(key: str, value: str, choices: Sequence[str]) -> None:
    """One of ``choices``."""
    if value not in choices:
        raise ConfigError(f"config key '{key}': unknown {value!r}; valid choices: {', '.join(choices)}")


def needs_classes(name: str, num_classes: int, embedding_dim: int | None = None) -> None:
    """Proxy/classifier losses need the number of training classes (and the embedding size)."""
    missing = num_classes < 1 or (embedding_dim is not None and embedding_dim < 1)
    if missing:
        what = "the number of training classes" + (" and the embedding size" if embedding_dim is not None else "")
        raise NeedsClassesError(
            f"loss {name!r} needs {what} (got num_classes={num_classes}"
            + (f", embedding_dim={embedding_dim}" if embedding_dim is not None else "")
            + "); build it with build_loss(name, params, embedding_dim=..., num_classes=...)"
        )
