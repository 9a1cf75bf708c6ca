"""The unsupervised Omniglot protocol of docs/pl_manifold.md; prints one JSON object.

1. Pretrain a small CNN *with labels on other data* (all of MNIST, configs/pretrain_mnist_small_cnn.yaml)
   and write its backbone weights to ``--weights`` (skipped when the file exists).
2. From those weights, train without Omniglot labels (background alphabets) with PL-Manifold
   (configs/pl_manifold_omniglot.yaml) and with k-means pseudo-labels (configs/pseudo_label_omniglot.yaml),
   same budget, ``--seeds`` each (benchmarks/compare_seeds.py), and evaluate zero-shot on the evaluation
   alphabets.
3. Print compare_seeds' JSON of the runs (``benchmarks/docs_tables.py`` renders docs/pl_manifold.md's
   tables from it), the starting embedding being each run's untrained evaluation (the pretrained
   backbone and the run's fresh projection head; ``CONFIG:untrained``), with the similarity-quality
   diagnostics ``diag_*`` of each final embedding (PL pieces vs k-means vs hierarchical pseudo-labels on
   test neighbourhood batches, the same settings for both methods; test labels are read by the
   diagnostics only) in each config's summary.

Usage:
    python benchmarks/pl_manifold_omniglot.py [--seeds 0 1 2] [--parallel 2] [--out-dir runs/pl_omniglot]
        [--set key=value ...]   # passed to every Omniglot run
    python benchmarks/pl_manifold_omniglot.py --pretrain-only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from compare_seeds import mean_std  # benchmarks/ is on sys.path when this script runs

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN = "configs/pretrain_mnist_small_cnn.yaml"
METHODS = {"pl_manifold": "configs/pl_manifold_omniglot.yaml", "pseudo_label": "configs/pseudo_label_omniglot.yaml"}


def pretrain(weights: Path, run_dir: Path, overrides: list[str]) -> None:
    """Train the supervised MNIST model and save its backbone's state dict (atomically) to ``weights``."""
    cmd = [sys.executable, "-m", "dmlkit", "train", PRETRAIN, "--run-dir", str(run_dir)]
    for item in ["trainer.progress_bar=false", *overrides]:
        cmd += ["--set", item]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=sys.stderr)  # stdout is the JSON
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["model"]
    backbone = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    weights.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_suffix(".tmp")
    torch.save(backbone, tmp)
    os.replace(tmp, weights)


def diagnostics_of(run_dir: Path, seed: int) -> dict[str, float]:
    """The similarity-quality diagnostics of a run's final (student) test embedding."""
    import dmlkit
    from dmlkit.methods.pl_manifold.diagnostics_run import run_diagnostics

    run = dmlkit.load_run(run_dir)
    test = run.embed(run.dataset("test"))
    emb, labels = torch.from_numpy(test.embeddings), test.labels
    defaults = {"rank": 2, "max_size": 10, "threshold": 0.8, "subset_selection": True, "residual_scale": "local"}
    return run_diagnostics(emb, np.asarray(labels), piece_args=defaults, seed=seed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--out-dir", default="runs/pl_omniglot")
    p.add_argument("--weights", default="runs/pretrain/mnist_small_cnn.pth")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--pretrain-set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--pretrain-only", action="store_true")
    p.add_argument("--summarize-only", action="store_true")
    args = p.parse_args()
    out, weights = ROOT / args.out_dir, ROOT / args.weights
    if not weights.is_file() and not args.summarize_only:
        pretrain(weights, weights.parent / "mnist_small_cnn", args.pretrain_set)
    if args.pretrain_only:
        print(json.dumps({"weights": str(weights)}))
        return
    overrides = [f"model.pretrained={args.weights}", *args.set]  # relative to the repository root
    cmd = [sys.executable, str(ROOT / "benchmarks" / "compare_seeds.py"), *METHODS.values()]
    cmd += ["--seeds", *map(str, args.seeds), "--parallel", str(args.parallel), "--out-dir", str(out)]
    for item in overrides:
        cmd += ["--set", item]
    if args.summarize_only:
        cmd.append("--summarize-only")
    compared = json.loads(subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.PIPE, text=True).stdout)
    result: dict = {"weights": args.weights, **compared}
    for config in METHODS.values():
        diags = []
        for seed in args.seeds:
            run_dir = out / f"{Path(config).stem}-s{seed}"
            metrics = json.loads((run_dir / "metrics.json").read_text())
            if metrics.get("status") == "completed":
                diags.append(diagnostics_of(run_dir, seed))
        # one set of diagnostics for both methods: the final student embedding, the same piece settings
        entry = result["configs"][config]
        entry["summary"] = {k: v for k, v in entry["summary"].items() if not k.startswith("diag_")}
        entry["summary"].update(mean_std(diags))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
