"""The report's figures, drawn with matplotlib and embedded as PNG data URIs (the page needs no files)."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dmlkit.report.groups import Group
from dmlkit.report.records import RunRecord

#: Logged values drawn in their own panels rather than among "other logged values".
MAIN_CURVES = ("train/loss", "train/lr")
#: Values not worth a curve (bookkeeping).
SKIPPED = ("train/images_per_s",)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def file_uri(path: Path) -> str:
    """A PNG file of the run as a data URI."""
    return data_uri(path.read_bytes())


def _render(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    _pyplot().close(fig)
    return data_uri(buffer.getvalue())


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def _marker(n: int) -> dict[str, object]:
    """Markers on a curve of few points (one point alone would not show as a line)."""
    return {"marker": "o", "ms": 3} if n <= 20 else {}


def _style(ax, title: str, xlabel: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps and epochs
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def history_series(run: RunRecord) -> dict[str, list[tuple[int, float]]]:
    """Each test metric over the epochs it was evaluated at (``metrics.json`` history; epoch 0: untrained)."""
    series: dict[str, list[tuple[int, float]]] = {}
    if run.metrics.get("untrained"):
        for name, value in run.metrics["untrained"].items():
            series.setdefault(name, []).append((0, float(value)))
    for entry in run.metrics.get("history") or []:
        for name, value in (entry.get("metrics") or {}).items():
            series.setdefault(name, []).append((int(entry["epoch"]), float(value)))
    return series


def run_curves(run: RunRecord, metrics: Sequence[str]) -> list[tuple[str, str]]:
    """A run's learning curves: (caption, data URI) for the loss and LR, the test metrics over the
    epochs, and every other logged training value."""
    plt = _pyplot()
    out = []
    main = [name for name in MAIN_CURVES if run.curves.get(name)]
    if main:
        fig, axes = plt.subplots(1, len(main), figsize=(4.2 * len(main), 2.8), squeeze=False)
        for ax, name in zip(axes[0], main, strict=True):
            steps, values = np.array(run.curves[name]).T
            ax.plot(steps, values, lw=1, color="#3465a4", **_marker(len(steps)))
            _style(ax, name.removeprefix("train/"), "step")
        fig.tight_layout()
        out.append(("Training loss and learning rate, per logged step", _render(fig)))
    series = history_series(run)
    shown = [m for m in metrics if len(series.get(m, [])) > 0]
    if shown:
        fig, ax = plt.subplots(figsize=(5.5, 3.2))
        for name in shown:
            epochs, values = np.array(series[name]).T
            ax.plot(epochs, values, marker="o", ms=3, lw=1.2, label=name)
        _style(ax, "test metrics", "epoch (0: untrained)")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        out.append(("Test metrics at each evaluation", _render(fig)))
    other = sorted(k for k in run.curves if k.startswith("train/") and k not in MAIN_CURVES and k not in SKIPPED)
    if other:
        cols = min(4, len(other))
        rows = math.ceil(len(other) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 2.2 * rows), squeeze=False)
        for ax, name in zip(axes.flat, other, strict=False):
            steps, values = np.array(run.curves[name]).T
            ax.plot(steps, values, lw=0.9, color="#4e9a06", **_marker(len(steps)))
            _style(ax, name.removeprefix("train/"), "step")
        for ax in list(axes.flat)[len(other) :]:
            ax.set_visible(False)
        fig.tight_layout()
        out.append(("Other values the method logged during training", _render(fig)))
    return out


def _mean_series(runs: list[RunRecord], get) -> tuple[np.ndarray, np.ndarray] | None:
    """The mean over ``runs`` of a series at the x values they all share."""
    series = [dict(get(r)) for r in runs]
    series = [s for s in series if s]
    if not series:
        return None
    xs = sorted(set.intersection(*(set(s) for s in series)))
    if not xs:
        return None
    return np.array(xs), np.array([np.mean([s[x] for s in series]) for x in xs])


def group_curves(groups: list[Group], metric: str) -> list[tuple[str, str]]:
    """Overlaid curves of the groups: ``metric`` over the epochs and the training loss over the steps,
    each the mean over a group's completed runs."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    drawn = False
    for group in groups:
        runs = group.completed or group.runs
        hist = _mean_series(runs, lambda r: history_series(r).get(metric, []))
        if hist is not None:
            left.plot(*hist, marker="o", ms=3, lw=1.2, label=group.label)
            drawn = True
        loss = _mean_series(runs, lambda r: r.curves.get("train/loss", []))
        if loss is not None:
            window = max(1, len(loss[0]) // 50)
            xs = loss[0][window - 1 :]
            right.plot(xs, _smooth(loss[1], window), lw=1, label=group.label, **_marker(len(xs)))
            drawn = True
    if not drawn:
        plt.close(fig)
        return []
    left.set_xlim(left=-0.3)  # epoch 0 (untrained) always in view, also when only the last epoch was evaluated
    _style(left, f"{metric} (mean over seeds)", "epoch (0: untrained)")
    _style(right, "training loss (mean over seeds, smoothed)", "step")
    handles, labels = left.get_legend_handles_labels()
    if not handles:  # no evaluation history: the loss panel names the settings
        handles, labels = right.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", fontsize=7, ncol=min(3, len(labels)), frameon=False)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * math.ceil(len(labels) / 3), 1, 1))
    return [(f"{metric} and the training loss of each setting", _render(fig))]
