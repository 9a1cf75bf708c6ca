"""NMI and F1 under dmlkit's k-means protocol against the two it replaces, and what each costs.

The old protocol switched at n × k = 5e7 from scikit-learn (greedy k-means++, one run) to faiss (random
start, 20 iterations), so NMI changed with the size of the test set. The new one (``kmeans``: k-means++
seeding, Lloyd to convergence, best of ``--restarts`` by inertia) is run with each Lloyd backend. Data:
``--npz`` embeddings (``dmlkit embed`` output: ``embeddings``, ``labels``) and/or synthetic classes on the
unit sphere at ``--sizes N:K ...`` (class spread ``--spread``, dimension ``--dim``).

Prints ONE JSON object: per data set, per protocol, NMI, F1 and seconds.

``--cost-sizes N:K ...`` times the evaluation's k-means (``kmeans`` as the evaluator calls it) at each
size, in the order given, and compares each with the previous one: ``jump`` is the time ratio divided by
the ratio of n × k (the work of one Lloyd iteration), so a constant-cost protocol gives about 1. The
command exits 1 when a jump lies outside [1/``--max-jump``, ``--max-jump``]: the cliff of the old protocol
(15k × 2.8k in 28–33 s, 30k × 5.6k in 4.2 s: a jump of 0.03) fails it.

Usage:
    python benchmarks/kmeans_protocol.py --sizes 6000:100 24000:2100 [--npz test.npz] [--restarts 3]
    python benchmarks/kmeans_protocol.py --sizes --cost-sizes 7500:1400 15000:2800 24000:2100 30000:5600
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from dmlkit.evaluation.clustering import kmeans, nmi, pairwise_f1


def synthetic(n: int, k: int, dim: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.arange(n) % k
    x = centres[labels] + spread / np.sqrt(dim) * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def old_sklearn(x: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=1, random_state=0).fit_predict(x)


def old_faiss(x: np.ndarray, k: int) -> np.ndarray:
    import faiss

    km = faiss.Kmeans(
        x.shape[1], k, niter=20, seed=0, max_points_per_centroid=len(x) // k + 2, min_points_per_centroid=1
    )
    km.train(x)
    return km.index.search(x, 1)[1][:, 0]


def measure(x: np.ndarray, labels: np.ndarray, restarts: int) -> dict[str, dict[str, float]]:
    k = len(np.unique(labels))
    protocols = {
        "old_sklearn_kmeans++_greedy": lambda: old_sklearn(x, k),
        "old_faiss_random_20it": lambda: old_faiss(x, k),
        "new_sklearn": lambda: kmeans(x, k, backend="sklearn", restarts=restarts),
        "new_faiss": lambda: kmeans(x, k, backend="faiss", restarts=restarts),
    }
    out = {}
    for name, run in protocols.items():
        start = time.perf_counter()
        assign = run()
        seconds = time.perf_counter() - start
        out[name] = {"nmi": round(nmi(labels, assign), 4), "f1": round(pairwise_f1(labels, assign), 4),
                     "seconds": round(seconds, 2)}  # fmt: skip
    return out


def size(text: str) -> tuple[int, int]:
    """``N:K`` (points, clusters) as two integers with N ≥ K ≥ 2; an argparse type."""
    try:
        n, k = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected N:K, two integers (points:clusters)") from None
    if not 2 <= k <= n:
        raise argparse.ArgumentTypeError(f"{text!r}: expected N ≥ K ≥ 2")
    return n, k


def factor_above_one(text: str) -> float:
    value = float(text)
    if value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a factor above 1")
    return value


def cost_sweep(sizes: list[tuple[int, int]], dim: int, spread: float, restarts: int, max_jump: float) -> dict:
    """Seconds of the evaluation's k-means at each size and the jump from the previous size."""
    rows: list[dict] = []
    for n, k in sizes:
        x, labels = synthetic(n, k, dim, spread)
        start = time.perf_counter()
        assign = kmeans(x, k, restarts=restarts)
        row = {"n": n, "k": k, "seconds": round(time.perf_counter() - start, 2), "nmi": round(nmi(labels, assign), 4)}
        if rows:
            work = (n * k) / (rows[-1]["n"] * rows[-1]["k"])
            row["jump"] = round(row["seconds"] / max(rows[-1]["seconds"], 1e-3) / work, 3)
        rows.append(row)
    jumps = [r["jump"] for r in rows[1:]]
    return {"sizes": rows, "max_jump": max_jump, "smooth": all(1 / max_jump <= j <= max_jump for j in jumps)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="*", type=size, default=[(6000, 100), (24000, 2100)], metavar="N:K")
    p.add_argument("--npz", nargs="*", default=[])
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--spread", type=float, default=0.9)
    p.add_argument("--restarts", type=int, default=3)
    p.add_argument("--cost-sizes", nargs="*", type=size, default=[], metavar="N:K", help="time k-means at these sizes")
    p.add_argument("--max-jump", type=factor_above_one, default=3.0, help="largest allowed cost jump between sizes")
    args = p.parse_args(argv)
    result: dict = {"restarts": args.restarts, "dim": args.dim, "spread": args.spread, "sets": {}}
    for path in args.npz:
        data = np.load(path)
        x, labels = np.ascontiguousarray(data["embeddings"], dtype=np.float32), data["labels"]
        result["sets"][f"{path} ({len(x)} x {len(np.unique(labels))})"] = measure(x, labels, args.restarts)
    for n, k in args.sizes:
        x, labels = synthetic(n, k, args.dim, args.spread)
        result["sets"][f"synthetic {n} x {k}"] = measure(x, labels, args.restarts)
    if args.cost_sizes:
        result["cost"] = cost_sweep(args.cost_sizes, args.dim, args.spread, args.restarts, args.max_jump)
    result["machine"] = {"cpu_count": os.cpu_count(), "load_average": list(os.getloadavg())}
    print(json.dumps(result, indent=2))
    return 0 if result.get("cost", {}).get("smooth", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
