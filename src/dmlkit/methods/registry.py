"""Training methods by name (``method.name`` in a config)."""

from __future__ import annotations

from dmlkit.facts import INJECTED_METHOD_ARGS
from dmlkit.registry import Registry

#: Methods by name. A factory's parameters named in :data:`~dmlkit.facts.INJECTED_METHOD_ARGS`
#: (``loss``, ``model`` and the :class:`~dmlkit.facts.RunFacts` fields) are supplied by the assembly.
METHODS: Registry = Registry("method", injected=INJECTED_METHOD_ARGS)
