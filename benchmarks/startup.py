"""Start-up: how long the command line takes to answer, and to reach the first training step.

Prints ONE JSON object with the median and range (seconds, over ``--repeats`` runs, each a fresh process)
of: ``help`` (``dmlkit --help``), ``datasets`` (``dmlkit datasets``), ``config_typo`` (an unknown key,
``--set trainer.epoch=3``: the error a misspelt key gives), ``unknown_loss`` (``--set loss.name=foo``: an
error about a component, answered from :mod:`dmlkit.config.catalogue` without importing torch), and
``to_first_step`` (``dmlkit train`` of the quick-start until its
``summary.json`` is written, which happens when the run is assembled, right before the first step), plus
the machine's load average.

Usage:
    python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
DMLKIT = [sys.executable, "-m", "dmlkit"]


def timed(cmd: list[str], expect_fail: bool = False) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if (done.returncode != 0) != expect_fail:
        raise SystemExit(f"{' '.join(cmd)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return elapsed


def to_first_step() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cmd = [*DMLKIT, "train", QUICKSTART, "--run-dir", str(run), "--set", "trainer.epochs=1"]
        cmd += ["--set", "trainer.max_steps_per_epoch=2", "--set", "eval.untrained=false"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not (run / "summary.json").exists():
            if proc.poll() is not None:
                raise SystemExit(f"{' '.join(cmd)} ended (exit {proc.returncode}) before its summary")
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        proc.wait()
        return elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    probes = {
        "help": lambda: timed([*DMLKIT, "--help"]),
        "datasets": lambda: timed([*DMLKIT, "datasets"]),
        "config_typo": lambda: timed([*DMLKIT, "train", QUICKSTART, "--set", "trainer.epoch=3"], expect_fail=True),
        "unknown_loss": lambda: timed([*DMLKIT, "train", QUICKSTART, "--set", "loss.name=foo"], expect_fail=True),
        "to_first_step": to_first_step,
    }
    times: dict[str, list[float]] = {name: [] for name in probes}
    for _ in range(args.repeats):  # interleaved, so that a burst of load spreads over all probes
        for name, probe in probes.items():
            times[name].append(probe())
    out = {
        name: {"median_s": round(statistics.median(v), 3), "range_s": [round(min(v), 3), round(max(v), 3)]}
        for name, v in times.items()
    }
    out["machine"] = {"cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "repeats": args.repeats}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
