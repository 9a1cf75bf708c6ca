"""Training methods by name (``method.name`` in a config)."""

from __future__ import annotations

from dmlkit.registry import Registry

METHODS: Registry = Registry("method")
