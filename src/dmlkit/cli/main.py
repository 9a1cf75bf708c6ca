"""The ``dmlkit`` command line: train, eval, embed, datasets."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dmlkit.errors import DmlkitError, Stopped


def cmd_train(args: argparse.Namespace) -> int:
    from dmlkit.api import train
    from dmlkit.training.summary import format_table

    result = train(args.config, args.set, run_dir=args.run_dir, resume=args.resume)
    if result.is_global_zero:
        print(format_table(result.metrics))
        print(f"run directory: {result.run_dir}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from dmlkit.api import load_run

    run = load_run(args.run, args.checkpoint, args.device)
    metrics = run.evaluate(args.dataset, args.data_root, recall_at=args.recall_at)
    out = {
        "checkpoint": str(run.checkpoint),
        "epoch": run.epoch,
        "dataset": args.dataset or run.cfg.data.dataset,
        "metrics": metrics,
    }
    text = json.dumps(out, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from dmlkit.api import load_run

    run = load_run(args.run, args.checkpoint, args.device)
    dataset = run.folder(args.folder) if args.folder else run.dataset(args.split, args.dataset, args.data_root)
    embeddings = run.embed(dataset)
    embeddings.save(args.output)
    print(f"wrote {len(embeddings.labels)} embeddings of dimension {embeddings.embeddings.shape[1]} to {args.output}")
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


def _message(exc: BaseException) -> str:
    """The user's message of an error; one raised in a DataLoader worker arrives wrapped in the worker's
    traceback, of which the last line is the message."""
    text = str(exc)
    if "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        text = f"in a data loader worker: {last.split(': ', 1)[-1]}"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DmlkitError as exc:
        print(f"dmlkit {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"dmlkit {args.command}: interrupted (Ctrl-C); a run's records say so in its metrics.json", file=sys.stderr
        )
        return 130
    except Stopped as exc:
        print(f"dmlkit {args.command}: {exc}; a run's records say so in its metrics.json", file=sys.stderr)
        return 128 + exc.signum


if __name__ == "__main__":
    sys.exit(main())
