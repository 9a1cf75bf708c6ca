"""Exact retrieval evaluation at Stanford Online Products scale: dmlkit against pytorch-metric-learning.

Prints ONE JSON object::

    {"n", "dim", "classes", "queries", "gallery", "dmlkit_s", "pml_s", "speedup", "max_abs_diff",
     "peak_rss_mb", "metrics", "pml_metrics", "device", "threads", "timings", ...}

Data: seeded synthetic embeddings shaped like SOP's test set (60,502 images of 11,316 classes with
2-12 images each, sizes drawn with SOP's skew towards small classes and adjusted so that the totals
match). Class centres are random on the unit sphere; each image is its centre plus Gaussian noise of
norm about ``--noise``, then L2-normalised, so that Recall@1 is about 0.7 with realistic near-ties.

Both tools run in this process on the same tensors: PML's
``AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision"),
k="max_bin_count")`` (its default faiss kNN) against dmlkit's ``evaluate_embeddings`` computing the
same three metrics (``recall@1`` is PML's ``precision_at_1``: both leave lone queries out).
dmlkit runs first (with ``--full`` also its full evaluation), so ``peak_rss_mb`` (the process's peak
RSS when dmlkit is done: interpreter, libraries, data and dmlkit's work) is dmlkit's figure;
``process_peak_rss_mb``, read at the end, includes PML, whose label bookkeeping alone allocates
classes × queries booleans (about 0.7 GB at SOP size, several GB in all).

Usage:
    python benchmarks/eval_speed.py                       # SOP shape, leave-one-out
    python benchmarks/eval_speed.py --queries 14218 --gallery 12612 --classes 3985   # In-Shop shape
    python benchmarks/eval_speed.py --n 5000 --classes 900 --full   # also R@1/10/100/1000, NMI, F1
    python benchmarks/eval_speed.py --repeats 5             # medians and ranges of 5 interleaved pairs
    python benchmarks/eval_speed.py --sizes 15000 30000 60000 120000 --repeats 3   # growth, fitted n^x
Options: --n --dim --classes --noise --seed --device --backend --skip-pml --full --repeats --sizes.
With ``--repeats R`` the times are medians over R interleaved dmlkit/PML pairs (alternating which runs
first), with their ranges and the median of the per-pair speedups; ``--sizes`` times dmlkit alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from typing import Any

import numpy as np
import torch

from dmlkit.evaluation import evaluate_embeddings

THREE = ("precision_at_1", "mean_average_precision_at_r", "r_precision")
OURS = {"precision_at_1": "recall@1", "mean_average_precision_at_r": "map@r", "r_precision": "r_precision"}


def class_sizes(n: int, classes: int, rng: np.random.Generator, low: int = 2, high: int = 12) -> np.ndarray:
    """``classes`` sizes in [low, high] summing to ``n``, geometric-like (most classes small, as in SOP)."""
    if not low * classes <= n <= high * classes:
        raise SystemExit(f"--n {n} cannot be split into {classes} classes of {low}-{high} images")
    support = np.arange(low, high + 1)
    lo, hi = -5.0, 5.0  # p(s) ∝ exp(-lam·s): find lam whose mean is n / classes
    for _ in range(60):
        lam = (lo + hi) / 2
        p = np.exp(-lam * (support - low))
        lo, hi = (lam, hi) if (p / p.sum()) @ support > n / classes else (lo, lam)
    sizes = rng.choice(support, size=classes, p=p / p.sum())
    while (diff := n - int(sizes.sum())) != 0:  # fix the total by ±1 steps on random classes
        room = np.flatnonzero(sizes < high) if diff > 0 else np.flatnonzero(sizes > low)
        pick = rng.choice(room, min(abs(diff), len(room)), replace=False)
        sizes[pick] += int(np.sign(diff))
    return sizes


def synthetic(n: int, dim: int, classes: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm embeddings (n, dim) float32 and labels (n,) int64, classes in random order."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), class_sizes(n, classes, rng))
    rng.shuffle(labels)
    centres = rng.standard_normal((classes, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[labels]
    x += rng.standard_normal((n, dim), dtype=np.float32) * np.float32(noise / np.sqrt(dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))


def split_query_gallery(labels: torch.Tensor, n_queries: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of queries and gallery; every class of 2+ images gets one of each, the rest at random."""
    rng = np.random.default_rng(seed + 1)
    y = labels.numpy()
    order = np.lexsort((rng.random(len(y)), y))  # by class, random within class
    rank = np.arange(len(y)) - np.searchsorted(y[order], y[order])
    first, second, rest = order[rank == 0], order[rank == 1], rng.permutation(order[rank >= 2])
    extra = n_queries - len(first)
    if not 0 <= extra <= len(rest):
        raise SystemExit(f"--queries {n_queries} must be at least the number of classes ({len(first)})")
    q = np.sort(np.concatenate([first, rest[:extra]]))
    g = np.sort(np.concatenate([second, rest[extra:]]))
    return torch.from_numpy(q), torch.from_numpy(g)


def rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_dmlkit(q, qy, g, gy, backend: str) -> tuple[dict[str, float], float, dict[str, float]]:
    start = time.perf_counter()
    report = evaluate_embeddings(
        q, qy, g, gy, recall_at=(1,), metrics=("recall", "map@r", "r_precision"), backend=backend
    )
    seconds = time.perf_counter() - start
    return {key: report.metrics[OURS[key]] for key in THREE}, seconds, report.timings


def run_pml(q, qy, g, gy) -> tuple[dict[str, float], float]:
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    calc = AccuracyCalculator(include=THREE, k="max_bin_count", device=q.device)
    start = time.perf_counter()
    out = calc.get_accuracy(q, qy) if g is None else calc.get_accuracy(q, qy, g, gy, ref_includes_query=False)
    return {key: float(out[key]) for key in THREE}, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=60502, help="images (SOP test: 60502)")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--classes", type=int, default=11316, help="classes (SOP test: 11316; In-Shop: 3985)")
    p.add_argument("--noise", type=float, default=2.28, help="noise norm per image (R@1 about 0.7 at SOP size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--queries", type=int, help="query/gallery mode: number of queries (In-Shop: 14218)")
    p.add_argument("--gallery", type=int, help="query/gallery mode: gallery size (In-Shop: 12612)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "faiss"), help="dmlkit kNN backend")
    p.add_argument("--skip-pml", action="store_true", help="time dmlkit only")
    p.add_argument("--full", action="store_true", help="also Recall@1/10/100/1000, NMI and F1, timed by part")
    p.add_argument("--repeats", type=int, default=1, help="interleaved dmlkit/PML repetitions (medians, ranges)")
    p.add_argument("--sizes", type=int, nargs="+", help="time dmlkit at these sizes (classes scaled) and fit n^x")
    args = p.parse_args()
    if args.repeats < 1:
        raise SystemExit(f"--repeats {args.repeats}: expected at least 1")
    if args.sizes:
        print(json.dumps(growth(args)))
        return

    if (args.queries is None) != (args.gallery is None):
        raise SystemExit("--queries and --gallery go together")
    if args.queries is not None:
        args.n = args.queries + args.gallery
    x, y = synthetic(args.n, args.dim, args.classes, args.noise, args.seed)
    device = torch.device(args.device)
    x = x.to(device)
    if args.queries is None:
        q, qy, g, gy = x, y, None, None
    else:
        qi, gi = split_query_gallery(y, args.queries, args.seed)
        q, qy, g, gy = x[qi.to(device)], y[qi], x[gi.to(device)], y[gi]
        del x
    data_rss = rss_mb()

    # one-time costs (thread pools, lazy imports) out of the timings
    small = torch.arange(40) % 10
    warm = torch.randn(40, args.dim, device=device)
    run_dmlkit(warm, small, None, None, args.backend)
    if not args.skip_pml:
        run_pml(warm, small, None, None)

    ours, dmlkit_s, timings = run_dmlkit(q, qy, g, gy, args.backend)
    out: dict[str, Any] = {
        "n": args.n,
        "dim": args.dim,
        "classes": args.classes,
        "queries": len(qy),
        "gallery": len(qy) if gy is None else len(gy),
        "mode": "leave-one-out" if g is None else "query/gallery",
        "dmlkit_s": round(dmlkit_s, 2),
        "pml_s": None,
        "speedup": None,
        "max_abs_diff": None,
        "peak_rss_mb": None,
        "process_peak_rss_mb": None,
        "data_rss_mb": round(data_rss, 1),
        "metrics": ours,
        "pml_metrics": None,
        "timings": {key: round(v, 3) for key, v in timings.items()},
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "backend": args.backend,
        "noise": args.noise,
        "seed": args.seed,
        "versions": versions(),
    }
    if args.full:
        start = time.perf_counter()
        full = evaluate_embeddings(q, qy, g, gy, recall_at=(1, 10, 100, 1000), backend=args.backend)
        out["full"] = {
            "metrics": full.metrics,
            "counts": full.counts,
            "timings": {key: round(v, 2) for key, v in full.timings.items()},
            "total_s": round(time.perf_counter() - start, 2),
        }
    out["peak_rss_mb"] = round(rss_mb(), 1)
    if not args.skip_pml:
        theirs, pml_s = run_pml(q, qy, g, gy)
        ours_s, theirs_s = [dmlkit_s], [pml_s]
        for rep in range(1, args.repeats):  # interleaved, alternating which runs first
            pair = [lambda: run_dmlkit(q, qy, g, gy, args.backend)[1], lambda: run_pml(q, qy, g, gy)[1]]
            first, second = pair if rep % 2 == 0 else pair[::-1]
            a, b = first(), second()
            ours_s.append(a if rep % 2 == 0 else b)
            theirs_s.append(b if rep % 2 == 0 else a)
        ratios = [t / o for o, t in zip(ours_s, theirs_s, strict=True)]
        out.update(
            dmlkit_s=round(statistics.median(ours_s), 2),
            dmlkit_s_range=[round(min(ours_s), 2), round(max(ours_s), 2)],
            pml_s=round(statistics.median(theirs_s), 2),
            pml_s_range=[round(min(theirs_s), 2), round(max(theirs_s), 2)],
            speedup=round(statistics.median(ratios), 2),
            speedup_range=[round(min(ratios), 2), round(max(ratios), 2)],
            repeats=args.repeats,
            max_abs_diff=max(abs(theirs[key] - ours[key]) for key in THREE),
            pml_metrics=theirs,
        )
    out["process_peak_rss_mb"] = round(rss_mb(), 1)
    out["load_average"] = list(os.getloadavg())
    print(json.dumps(out))


def fitted_exponent(sizes: list[int], seconds: list[float]) -> float:
    """The least-squares slope of log(seconds) on log(size): time grows as size^slope.

    Example:
        >>> round(fitted_exponent([1000, 2000, 4000], [1.0, 4.0, 16.0]), 3)
        2.0
    """
    xs, ys = np.log(np.asarray(sizes, float)), np.log(np.asarray(seconds, float))
    return float(np.polyfit(xs, ys, 1)[0])


def growth(args: argparse.Namespace) -> dict[str, Any]:
    """dmlkit's time at each of ``--sizes`` (classes scaled with the size, leave-one-out), the median of
    ``--repeats`` runs each, and the fitted exponent."""
    rows = []
    run_dmlkit(torch.randn(40, args.dim, device=args.device), torch.arange(40) % 10, None, None, args.backend)  # warm
    for n in args.sizes:
        classes = max(1, round(args.classes * n / args.n))
        x, y = synthetic(n, args.dim, classes, args.noise, args.seed)
        x = x.to(args.device)
        times = [run_dmlkit(x, y, None, None, args.backend)[1] for _ in range(args.repeats)]
        rows.append({"n": n, "classes": classes, "dmlkit_s": round(statistics.median(times), 3),
                     "range_s": [round(min(times), 3), round(max(times), 3)]})  # fmt: skip
    return {
        "sizes": rows,
        "exponent": round(fitted_exponent([r["n"] for r in rows], [r["dmlkit_s"] for r in rows]), 2),
        "dim": args.dim,
        "repeats": args.repeats,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
        "versions": versions(),
    }


def versions() -> dict[str, str]:
    import pytorch_metric_learning

    out = {"torch": torch.__version__, "pytorch_metric_learning": pytorch_metric_learning.__version__}
    try:
        import faiss

        out["faiss"] = faiss.__version__
    except ImportError:
        out["faiss"] = "not installed"
    return out


if __name__ == "__main__":
    main()
