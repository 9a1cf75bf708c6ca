"""Devices, precision and processes of a run: ``trainer.*`` checked by value, and Lightning Fabric built.

:func:`check_trainer` needs no hardware: it checks the values against what Lightning accepts, so
that a config is refused before anything is created (a run directory, worker processes).
:func:`build_fabric` then builds the Fabric, turning Lightning's own errors (an accelerator this
machine does not have, more devices than it has) into a :class:`~dmlkit.errors.ConfigError` that
names the keys.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any

from lightning.fabric import Fabric
from lightning.fabric.accelerators import ACCELERATOR_REGISTRY
from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT_STR
from lightning.fabric.strategies import STRATEGY_REGISTRY

from dmlkit.config.schema import TrainerConfig
from dmlkit.errors import ConfigError
from dmlkit.losses import validate

PRECISIONS: tuple[str, ...] = typing.get_args(_PRECISION_INPUT_STR)


def accelerators() -> list[str]:
    """Valid ``trainer.accelerator`` values."""
    return ["auto", "gpu", *sorted(ACCELERATOR_REGISTRY.available_accelerators())]


def strategies() -> list[str]:
    """Valid ``trainer.strategy`` values."""
    return ["auto", *sorted(STRATEGY_REGISTRY.available_strategies())]


def _check_devices(devices: Any) -> None:
    ok = devices == "auto" or devices == -1
    ok = ok or (isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1)
    ok = ok or (isinstance(devices, list) and bool(devices) and all(isinstance(d, int) and d >= 0 for d in devices))
    if isinstance(devices, str) and devices != "auto":
        parts = [p.strip() for p in devices.split(",") if p.strip()]
        ok = bool(parts) and all(p.isdigit() for p in parts)
    if not ok:
        raise ConfigError(
            "config key 'trainer.devices': expected a number of devices >= 1, -1 (all), 'auto', or device "
            f"indices (a list such as [0, 1] or a string such as '0,1'), got {devices!r}"
        )


def check_trainer(t: TrainerConfig) -> None:
    """Value checks of ``trainer.*`` against what Lightning accepts (no hardware is looked at)."""
    validate.choice("trainer.precision", t.precision, PRECISIONS)
    validate.choice("trainer.accelerator", t.accelerator, accelerators())
    validate.choice("trainer.strategy", t.strategy, strategies())
    _check_devices(t.devices)
    if t.num_nodes < 1:
        raise ConfigError(f"config key 'trainer.num_nodes': must be >= 1, got {t.num_nodes}")
    for key in ("max_steps_per_epoch", "threads"):
        value = getattr(t, key)
        if value is not None and value < 1:
            raise ConfigError(f"config key 'trainer.{key}': must be >= 1 or null, got {value}")
    if t.checkpoint_every_steps < 0:
        raise ConfigError(f"config key 'trainer.checkpoint_every_steps': must be >= 0, got {t.checkpoint_every_steps}")
    if t.grad_clip is not None and t.grad_clip <= 0:
        raise ConfigError(f"config key 'trainer.grad_clip': must be > 0 or null, got {t.grad_clip}")


def build_fabric(
    t: TrainerConfig,
    loggers: Sequence[Any] = (),
    *,
    accelerator: str | None = None,
    devices: int | list[int] | str | None = None,
    precision: str | None = None,
) -> Fabric:
    """The Fabric of ``trainer.*`` (``accelerator``/``devices``/``precision`` override it: evaluation
    of a restored run uses one device). Lightning's errors become ConfigErrors naming the keys."""
    kwargs = {
        "accelerator": accelerator or t.accelerator,
        "devices": devices if devices is not None else t.devices,
        "precision": precision or t.precision,
        "strategy": t.strategy if devices is None else "auto",
        "num_nodes": t.num_nodes if devices is None else 1,
    }
    try:
        return Fabric(**kwargs, loggers=list(loggers))
    except (ValueError, RuntimeError, TypeError, ImportError) as exc:
        given = ", ".join(f"trainer.{k}={v!r}" for k, v in kwargs.items())
        raise ConfigError(f"{given}: Lightning cannot set this up on this machine: {exc}") from exc
