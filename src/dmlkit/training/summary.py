"""The text table ``dmlkit train`` prints at the end of a run."""

from __future__ import annotations

import math
from typing import Any


def format_table(metrics: dict[str, Any]) -> str:
    """A text table of untrained, final and best metrics from ``metrics.json``'s content."""
    rows = [("untrained", metrics.get("untrained")), ("final", metrics.get("test"))]
    if metrics.get("best"):
        rows.append((f"best (epoch {metrics['best']['epoch']})", metrics["best"]["metrics"]))
    keys = list(metrics.get("test") or metrics.get("untrained") or {})
    width = max(len(r[0]) for r in rows)
    lines = [" " * width + " | " + " | ".join(f"{k:>11}" for k in keys)]
    lines.append("-" * len(lines[0]))
    for name, values in rows:
        if values:
            lines.append(f"{name:<{width}} | " + " | ".join(f"{values.get(k, math.nan):>11.4f}" for k in keys))
    return "\n".join(lines)
