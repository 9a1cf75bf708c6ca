"""Training speed: dmlkit's loop against a bare PyTorch + pytorch-metric-learning loop doing the same work.

Prints ONE JSON object::

    {"setting": {...}, "losses": {LOSS: {"dmlkit_images_per_s": median, "bare_images_per_s": median,
     "ratio": median of the per-repetition ratios, "ratio_range": [min, max], "repetitions": [...],
     "dmlkit_parts_ms": {...}, "bare_parts_ms": {...}}}, "machine": {...}}

Both loops run in this process, interleaved (repetition r runs every loss with both loops, the order of the
two loops alternating between repetitions), on the same data, model, batches, loss and miner objects,
optimiser, LR schedule and precision:

* **dmlkit**: :class:`~dmlkit.training.trainer.Trainer` on a config (``--config``, default Omniglot with
  the small CNN) for one epoch of ``--steps`` steps, as ``dmlkit train`` runs it (run directory, logs,
  checkpoint at the end); the final evaluation is skipped (not part of training speed).
* **bare**: a plain loop a user would write: the training images decoded once into memory, a
  ``DataLoader`` over them with the same transforms and the same P×K batches (dmlkit's batch lists),
  the model dmlkit builds for the config, ``torch.optim`` with the same LR schedule, and the
  pytorch-metric-learning loss and miner objects that dmlkit's loss wraps, called directly.

images/s counts the steps after ``--warmup`` (from the start of the first timed step to the end of the
last). The per-part breakdown (ms per step, medians over the repetitions) times: ``data`` (waiting for the
loader and moving the batch to the device), ``forward`` (the model), ``loss`` (mining and loss), ``backward``,
``optimizer`` (zero_grad, step, LR schedule), ``logging``, ``checkpoint`` and ``other`` (the rest of the
step: the method's and the loop's own work); ``dmlkit_after_loop_ms`` is what dmlkit's loop did after the
last step (the epoch-end checkpoint, timed in the last repetition). On CUDA every part boundary
synchronises the device, in both loops alike.

Usage:
    python benchmarks/train_speed.py                                 # CPU, Omniglot, small CNN 128-d, 32x4
    python benchmarks/train_speed.py --losses triplet --repeats 5
    python benchmarks/train_speed.py --device cuda --model resnet50 --image-size 224 --precision bf16-mixed \\
        --config configs/paper/cub200_triplet.yaml --set data.root=/data/CUB_200_2011
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("data", "forward", "loss", "backward", "optimizer", "logging", "checkpoint", "other")


class Clock:
    """Per-step part timers and step boundaries (synchronising CUDA at every boundary)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.parts: list[dict[str, float]] = []
        self.starts: list[float] = []
        self.end = 0.0
        self.after: dict[str, float] = defaultdict(float)  # parts timed after the last step (the epoch's end)

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def step(self) -> None:
        """A new step starts now."""
        self.starts.append(self.now())
        self.parts.append(defaultdict(float))

    @contextlib.contextmanager
    def part(self, name: str):
        t0 = self.now()
        try:
            yield
        finally:
            (self.after if self.end else self.parts[-1] if self.parts else self.after)[name] += self.now() - t0

    def summary(self, warmup: int, batch: int) -> dict[str, Any]:
        """images/s and ms per step of each part over the steps after ``warmup``."""
        starts = [*self.starts, self.end]
        timed = range(warmup, len(self.starts))
        wall = [starts[i + 1] - starts[i] for i in timed]
        parts = {name: statistics.fmean(self.parts[i].get(name, 0.0) for i in timed) * 1e3 for name in PARTS[:-1]}
        parts["other"] = statistics.fmean(wall) * 1e3 - sum(parts.values())
        after = {name: round(value * 1e3, 1) for name, value in self.after.items()}
        return {"images_per_s": batch * len(wall) / sum(wall), "parts_ms": parts, "after_loop_ms": after}


def timed(clock: Clock, name: str, fn):
    def wrapper(*args, **kwargs):
        with clock.part(name):
            return fn(*args, **kwargs)

    return wrapper


def hook_module(clock: Clock, module: torch.nn.Module, name: str) -> None:
    """Time every forward of ``module`` as part ``name``."""
    box: dict[str, float] = {}

    def before(*_):
        box["t"] = clock.now()

    def after(*_):
        if clock.parts and not clock.end:
            clock.parts[-1][name] += clock.now() - box["t"]

    module.register_forward_pre_hook(before)
    module.register_forward_hook(after)


# ------------------------------------------------------------------ dmlkit
def dmlkit_run(cfg, warmup: int, batch: int) -> dict[str, Any]:
    """One epoch of ``cfg`` through dmlkit's Trainer, instrumented."""
    from dmlkit.training.trainer import Trainer

    class TimedTrainer(Trainer):
        def _setup(self) -> None:
            super()._setup()
            clock = self.clock = Clock(self.fabric.device)
            loader = self.loader

            class Steps:  # the loader, with the wait for each batch timed and the step boundaries marked
                def __iter__(self_inner):
                    it = iter(loader)
                    while True:
                        clock.step()
                        try:
                            with clock.part("data"):
                                item = next(it)
                        except StopIteration:
                            clock.starts.pop()
                            clock.parts.pop()
                            clock.end = clock.now()
                            return
                        yield item

            self.loader = Steps()
            fabric = self.fabric
            fabric.to_device = timed(clock, "data", fabric.to_device)
            fabric.backward = timed(clock, "backward", fabric.backward)
            fabric.log_dict = timed(clock, "logging", fabric.log_dict)
            for name in ("zero_grad", "step"):
                setattr(self.optimizer, name, timed(clock, "optimizer", getattr(self.optimizer, name)))
            base = type(self.scheduler)  # a subclass, not an instance attribute (which state_dict would save)
            self.scheduler.__class__ = type(
                "Timed" + base.__name__, (base,), {"step": timed(clock, "optimizer", base.step)}
            )
            self._save = timed(clock, "checkpoint", self._save)
            hook_module(clock, self.model, "forward")
            hook_module(clock, self.method.loss, "loss")

        def _record_eval(self, epoch_loss):  # training speed only: no evaluation
            return SimpleNamespace(metrics={})

    with tempfile.TemporaryDirectory() as tmp:
        trainer = TimedTrainer(cfg, Path(tmp) / "run")
        with contextlib.redirect_stdout(sys.stderr):
            trainer.fit()
        return trainer.clock.summary(warmup, batch)


# -------------------------------------------------------------------- bare
class InMemory(torch.utils.data.Dataset):
    """The training images decoded once (uint8), read back as PIL images through the same transform."""

    def __init__(self, images: list[np.ndarray], labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def bare_setup(cfg) -> dict[str, Any]:
    """What the bare loop reads, prepared once (not timed): decoded images and the batch lists."""
    from dmlkit.assembly import check_config
    from dmlkit.assembly.data import build_training_sets

    cfg = check_config(cfg)
    data = build_training_sets(cfg, hide_labels=False)
    raw = data.train.with_transform(None)
    images = [np.asarray(raw.load_image(i)) for i in range(len(raw))]
    return {"cfg": cfg, "images": images, "labels": raw.labels, "transform": data.train.transform}


def bare_run(prep: dict[str, Any], warmup: int, batch: int) -> dict[str, Any]:
    """The same steps in a plain PyTorch + pytorch-metric-learning loop."""
    from lightning.fabric import Fabric

    from dmlkit.assembly.components import build_model
    from dmlkit.data.samplers import PKBatches
    from dmlkit.losses import build_loss
    from dmlkit.training.optim import lr_factor

    cfg = prep["cfg"]
    t = cfg.trainer
    torch.manual_seed(cfg.seed)
    device = Fabric(accelerator=t.accelerator, devices=1).device  # the device dmlkit resolves
    model = build_model(cfg).to(device)
    wrapped = build_loss(cfg.loss["name"], {k: v for k, v in cfg.loss.items() if k != "name"})
    loss_fn, miner = wrapped.loss.to(device), wrapped.miner
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optimizer.lr)
    steps = t.max_steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(cfg.scheduler, s, steps, t.epochs))
    d = cfg.data
    batches = PKBatches(prep["labels"], d.classes_per_batch, d.samples_per_class, seed=cfg.seed).batches(0)[:steps]
    dataset = InMemory(prep["images"], prep["labels"], prep["transform"])
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=d.num_workers)
    autocast = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(t.precision)
    clock = Clock(device)
    model.train()
    it = iter(loader)
    for _ in range(len(batches)):
        clock.step()
        with clock.part("data"):
            x, y = next(it)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
            with clock.part("forward"):
                emb = model(x)
            with clock.part("loss"):
                emb = emb.float()
                loss = loss_fn(emb, y, miner(emb, y) if miner is not None else None)
        with clock.part("backward"):
            loss.backward()
        with clock.part("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            schedule.step()
    clock.end = clock.now()
    return clock.summary(warmup, batch)


# -------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    from dmlkit.config import load_config

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "omniglot_triplet.yaml"))
    p.add_argument("--losses", nargs="+", default=["triplet", "multi_similarity"])
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default=None, help="model.backbone (default: the config's)")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--precision", default="32-true")
    p.add_argument("--embedding-dim", type=int, default=128)
    p.add_argument("--classes", type=int, default=32)
    p.add_argument("--per-class", type=int, default=4)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    if args.warmup >= args.steps:
        raise SystemExit(f"--warmup {args.warmup} must be below --steps {args.steps}")
    if args.threads:
        torch.set_num_threads(args.threads)
    common = [
        f"trainer.accelerator={args.device}",
        f"trainer.precision={args.precision}",
        "trainer.epochs=1",
        f"trainer.max_steps_per_epoch={args.steps}",
        "trainer.progress_bar=false",
        "eval.untrained=false",
        "eval.retrieval_queries=0",  # training speed only: no evaluation, so no figure of one
        f"model.embedding_dim={args.embedding_dim}",
        f"data.classes_per_batch={args.classes}",
        f"data.samples_per_class={args.per_class}",
        f"data.num_workers={args.workers}",
        "scheduler.name=cosine",
    ]
    common += [f"model.backbone={args.model}"] if args.model else []
    common += [f"data.image_size={args.image_size}"] if args.image_size else []
    common += [f"trainer.threads={args.threads}"] if args.threads else []
    batch = args.classes * args.per_class
    configs = {name: load_config(args.config, [*common, f"loss={{name: {name}}}", *args.set]) for name in args.losses}
    preps = {name: bare_setup(cfg) for name, cfg in configs.items()}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.losses}
    for rep in range(args.repeats):
        for name in args.losses:
            order = ("dmlkit", "bare") if rep % 2 == 0 else ("bare", "dmlkit")
            got = {}
            for impl in order:
                got[impl] = (
                    dmlkit_run(configs[name], args.warmup, batch)
                    if impl == "dmlkit"
                    else bare_run(preps[name], args.warmup, batch)
                )
            ratio = got["dmlkit"]["images_per_s"] / got["bare"]["images_per_s"]
            runs[name].append({"order": list(order), **got, "ratio": ratio})
            print(f"rep {rep} {name}: ratio {ratio:.3f}", file=sys.stderr, flush=True)

    def median_parts(which: str, name: str) -> dict[str, float]:
        return {k: round(statistics.median(r[which]["parts_ms"][k] for r in runs[name]), 3) for k in PARTS}

    out = {
        "setting": {
            "config": os.path.relpath(args.config, ROOT),
            "overrides": [*common, *args.set],
            "batch": f"{args.classes} x {args.per_class}",
            "steps": args.steps,
            "warmup": args.warmup,
            "repeats": args.repeats,
        },
        "losses": {
            name: {
                "dmlkit_images_per_s": round(statistics.median(r["dmlkit"]["images_per_s"] for r in rs), 1),
                "bare_images_per_s": round(statistics.median(r["bare"]["images_per_s"] for r in rs), 1),
                "ratio": round(statistics.median(r["ratio"] for r in rs), 3),
                "ratio_range": [round(min(r["ratio"] for r in rs), 3), round(max(r["ratio"] for r in rs), 3)],
                "dmlkit_parts_ms": median_parts("dmlkit", name),
                "bare_parts_ms": median_parts("bare", name),
                "dmlkit_after_loop_ms": rs[-1]["dmlkit"]["after_loop_ms"],  # the epoch-end checkpoint
                "repetitions": [
                    {
                        "order": r["order"],
                        "ratio": round(r["ratio"], 3),
                        "dmlkit_images_per_s": round(r["dmlkit"]["images_per_s"], 1),
                        "bare_images_per_s": round(r["bare"]["images_per_s"], 1),
                    }
                    for r in rs
                ],
            }
            for name, rs in runs.items()
        },
        "machine": {
            "device": args.device,
            "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "load_average": os.getloadavg(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
        },
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
