"""What a run is about to do, said before it starts: the data it found, the model, the method and
the devices. Printed at the start of training and saved as ``RUN_DIR/summary.json``, so that a run on
the wrong data (the bundled digits instead of one's own images, a split of one class) shows at once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dmlkit.data.base import DMLDataset

if TYPE_CHECKING:
    from lightning.fabric import Fabric

    from dmlkit.assembly.run import RunAssembly


def _side(dataset: DMLDataset) -> dict[str, int]:
    return {"images": len(dataset), "classes": len(np.unique(dataset.labels))}


def run_summary(parts: RunAssembly, fabric: Fabric) -> dict[str, Any]:
    """The summary of an assembled run (plain data)."""
    cfg, facts, spec = parts.cfg, parts.facts, parts.model.spec
    test = {"layout": "query/gallery" if parts.test.gallery is not None else "leave-one-out"}
    test["queries" if parts.test.gallery is not None else "set"] = _side(parts.test.query)
    if parts.test.gallery is not None:
        test["gallery"] = _side(parts.test.gallery)
    if cfg.data.validation_classes:  # not the test split: held-out training classes (dmlkit.data.holdout)
        test["validation_classes"] = cfg.data.validation_classes
    return {
        "dataset": facts.dataset,
        "root": str(Path(cfg.data.root).expanduser().resolve()) if cfg.data.root else None,
        "images": {"mode": facts.mode, "size": facts.image_size},
        "train": {"images": facts.num_examples, "classes": facts.num_classes if facts.supervised else None},
        "test": test,
        "model": {
            "backbone": spec.get("backbone"),
            "weights": spec.get("weights"),
            "feature_dim": facts.feature_dim,
            "embedding_dim": facts.embedding_dim,
            "normalize": spec.get("normalize"),
        },
        "method": cfg.method["name"],
        "method_settings": parts.method.summary(),
        "loss": None if cfg.loss is None else cfg.loss["name"],
        "batches_per_epoch": len(parts.sampler),
        "device": str(fabric.device),
        "precision": cfg.trainer.precision,
        "processes": fabric.world_size,
        "distributed_batch": cfg.trainer.distributed_batch if fabric.world_size > 1 else None,
        "batchnorm_statistics": _batchnorm(cfg) if fabric.world_size > 1 else None,
    }


def _batchnorm(cfg: Any) -> str:
    if cfg.model.freeze_bn:
        return "frozen"
    return "synchronised" if cfg.trainer.sync_batchnorm else "per process"


def _sharing(s: dict[str, Any]) -> str:
    """How several processes share the batches, or nothing for one."""
    mode = s.get("distributed_batch")
    if mode is None:
        return ""
    bn = s.get("batchnorm_statistics")
    if mode == "global":
        return f", each embedding 1/{s['processes']} of every batch, the loss on the whole batch (BatchNorm {bn})"
    return f", each with batches and a loss of its own (trainer.distributed_batch: per_rank; BatchNorm {bn})"


def format_summary(s: dict[str, Any]) -> str:
    """The summary as three lines of text."""
    where, size = s["root"] or "bundled with dmlkit", s["images"]["size"]
    train = f"{s['train']['images']} images / " + (
        f"{s['train']['classes']} classes" if s["train"]["classes"] is not None else "labels hidden"
    )
    sides = [f"{k} {v['images']} images / {v['classes']} classes" for k, v in s["test"].items() if isinstance(v, dict)]
    held = s["test"].get("validation_classes")
    test = f"validation (the last {held} training classes, held out)" if held else "test"
    m = s["model"]
    norm = ", L2-normalised" if m["normalize"] else ""
    loss = f" + loss {s['loss']}" if s["loss"] else ""
    return "\n".join(
        [
            f"data: {s['dataset']} ({where}), {size}x{size} {s['images']['mode']}; train {train}; "
            f"{test} ({s['test']['layout']}) {'; '.join(sides)}",
            f"model: {m['backbone']} ({m['weights']} weights) -> {m['feature_dim']}-d features -> "
            f"{m['embedding_dim']}-d embedding{norm}",
            f"method: {s['method']}{loss}; {s['batches_per_epoch']} batches per epoch; {s['device']}, "
            f"{s['precision']}, {s['processes']} process(es){_sharing(s)}",
        ]
        + (
            [f"method settings: {', '.join(f'{k}={v}' for k, v in s['method_settings'].items())}"]
            if s["method_settings"]
            else []
        )
    )
