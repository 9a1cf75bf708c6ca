"""Name-to-factory registries, so that configs choose components by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from dmlkit.errors import ConfigError

T = TypeVar("T")


def check_choice(kind: str, name: object, names: Iterable[str], key: str | None = None) -> None:
    """A :class:`ConfigError` naming ``key`` and the choices unless ``name`` is one of ``names``."""
    names = sorted(names)
    if name not in names:
        where = f"{key}: " if key else ""
        raise ConfigError(f"{where}unknown {kind} {name!r}; valid choices: {', '.join(names)}")


def check_keys(
    kind: str,
    name: str,
    params: Iterable[str],
    allowed: Iterable[str],
    injected: Iterable[str] = (),
    key: str | None = None,
) -> None:
    """A :class:`ConfigError` for a user parameter of ``kind`` ``name`` that dmlkit supplies itself
    (``injected``) or that is not ``allowed``, naming the keys under ``key`` and the valid ones."""
    params, allowed = set(params), set(allowed)
    where = f"{key}." if key else ""
    reserved = sorted(params & set(injected))
    if reserved:
        raise ConfigError(
            f"config key(s) {', '.join(where + r for r in reserved)}: supplied by dmlkit from the run "
            f"(the dataset, the model or another section), not settable for {kind} {name!r}; remove them"
        )
    unknown = sorted(params - allowed)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(where + u for u in unknown)} for {kind} {name!r}; "
            f"valid keys: {', '.join(sorted(allowed)) or '(none)'}"
        )


class Registry(Generic[T]):
    """A mapping from names to factories (classes or functions).

    Args:
        kind: What the registry holds ("loss", "dataset", ...); used in error messages.
        injected: Parameter names that dmlkit supplies itself (the embedding size, the number of
            classes, ...): they are passed to the factories that accept them and can never be set
            from a config.

    Example:
        >>> losses = Registry("loss")
        >>> @losses.register("double")
        ... def double(scale: float = 2.0):
        ...     return scale
        >>> losses.build("double", {"scale": 3.0}, key="loss")
        3.0
    """

    def __init__(self, kind: str, injected: Iterable[str] = ()) -> None:
        self.kind = kind
        self.injected = frozenset(injected)
        self._items: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator adding a factory under ``name``."""

        def add(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = factory
            return factory

        return add

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str, key: str | None = None) -> Callable[..., T]:
        """The factory for ``name``; a :class:`ConfigError` naming the choices if unknown."""
        check_choice(self.kind, name, self.names(), key)
        return self._items[name]

    def accepts(self, name: str) -> set[str]:
        """Every keyword parameter of ``name``'s factory, user-settable and injected."""
        sig = inspect.signature(self.get(name))
        return {p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """The keyword parameters a user may set for ``name`` (its signature minus the injected names)."""
        sig = inspect.signature(self.get(name))
        return {
            p.name: p
            for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and not p.name.startswith("_")
            and p.name not in self.injected
        }

    def build(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        key: str | None = None,
        **context: Any,
    ) -> T:
        """Build ``name`` with user ``params`` checked against its signature.

        ``context`` holds values supplied by dmlkit itself (embedding size, number of classes,
        ...); they are passed only if the factory accepts them, and a user parameter of the same
        name wins unless the name is one of :attr:`injected`, which are dmlkit's to derive (setting
        one is an error).
        """
        factory = self.get(name, key)
        allowed = self.parameters(name)
        params = dict(params or {})
        check_keys(self.kind, name, params, allowed, self.injected, key)
        accepted = self.accepts(name)
        extra = {k: v for k, v in context.items() if k in accepted and k not in params}
        try:
            return factory(**params, **extra)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            where = f"{key}: " if key else ""
            raise ConfigError(f"{where}invalid parameters for {self.kind} {name!r}: {exc}") from exc
