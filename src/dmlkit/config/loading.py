"""Reading, composing, overriding, type-checking and writing run configurations.

**Composition.** A config file may start with ``base: PATH`` (or a list of paths), relative to
the file itself: the bases are read (recursively), merged in order, and the file's own keys are
merged on top, so that a file holds only what differs from its parents. Mappings merge key by
key; scalars and lists replace. A mapping naming a component (``name: ...``, as the ``loss`` and
``method`` sections and ``loss.miner``) replaces the inherited one whole when it names another
component, since the parameters of one component mean nothing to another; ``loss: null`` removes
an inherited loss section. A ``paper`` section (the published row a config reproduces) always
replaces the inherited one whole: one row's figures never mix with another's.

[decision] This is a small include of our own rather than OmegaConf or Hydra: the schema is
already typed dataclasses with error messages that name the key, the only composition needed is
"inherit and override" with the component rule above, and neither library is installed on the GPU
machines (interpolation and config groups are not needed).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from dmlkit.config.schema import RunConfig
from dmlkit.errors import ConfigError

T = TypeVar("T")

_FLOAT_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_VALID_METRICS = ("recall", "nmi", "f1", "map@r", "r_precision")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{origin.__name__}[{args}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widen to float)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
        return _from_mapping(tp, value, key)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(
                f"config key '{key}': invalid value {value!r}; valid choices: {', '.join(map(str, choices))}"
            )
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {value!r}")
    if origin is list:
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
        return dict(value)
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"config key '{key}': expected null, got {value!r}")
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected true or false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads "1e-4" as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}': expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {key}")  # pragma: no cover


def _from_mapping(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown config key(s) {', '.join(where + u for u in unknown)}; "
            f"valid keys{' under ' + prefix if prefix else ''}: {', '.join(names)}"
        )
    kwargs = {}
    for name in names:
        if name in data:
            key = f"{prefix}.{name}" if prefix else name
            kwargs[name] = _coerce(data[name], hints[name], key)
    return cls(**kwargs)


def _check_semantics(cfg: RunConfig) -> None:
    """Value checks that the types alone cannot express."""
    positive = {
        "data.eval_batch_size": cfg.data.eval_batch_size,
        "trainer.epochs": cfg.trainer.epochs,
        "trainer.eval_every": cfg.trainer.eval_every,
        "trainer.log_every": cfg.trainer.log_every,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config key '{key}': must be >= 1, got {value}")
    for key in ("retrieval_queries", "retrieval_neighbours"):
        if getattr(cfg.eval, key) < 0:
            raise ConfigError(f"config key 'eval.{key}': must be >= 0, got {getattr(cfg.eval, key)}")
    if cfg.data.num_workers < 0:
        raise ConfigError(f"config key 'data.num_workers': must be >= 0, got {cfg.data.num_workers}")
    if cfg.optimizer.lr <= 0:
        raise ConfigError(f"config key 'optimizer.lr': must be > 0, got {cfg.optimizer.lr}")
    if not cfg.eval.recall_at or any(k < 1 for k in cfg.eval.recall_at):
        raise ConfigError(f"config key 'eval.recall_at': expected positive integers, got {cfg.eval.recall_at}")
    bad = [m for m in cfg.eval.metrics if m not in _VALID_METRICS]
    if bad:
        raise ConfigError(
            f"config key 'eval.metrics': unknown metric(s) {bad}; valid choices: {', '.join(_VALID_METRICS)}"
        )
    for section in ("loss", "method"):
        comp = getattr(cfg, section)
        if comp is not None and not isinstance(comp.get("name"), str):
            raise ConfigError(f"config key '{section}.name': required, a registered {section} name")
    for key in ("classes_per_batch", "samples_per_class"):
        value = getattr(cfg.data, key)
        if value is not None and value < 1:
            raise ConfigError(f"config key 'data.{key}': must be >= 1, got {value}")
    if cfg.paper is not None:
        _check_paper(cfg.paper)


def _is_metric_name(name: object) -> bool:
    if not isinstance(name, str):
        return False
    if name.startswith("recall@"):
        return name[len("recall@") :].isdigit() and int(name[len("recall@") :]) > 0
    return name in _VALID_METRICS and name != "recall"


def _check_paper(paper: Mapping[str, Any]) -> None:
    """``paper: {row: <label>, metrics: {<metric>: <fraction>}}``."""
    unknown = sorted(set(paper) - {"row", "metrics"})
    if unknown or not isinstance(paper.get("row"), str) or not isinstance(paper.get("metrics", {}), Mapping):
        raise ConfigError(
            "config key 'paper': expected {row: <label>, metrics: {recall@1: <fraction>, nmi: ..., ...}}"
            + (f"; unknown key(s) {', '.join('paper.' + k for k in unknown)}" if unknown else "")
        )
    for name, value in paper.get("metrics", {}).items():
        if not _is_metric_name(name):
            raise ConfigError(
                f"config key 'paper.metrics.{name}': unknown metric; expected recall@K, nmi, f1, map@r or r_precision"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(
                f"config key 'paper.metrics.{name}': expected a fraction in [0, 1] (a paper's 80.4 % is 0.804), "
                f"got {value!r}"
            )


def config_from_dict(data: Mapping[str, Any]) -> RunConfig:
    """Build and validate a :class:`RunConfig` from a plain mapping."""
    cfg = _from_mapping(RunConfig, data)
    _check_semantics(cfg)
    return cfg


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"a.b=value"`` into the key path and the YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. trainer.epochs=5")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: malformed key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: cannot parse value {raw!r}: {exc}") from exc
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``--set key.sub=value`` overrides to a nested mapping (in place; also returned).

    Setting a component's ``name`` to another component (``--set loss.name=npair``) drops the
    parameters of the one it replaces; overrides that follow it set the new one's.
    """
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: '{'.'.join(path[: i + 1])}' is not a section")
            node = child
        if path[-1] == "name" and "name" in node and node["name"] != value:
            node.clear()  # another component: the old one's parameters mean nothing to it (as with 'base')
        node[path[-1]] = value
    return data


#: Sections a child config replaces whole instead of merging into its parent's.
WHOLE_SECTIONS = ("paper",)


def merge_configs(parent: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """``child`` merged over ``parent`` (see the module docstring); neither is modified.

    Example:
        >>> merge_configs({"loss": {"name": "triplet", "margin": 0.2}, "seed": 0}, {"loss": {"margin": 0.1}})
        {'loss': {'name': 'triplet', 'margin': 0.1}, 'seed': 0}
        >>> merge_configs({"loss": {"name": "triplet", "margin": 0.2}}, {"loss": {"name": "npair"}})
        {'loss': {'name': 'npair'}}
    """
    out = copy.deepcopy(dict(parent))
    for key, value in child.items():
        inherited = out.get(key)
        renamed = isinstance(value, Mapping) and "name" in value and value.get("name") != _name_of(inherited)
        whole = key in WHOLE_SECTIONS  # another paper row: none of the parent's figures carry over
        if isinstance(value, Mapping) and isinstance(inherited, Mapping) and not renamed and not whole:
            out[key] = merge_configs(inherited, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _name_of(section: Any) -> Any:
    return section.get("name") if isinstance(section, Mapping) else None


def read_config_file(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file with its ``base`` files merged in (the result has no ``base`` key).

    Raises:
        ConfigError: A missing or malformed file, a bad ``base`` value or a cycle of bases,
            naming the files involved.
    """
    path = Path(path)
    resolved = path.resolve()
    if resolved in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, resolved))
        raise ConfigError(f"config file {path}: 'base' files include each other: {cycle}")
    data = read_yaml(path)
    bases = data.pop("base", None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not bases or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"config file {path}: 'base' must be a file path or a list of paths, got {bases!r}")
    merged: dict[str, Any] = {}
    for base in bases:
        base_path = path.parent / base
        if not base_path.is_file():
            raise ConfigError(f"config file {path}: base file {base!r} not found (looked for {base_path})")
        merged = merge_configs(merged, read_config_file(base_path, (*_chain, resolved)))
    return merge_configs(merged, data)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML config with its bases (or the defaults when ``path`` is None), apply overrides,
    check the types.

    The values are checked against their components by :func:`dmlkit.assembly.check_config`.
    """
    data = read_config_file(path) if path is not None else {}
    data.setdefault("method", dict(RunConfig().method))  # a YAML method section replaces the default whole
    apply_overrides(data, overrides)
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        if path is None:
            raise
        raise ConfigError(f"{path}: {exc}") from exc


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The resolved config as plain data (written to ``RUN_DIR/config.yaml``)."""
    return dataclasses.asdict(cfg)


def dump_yaml(data: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=None)
