"""docs/losses.md's defaults table states the code's defaults, and covers every numeric and boolean one."""

import inspect

import pytest
import yaml

from dmlkit.losses.registry import LOSSES
from paths import ROOT

DOC = (ROOT / "docs" / "losses.md").read_text(encoding="utf-8")


def table_rows() -> list[tuple[str, str, str]]:
    """(loss, parameter, dmlkit cell) of the table that follows the ``typed: defaults`` marker."""
    lines = DOC.split("<!-- typed: defaults", 1)[1].splitlines()[1:]
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        loss, parameter, value = (cell.strip() for cell in line.strip("|").split("|")[:3])
        rows.append((loss, parameter, value.strip("`")))
    return rows


ROWS = table_rows()


def stated_defaults(name: str) -> dict[str, object]:
    """The numeric and boolean defaults of a registered loss (dmlkit injects the sizes)."""
    factory = LOSSES.get(name)
    params = inspect.signature(factory.__init__ if inspect.isclass(factory) else factory).parameters
    return {
        key: p.default
        for key, p in params.items()
        if key not in ("num_classes", "embedding_dim") and isinstance(p.default, bool | int | float)
    }


@pytest.mark.parametrize(("loss", "parameter", "value"), ROWS, ids=[f"{r[0]}.{r[1]}" for r in ROWS])
def test_each_row_is_the_codes_default(loss, parameter, value):
    default = LOSSES.parameters(loss)[parameter].default
    assert yaml.safe_load(value) == default, f"docs/losses.md: {loss}.{parameter} says {value}, the code {default!r}"


def test_every_loss_and_numeric_default_is_in_the_table():
    stated = {(loss, parameter) for loss, parameter, _ in ROWS}
    missing = [(n, k) for n in LOSSES.names() for k in stated_defaults(n) if (n, k) not in stated]
    assert not missing, f"docs/losses.md lacks rows for {missing}"
    assert len(stated) == len(ROWS), "a (loss, parameter) row is repeated"
