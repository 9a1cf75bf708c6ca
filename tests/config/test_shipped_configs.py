"""Every shipped config passes the dry build by value and holds only what differs from its bases."""

import pytest

from dmlkit.assembly import check_config
from dmlkit.config import config_to_dict, load_config, read_config_file, read_yaml
from paths import CONFIGS, ROOT

RUNNABLE = sorted(p for p in CONFIGS.rglob("*.yaml") if "base" not in p.relative_to(CONFIGS).parts)
BENCHMARK_CONFIGS = sorted((ROOT / "benchmarks").rglob("*.yaml"))


def ids(path):
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", RUNNABLE + BENCHMARK_CONFIGS, ids=ids)
def test_shipped_config_passes_the_dry_build(path):
    resolved = check_config(load_config(path))
    assert resolved.data.image_size is not None  # derived values are recorded


def _leaves(data, prefix=""):
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _lookup(data, dotted):
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return KeyError
        node = node[part]
    return node


def _renamed(own, inherited, dotted):
    """Whether a key lies in a component that names another component than the inherited one."""
    parts = dotted.split(".")
    for i in range(1, len(parts)):
        mine, theirs = _lookup(own, ".".join(parts[:i])), _lookup(inherited, ".".join(parts[:i]))
        if (
            isinstance(mine, dict)
            and "name" in mine
            and (not isinstance(theirs, dict) or theirs.get("name") != mine["name"])
        ):
            return True
    return False


WITH_BASE = [p for p in sorted(CONFIGS.rglob("*.yaml")) if "base" in read_yaml(p)]


@pytest.mark.parametrize("path", WITH_BASE, ids=ids)
def test_a_config_sets_only_what_differs_from_its_bases(path):
    own = read_yaml(path)
    bases = own.pop("base")
    base_file = path.parent / ".bases-of-test.yaml"
    try:  # the composed bases, as the loader merges them
        base_file.write_text(f"base: {bases!r}\n")
        inherited = read_config_file(base_file)
    finally:
        base_file.unlink()
    repeated = [
        key
        for key, value in _leaves(own)
        if not _renamed(own, inherited, key)
        and _lookup(inherited, key) is not KeyError
        and _lookup(inherited, key) == value
    ]
    assert not repeated, f"{ids(path)} repeats inherited values: {repeated}"


def _pairs():
    for path in RUNNABLE:
        if path.name.startswith("dvml_"):
            yield path, path.with_name(path.name[len("dvml_") :]), {"method"}
    yield CONFIGS / "pseudo_label_omniglot.yaml", CONFIGS / "pl_manifold_omniglot.yaml", {"method", "loss"}
    for data in ("omniglot", "mnist"):
        yield CONFIGS / f"{data}_backbone_ce.yaml", CONFIGS / f"intra_batch_{data}.yaml", {"method"}


@pytest.mark.parametrize(("variant", "baseline", "sections"), list(_pairs()), ids=lambda v: getattr(v, "name", ""))
def test_compared_configs_differ_only_in_the_method(variant, baseline, sections):
    a, b = config_to_dict(load_config(variant)), config_to_dict(load_config(baseline))
    differing = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    # each may name its own published row
    assert set(differing) <= sections | {"paper"}, f"{variant.name} vs {baseline.name} differ in {differing}"
