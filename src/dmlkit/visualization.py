"""Figures methods write into their run directory: embedding scatter plots (2-D, PCA or t-SNE) and
loss curves. PNGs are written atomically (matplotlib's Agg backend; no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dmlkit.files import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    """Write the figure as a PNG atomically (a crash leaves the previous file or none), then close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: fig.savefig(fh, format="png"))
    _pyplot().close(fig)
    return path


def _project(x: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """2-D coordinates of points and centres: themselves in 2-D, else the points' first two principal axes."""
    if x.shape[1] == 2:
        return x, centres, ""
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    axes = vt[:2].T
    return (x - mean) @ axes, (centres - mean) @ axes, " (first two principal axes)"


def plot_distribution(
    path: str | Path,
    embeddings: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray | None = None,
    title: str = "",
    class_names: Sequence[str] | None = None,
    max_points: int = 20_000,
    seed: int = 0,
) -> Path:
    """Scatter of ``embeddings`` coloured by class, cluster centres as black crosses; a PNG at ``path``."""
    plt = _pyplot()
    x, y = np.asarray(embeddings, dtype=np.float64), np.asarray(labels)
    if len(x) > max_points:
        keep = np.random.default_rng(seed).choice(len(x), max_points, replace=False)
        x, y = x[keep], y[keep]
    centres = np.zeros((0, x.shape[1])) if centroids is None else np.asarray(centroids, dtype=np.float64)
    xy, cxy, note = _project(x, centres)
    fig, ax = plt.subplots(figsize=(7, 6), dpi=110)
    classes = np.unique(y)
    size = float(np.clip(3000 / max(len(xy), 1), 2, 12))  # larger dots for fewer points
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, c in enumerate(classes):
        name = class_names[c] if class_names is not None and c < len(class_names) else str(c)
        sel = y == c
        ax.scatter(xy[sel, 0], xy[sel, 1], s=size, alpha=0.5, color=cmap(i % cmap.N), label=name)
    if len(cxy):
        ax.scatter(cxy[:, 0], cxy[:, 1], s=60, marker="x", color="black", linewidths=1.5)
        title += "; × = cluster centres"
    ax.set_title(title + note, fontsize=10)
    if len(classes) <= 20:
        ax.legend(markerscale=4, fontsize=7, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def tsne_2d(x: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """Barnes-Hut t-SNE of ``x`` to 2-D (scikit-learn; PCA initialisation, seeded)."""
    from sklearn.manifold import TSNE

    x = np.asarray(x, dtype=np.float32)
    perplexity = min(perplexity, max(1.0, (len(x) - 1) / 3))
    return TSNE(2, perplexity=perplexity, init="pca", method="barnes_hut", random_state=seed).fit_transform(x)


def plot_loss(path: str | Path, losses: Sequence[float], title: str = "magnet loss", smooth: int = 50) -> Path:
    """Batch loss against iterations (raw, and a running mean over ``smooth`` iterations); a PNG."""
    plt = _pyplot()
    y = np.asarray(losses, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(np.arange(1, len(y) + 1), y, lw=0.5, alpha=0.4, label="batch loss")
    if len(y) >= smooth > 1:
        running = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
        ax.plot(np.arange(smooth, len(y) + 1), running, lw=1.5, label=f"mean of {smooth}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_retrieval(
    path: str | Path,
    query_images: Sequence[Any],
    neighbour_images: Sequence[Sequence[Any]],
    correct: np.ndarray,
    title: str = "",
) -> Path:
    """Queries (first column) with their nearest neighbours, framed green when they share the query's class
    and red otherwise; a PNG. Images are PIL images (RGB or L)."""
    plt = _pyplot()
    rows, k = len(query_images), len(neighbour_images[0]) if len(neighbour_images) else 0
    fig, axes = plt.subplots(rows, k + 1, figsize=(1.6 * (k + 1), 1.6 * rows), dpi=110, squeeze=False)
    for r in range(rows):
        cells = [(query_images[r], "black")] + [
            (img, "green" if ok else "red") for img, ok in zip(neighbour_images[r], correct[r], strict=True)
        ]
        for c, (img, colour) in enumerate(cells):
            ax = axes[r][c]
            ax.imshow(np.asarray(img), cmap="gray" if np.asarray(img).ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3 if c else 1)
        axes[r][0].set_ylabel("query", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
