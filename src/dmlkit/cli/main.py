"""The ``dmlkit`` command line: train, eval, embed, check-data, datasets, report."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dmlkit.errors import DmlkitError, Stopped


def cmd_train(args: argparse.Namespace) -> int:
    from dmlkit.config import load_config
    from dmlkit.config.catalogue import precheck

    precheck(load_config(args.config, args.set))  # keys, types and component names: no torch needed for a typo
    from dmlkit.api import train
    from dmlkit.training.summary import format_table

    result = train(args.config, args.set, run_dir=args.run_dir, resume=args.resume)
    if result.is_global_zero:
        print(format_table(result.metrics))
        print(f"run directory: {result.run_dir}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _check_writable(path: str, flag: str) -> None:
    """Refuse an output path that cannot be written before any work is done (the folder is created)."""
    import tempfile

    target = Path(path)
    if target.is_dir():
        raise DmlkitError(f"{flag} {path}: is a folder; expected a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target.parent):
            pass
    except OSError as exc:
        raise DmlkitError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from exc


def cmd_eval(args: argparse.Namespace) -> int:
    from dmlkit.api import load_run
    from dmlkit.files import atomic_write_text

    if args.output:
        _check_writable(args.output, "--output")
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
        atomic_write_text(args.output, text + "\n")
    print(text)
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from dmlkit.api import load_run

    _check_writable(args.output, "-o/--output")
    run = load_run(args.run, args.checkpoint, args.device)
    dataset = run.folder(args.folder) if args.folder else run.dataset(args.split, args.dataset, args.data_root)
    embeddings = run.embed(dataset)
    embeddings.save(args.output)
    print(f"wrote {len(embeddings.labels)} embeddings of dimension {embeddings.embeddings.shape[1]} to {args.output}")
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    from dmlkit.api import as_config
    from dmlkit.assembly import check_config
    from dmlkit.assembly.data import read_test_side, read_training_split
    from dmlkit.data.verify import identical_problems, verify_images

    cfg = check_config(as_config(args.config, args.set))
    test = read_test_side(cfg)
    parts = {"train": read_training_split(cfg), "test" if test.gallery is None else "query": test.query}
    if test.gallery is not None:
        parts["gallery"] = test.gallery
    workers = cfg.data.num_workers if args.workers is None else args.workers
    checked = {name: verify_images(ds, name, workers, progress=not args.quiet) for name, ds in parts.items()}
    problems = 0
    for name, v in checked.items():
        classes = len(set(parts[name].labels.tolist()))
        print(f"{name}: {len(v.listings)} images, {classes} classes, {len(v.errors)} unreadable")
        for _, error in v.errors[:10]:
            print(f"  unreadable: {error}")
        problems += len(v.errors)
    test_sets = [v for name, v in checked.items() if name != "train"]
    for what, found in identical_problems(checked["train"], test_sets).items():
        if found:
            print(f"{len(found)} group(s) of {what}:")
            for group in found[:10]:
                print("  " + "  =  ".join(group))
            problems += len(found)
    print("no problem found" if not problems else f"{problems} problem(s) found")
    return 0 if not problems else 2


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


def cmd_report(args: argparse.Namespace) -> int:
    from dmlkit.report import find_runs, render_markdown, write_report

    if args.markdown:
        if args.output:
            _check_writable(args.output, "--output")
        text = render_markdown(find_runs(args.runs))
        if args.output:
            from dmlkit.files import atomic_write_text

            atomic_write_text(args.output, text)
        else:
            sys.stdout.write(text)
        return 0
    output = args.output or "report.html"
    _check_writable(output, "--output")
    path = write_report(args.runs, output, args.title)
    print(f"report: {path}")
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
            p.add_argument("--recall-at", type=_positive_int, nargs="+", help="Ks of Recall@K (default: the run's)")
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

    p = sub.add_parser(
        "check-data", help="decode every image of a config's dataset and look for unreadable and identical files"
    )
    p.add_argument("config", help="YAML config (its data section is checked)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--workers", type=int, help="decoding processes (default: data.num_workers)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_check_data)

    p = sub.add_parser("datasets", help="list datasets and their expected layouts")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser(
        "report", help="an HTML report of one run, or a comparison of several (runs differing in seed grouped)"
    )
    p.add_argument("runs", nargs="+", help="run directories, or folders holding run directories")
    p.add_argument("-o", "--output", help="output file (default: report.html; with --markdown: standard output)")
    p.add_argument("--markdown", action="store_true", help="write the comparison table as Markdown instead")
    p.add_argument("--title", help="the page's title")
    p.set_defaults(func=cmd_report)
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
