"""Train one or more configs and print one JSON object with their metrics and times.

Usage:
    python benchmarks/train_quality.py configs/quickstart.yaml [configs/omniglot_triplet.yaml ...]
        [--set key=value ...] [--out-dir runs/bench]

Each config runs into a fresh directory under ``--out-dir``; the JSON lists, per config, the untrained
and final metrics, the best epoch, the training time (optimisation only) and the wall time (with
evaluation and data loading).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from dmlkit.config import load_config
from dmlkit.training.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out-dir", default="runs/bench")
    args = parser.parse_args()
    results = {}
    for path in args.configs:
        cfg = load_config(path, ["trainer.progress_bar=false", *args.set])
        run_dir = Path(args.out_dir) / Path(path).stem
        if run_dir.exists():
            shutil.rmtree(run_dir)
        start = time.perf_counter()
        trainer = Trainer(cfg, run_dir)
        metrics, cfg = trainer.fit(), trainer.cfg  # the resolved config (its default loss, ...)
        results[path] = {
            "dataset": cfg.data.dataset,
            "loss": (cfg.loss or {}).get("name"),
            "method": cfg.method["name"],
            "epochs": cfg.trainer.epochs,
            "untrained": metrics["untrained"],
            "test": metrics["test"],
            "best_epoch": metrics["best"]["epoch"] if metrics["best"] else None,
            "train_time_s": metrics["train_time_s"],
            "wall_s": round(time.perf_counter() - start, 1),
            "run_dir": str(run_dir),
        }
    print(json.dumps({"overrides": args.set, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
