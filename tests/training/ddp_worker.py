"""Runs training cases under an external launcher (``torchrun --nproc_per_node 2 ddp_worker.py CASES.json``).

``CASES.json`` lists ``{"config": PATH, "overrides": [...], "run_dir": PATH, "crash_after": STEP|null}``.
Every case trains in its run directory through :class:`~dmlkit.training.trainer.Trainer`, as ``dmlkit
train`` would under torchrun; all cases share the launch's process group. A case with ``crash_after``
stops with an exception after that optimiser step on every process (the checkpoint written before it
is kept), and is then resumed in the same launch. Not a test module: tests/training/test_distributed.py
launches it.
"""

import json
import sys
from pathlib import Path

from dmlkit.config import load_config
from dmlkit.training.trainer import Trainer


class Crash(RuntimeError):
    pass


def crash_after(trainer: Trainer, at: int) -> None:
    setup = trainer._setup

    def crashing_setup():
        setup()
        hook = trainer.method.after_step

        def after_step(model, step):
            hook(model, step)
            if step == at:
                raise Crash(f"simulated crash after step {at}")

        trainer.method.after_step = after_step

    trainer._setup = crashing_setup


def main(path: str) -> None:
    for case in json.loads(Path(path).read_text()):
        cfg = load_config(case["config"], case["overrides"])
        if case.get("crash_after") is not None:
            trainer = Trainer(cfg, case["run_dir"])
            crash_after(trainer, case["crash_after"])
            try:
                trainer.fit()
            except Crash:
                pass
            else:
                raise SystemExit(f"{case['run_dir']}: the crash did not happen")
            Trainer(cfg, case["run_dir"], resume=True).fit()
        else:
            Trainer(cfg, case["run_dir"]).fit()


if __name__ == "__main__":
    main(sys.argv[1])
