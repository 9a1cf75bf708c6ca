"""Train several configs with several seeds and print one JSON object: mean ± std of each metric.

Usage:
    python benchmarks/compare_seeds.py configs/omniglot_triplet.yaml configs/magnet_omniglot.yaml \
        --seeds 0 1 2 [--set key=value ...] [--out-dir runs/compare] [--parallel 1]

Every (config, seed) trains with ``dmlkit train CONFIG --set seed=S`` into ``OUT_DIR/<config>-s<S>``
(``--parallel N`` runs N at a time as separate processes; 1, the default, runs them one after the
other). The JSON gives, per config, the final test metrics of every seed, their mean and sample
standard deviation, the training times, each run's last logged ``train/*`` values (a method's
diagnostics), each run's sum of every per-epoch ``method/*`` value (``method_sums``), and the same
summary of the untrained model's metrics where the runs evaluated it (``untrained_summary``).
``--summarize-only`` reads existing run directories. ``benchmarks/docs_tables.py`` renders the docs'
tables from this JSON. Progress (runs done and running, the time so far and an estimate of what is
left) goes to stderr; at the end ``OUT_DIR/report.html`` (``--report``) is the ``dmlkit report`` of
the runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_dir_of(out_dir: Path, config: str, seed: int) -> Path:
    return out_dir / f"{Path(config).stem}-s{seed}"


def command(config: str, seed: int, run_dir: Path, overrides: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "dmlkit", "train", config, "--run-dir", str(run_dir), "--set", f"seed={seed}"]
    cmd += ["--set", "trainer.progress_bar=false"]
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def progress_line(done: int, total: int, running: int, elapsed: float, durations: list[float], parallel: int) -> str:
    """``[3/6 done, 2 running, 12.5 min, about 9 min left]``: the remaining runs at the mean duration so far,
    ``parallel`` at a time.

    Example:
        >>> progress_line(2, 6, 2, 600.0, [300.0, 300.0], 2)
        '[2/6 done, 2 running, 10.0 min, about 10 min left]'
    """
    line = f"[{done}/{total} done, {running} running, {elapsed / 60:.1f} min"
    if durations and done < total:
        left = statistics.fmean(durations) * (total - done) / max(1, min(parallel, total - done))
        line += f", about {left / 60:.0f} min left"
    return line + "]"


def train_all(jobs: list[tuple[str, int, Path]], overrides: list[str], parallel: int) -> dict[Path, int]:
    """Run every job (``parallel`` at a time), telling the progress on stderr; returns each run directory's
    exit code."""
    pending, running, codes, durations = list(jobs), [], {}, []
    start = time.monotonic()
    while pending or running:
        while pending and len(running) < parallel:
            config, seed, run_dir = pending.pop(0)
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            log = open(run_dir.parent / f"{run_dir.name}.log", "w")  # noqa: SIM115 (closed below)
            proc = subprocess.Popen(command(config, seed, run_dir, overrides), stdout=log, stderr=subprocess.STDOUT)
            running.append((proc, log, run_dir, time.monotonic()))
            line = progress_line(len(codes), len(jobs), len(running), time.monotonic() - start, durations, parallel)
            print(f"{line} started {run_dir.name}", file=sys.stderr, flush=True)
        time.sleep(0.5)
        for item in list(running):
            proc, log, run_dir, began = item
            if proc.poll() is not None:
                log.close()
                codes[run_dir] = proc.returncode
                durations.append(time.monotonic() - began)
                running.remove(item)
                test = (read_metrics(run_dir) or {}).get("test") or {}
                result = f"recall@1 {test['recall@1']:.4f}" if "recall@1" in test else f"exit code {proc.returncode}"
                line = progress_line(len(codes), len(jobs), len(running), time.monotonic() - start, durations, parallel)
                print(f"{line} finished {run_dir.name}: {result}", file=sys.stderr, flush=True)
    return codes


def read_metrics(run_dir: Path) -> dict | None:
    path = run_dir / "metrics.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def logged_values(run_dir: Path) -> tuple[dict[str, float], dict[str, float]]:
    """From a run's ``logs/csv/metrics.csv``: the last logged value of every ``train/*`` column, and the sum
    over the run of every ``method/*`` column (a method's per-epoch figures, e.g. magnet's ``refresh_s``)."""
    path = run_dir / "logs" / "csv" / "metrics.csv"
    last: dict[str, float] = {}
    sums: dict[str, float] = {}
    if path.is_file():
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                logged = {k: float(v) for k, v in row.items() if k and v not in ("", None)}
                last.update({k: v for k, v in logged.items() if k.startswith("train/")})
                for key in (k for k in logged if k.startswith("method/")):
                    sums[key] = round(sums.get(key, 0.0) + logged[key], 4)
    return last, sums


def mean_std(runs: list[dict]) -> dict[str, dict]:
    """Per metric of the first run, the mean and sample std (``None`` for one run) over ``runs``."""
    summary = {}
    for key in list(runs[0]) if runs else []:
        values = [m[key] for m in runs if key in m]
        summary[key] = {
            "mean": round(statistics.fmean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else None,
        }
    return summary


def summarize(configs: list[str], seeds: list[int], out_dir: Path) -> dict:
    out = {}
    for config in configs:
        runs, untrained, times, logs, sums = {}, {}, [], {}, {}
        for seed in seeds:
            path = run_dir_of(out_dir, config, seed) / "metrics.json"
            if not path.is_file():
                runs[seed] = None
                continue
            data = json.loads(path.read_text())
            completed = data.get("status") == "completed"
            runs[seed] = data.get("test") if completed else None
            untrained[seed] = data.get("untrained") if completed else None
            if completed:
                times.append(data.get("train_time_s"))
            logs[seed], sums[seed] = logged_values(path.parent) if completed else (None, None)
        done = [m for m in runs.values() if m]
        out[config] = {
            "completed": len(done),
            "seeds": runs,
            "summary": mean_std(done),
            "untrained_summary": mean_std([m for m in untrained.values() if m]),
            "train_time_s": times,
            "last_train_logs": logs,
            "method_sums": sums,
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="+")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out-dir", default="runs/compare")
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--summarize-only", action="store_true")
    p.add_argument("--report", help="HTML report of the runs (default: OUT_DIR/report.html; '' for none)")
    args = p.parse_args()
    out_dir = Path(args.out_dir)
    args.report = str(out_dir / "report.html") if args.report is None else args.report
    codes = {}
    if not args.summarize_only:
        jobs = [(c, s, run_dir_of(out_dir, c, s)) for c in args.configs for s in args.seeds]
        for _, _, run_dir in jobs:
            if (run_dir / "checkpoints" / "last.pt").exists():
                raise SystemExit(f"{run_dir} already holds a run; choose another --out-dir")
        codes = train_all(jobs, args.set, max(1, args.parallel))
    result = {
        "overrides": args.set,
        "seeds": args.seeds,
        "failed": sorted(str(d) for d, code in codes.items() if code != 0),
        "configs": summarize(args.configs, args.seeds, out_dir),
    }
    print(json.dumps(result, indent=2))
    runs = [run_dir_of(out_dir, c, s) for c in args.configs for s in args.seeds]
    runs = [r for r in runs if (r / "metrics.json").is_file() and (r / "config.yaml").is_file()]
    if args.report and runs:
        from dmlkit.report import write_report

        print(f"report: {write_report(runs, args.report)}", file=sys.stderr)


if __name__ == "__main__":
    main()
