"""The ``dmlkit`` command line: train, eval, embed, datasets."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dmlkit.errors import DmlkitError

#: Keys that may differ between a run's saved config and the config it is resumed with.
RESUMABLE_CHANGES = ("trainer.epochs", "trainer.progress_bar", "trainer.threads", "data.num_workers")
#: Set by the first process of a run to its run directory; the processes Lightning launches for
#: ``trainer.devices > 1`` re-run this command and take that directory instead of choosing their own.
RUN_DIR_ENV = "DMLKIT_RUN_DIR"


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _run_dir_for(cfg, config_path: str | None, explicit: str | None, resume: bool) -> Path:
    """``--run-dir``, else OUTPUT_DIR/NAME; a new run never reuses a directory (``-1``, ``-2``... added)."""
    if explicit:
        return Path(explicit)
    base = Path(cfg.output_dir) / (cfg.name or (Path(config_path).stem if config_path else "run"))
    if resume:
        return base
    candidate, n = base, 0
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def cmd_train(args: argparse.Namespace) -> int:
    from dmlkit.config import config_from_dict, config_to_dict, load_config, read_yaml
    from dmlkit.training.trainer import Trainer, format_table

    cfg = load_config(args.config, args.set)
    launched = os.environ.get(RUN_DIR_ENV)
    if launched:  # a process launched by the first one: it already chose and checked the directory
        trainer = Trainer(cfg, launched, resume=args.resume)
        trainer.fit()
        return 0
    if args.run_dir is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise DmlkitError(
            "--run-dir is required when the processes are started by an external launcher "
            f"(WORLD_SIZE={os.environ['WORLD_SIZE']}), so that every process writes to the same run"
        )
    run_dir = _run_dir_for(cfg, args.config, args.run_dir, args.resume)
    last = run_dir / "checkpoints" / "last.pt"
    if args.resume:
        if not last.is_file():
            raise DmlkitError(f"--resume: no checkpoint to resume at {last}")
        saved = config_from_dict(read_yaml(run_dir / "config.yaml"))
        old, new = _flatten(config_to_dict(saved)), _flatten(config_to_dict(cfg))
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        bad = [k for k in changed if k not in RESUMABLE_CHANGES]
        if bad:
            raise DmlkitError(
                f"--resume: the config differs from the one saved in {run_dir / 'config.yaml'} at "
                f"{', '.join(bad)}; only {', '.join(RESUMABLE_CHANGES)} may change when resuming"
            )
    elif last.exists():
        raise DmlkitError(
            f"--run-dir {run_dir} already holds a run ({last} exists): pass --resume to continue it, "
            "or choose another directory"
        )
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        trainer = Trainer(cfg, run_dir, resume=args.resume)
        metrics = trainer.fit()
    finally:
        del os.environ[RUN_DIR_ENV]
    if trainer.fabric.is_global_zero:
        print(format_table(metrics))
        print(f"run directory: {run_dir}")
    return 0


def _eval_split(run, dataset: str | None, data_root: str | None):
    """The test side to evaluate: the run's dataset, or ``--dataset``/``--data-root``, at the run's image size
    and channel mode."""
    from dataclasses import replace

    from dmlkit.data.registry import get_dataset_spec
    from dmlkit.training.trainer import build_eval_split

    cfg = run.cfg
    trained = get_dataset_spec(cfg.data.dataset)
    size = cfg.data.image_size or trained.default_image_size
    if dataset or data_root:
        data = replace(cfg.data, dataset=dataset or cfg.data.dataset, root=data_root or cfg.data.root)
        cfg = replace(cfg, data=data)
    return build_eval_split(cfg, size, trained.mode)


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from dmlkit.evaluation.embed import embed_dataset
    from dmlkit.evaluation.evaluate import evaluate_embeddings
    from dmlkit.training.restore import load_trained

    run = load_trained(args.run, args.checkpoint)
    test = _eval_split(run, args.dataset, args.data_root)
    device = torch.device(args.device)
    run.model.to(device)
    run.method.to(device)

    def embed(ds):
        return embed_dataset(
            lambda x: run.method.embed_for_eval(run.model, x),
            ds,
            batch_size=run.cfg.data.eval_batch_size,
            device=device,
        )

    q, ql = embed(test.query)
    g, gl = (None, None) if test.gallery is None else embed(test.gallery)
    e = run.cfg.eval
    recall_at = tuple(args.recall_at) if args.recall_at else tuple(e.recall_at)
    report = evaluate_embeddings(
        q,
        ql,
        g,
        gl,
        recall_at=recall_at,
        metrics=tuple(e.metrics),
        metric=e.distance,
        seed=run.cfg.seed,
        backend=e.backend,
    )
    out = {
        "checkpoint": str(run.checkpoint),
        "epoch": run.epoch,
        "dataset": args.dataset or run.cfg.data.dataset,
        "metrics": {k: float(v) for k, v in report.metrics.items()},
    }
    text = json.dumps(out, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from dmlkit.data.datasets.folder import image_folder
    from dmlkit.data.registry import build_split, get_dataset_spec
    from dmlkit.data.transforms import build_transforms
    from dmlkit.evaluation.embed import embed_dataset
    from dmlkit.training.restore import load_trained

    run = load_trained(args.run, args.checkpoint)
    train_spec = get_dataset_spec(run.cfg.data.dataset)
    if args.folder:
        ds = image_folder(Path(args.folder), mode=train_spec.mode)
    else:
        spec_name = args.dataset or run.cfg.data.dataset
        root = args.data_root or (run.cfg.data.root if spec_name == run.cfg.data.dataset else None)
        spec = get_dataset_spec(spec_name)
        if args.split not in spec.splits:
            raise DmlkitError(f"--split {args.split!r}: dataset {spec_name!r} has splits {', '.join(spec.splits)}")
        ds = build_split(spec_name, Path(root) if root else None, args.split)
    image_size = run.cfg.data.image_size or train_spec.default_image_size
    ds = ds.with_transform(build_transforms("eval", image_size, train_spec.mode, **run.cfg.data.transform))
    device = torch.device(args.device)
    run.model.to(device)
    run.method.to(device)
    emb, labels = embed_dataset(
        lambda x: run.method.embed_for_eval(run.model, x),
        ds,
        batch_size=run.cfg.data.eval_batch_size,
        device=device,
    )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        embeddings=emb.numpy(),
        labels=labels,
        paths=np.asarray([ds.describe(i) for i in range(len(ds))]),
        class_names=np.asarray(ds.class_names),
    )
    print(f"wrote {len(labels)} embeddings of dimension {emb.shape[1]} to {out}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from dmlkit.data.registry import dataset_names, get_dataset_spec

    for name in dataset_names():
        spec = get_dataset_spec(name)
        print(f"{name}: {spec.description}")
        print(f"  splits: {', '.join(spec.splits)}; images: {spec.mode}; default size: {spec.default_image_size}")
        for line in spec.layout.strip().splitlines():
            print(f"    {line}")
        print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmlkit", description="Deep metric learning with zero-shot retrieval.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("config", help="YAML config, e.g. configs/quickstart.yaml")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set trainer.epochs=5 (repeatable)",
    )
    p.add_argument(
        "--run-dir",
        help="run directory (default: OUTPUT_DIR/NAME, NAME = config file name, with -1, -2, ... appended if taken)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in the run directory")
    p.set_defaults(func=cmd_train)

    for name, func, help_text in (
        ("eval", cmd_eval, "evaluate a trained run"),
        ("embed", cmd_embed, "write embeddings of a dataset split"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("run", help="run directory or checkpoint file")
        p.add_argument(
            "--checkpoint",
            choices=("last", "best"),
            default="last",
            help="which checkpoint of a run directory (default: last)",
        )
        p.add_argument("--dataset", help="dataset name (default: the run's)")
        p.add_argument("--data-root", help="dataset root folder (default: the run's)")
        p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
        if name == "eval":
            p.add_argument("--recall-at", type=int, nargs="+", help="Ks of Recall@K (default: the run's)")
            p.add_argument("--output", help="also write the metrics JSON to this file")
        else:
            p.add_argument("--split", default="test", help="split to embed (default: test)")
            p.add_argument(
                "--folder",
                help="embed every image under this folder instead of a dataset split "
                "(label = name of the image's parent folder)",
            )
            p.add_argument("-o", "--output", required=True, help="output .npz file")
        p.set_defaults(func=func)

    p = sub.add_parser("datasets", help="list datasets and their expected layouts")
    p.set_defaults(func=cmd_datasets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DmlkitError as exc:
        print(f"dmlkit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
