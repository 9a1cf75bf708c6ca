"""The training loop, on Lightning Fabric (devices, mixed precision, DDP).

One :class:`Trainer` runs one :class:`~dmlkit.config.RunConfig` into one run directory.
The loop itself knows nothing of any particular method: it asks the method for its
sampler, step and hooks (see :mod:`dmlkit.methods.base`).
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from lightning.fabric import Fabric
from lightning.fabric.loggers import CSVLogger, TensorBoardLogger
from torch.utils.data import DataLoader
from tqdm import tqdm

from dmlkit.config import RunConfig, config_to_dict, dump_yaml
from dmlkit.data.base import DMLDataset, EvalSplit, stack_batch
from dmlkit.data.registry import get_dataset_spec
from dmlkit.data.samplers import EpochBatchSampler, PKBatchSampler
from dmlkit.data.transforms import build_transforms
from dmlkit.data.unlabeled import UnlabeledDataset
from dmlkit.errors import ConfigError, TrainingError
from dmlkit.evaluation.embed import embed_dataset
from dmlkit.evaluation.evaluate import evaluate_embeddings
from dmlkit.losses import build_loss
from dmlkit.methods import METHODS, Method, MethodContext, TrainStep
from dmlkit.models import build_model
from dmlkit.models.model import EmbeddingModel
from dmlkit.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from dmlkit.training.optim import build_optimizer, build_scheduler, parameter_groups
from dmlkit.training.run_dir import RunDir, environment_info

# Fabric's CSV logger appends to an existing metrics.csv (resume); its warning that old logs
# "will be deleted" is wrong for that case.
warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")


@dataclass
class DataBundle:
    """The datasets of a run, with their transforms applied."""

    train: DMLDataset
    train_eval: DMLDataset
    test: EvalSplit
    mode: str
    image_size: int


def build_eval_split(cfg: RunConfig, image_size: int | None = None, mode: str | None = None) -> EvalSplit:
    """The test side of ``cfg.data`` with the eval transform (size and mode default to the dataset's)."""
    spec = get_dataset_spec(cfg.data.dataset)
    root = Path(cfg.data.root).expanduser() if cfg.data.root else None
    size = image_size or cfg.data.image_size or spec.default_image_size
    eval_tf = build_transforms("eval", size, mode or spec.mode, **cfg.data.transform)
    test = spec.eval_split(root)
    return EvalSplit(
        test.query.with_transform(eval_tf),
        test.gallery.with_transform(eval_tf) if test.gallery is not None else None,
    )


def build_data(cfg: RunConfig) -> DataBundle:
    """Training set (train transform), the same images with the eval transform, and the test side."""
    spec = get_dataset_spec(cfg.data.dataset)
    root = Path(cfg.data.root).expanduser() if cfg.data.root else None
    image_size = cfg.data.image_size or spec.default_image_size
    train_tf = build_transforms("train", image_size, spec.mode, **cfg.data.transform)
    eval_tf = build_transforms("eval", image_size, spec.mode, **cfg.data.transform)
    raw_train = spec.build(root, "train")
    test = build_eval_split(cfg, image_size, spec.mode)
    return DataBundle(
        raw_train.with_transform(train_tf), raw_train.with_transform(eval_tf), test, spec.mode, image_size
    )


def build_model_from_config(cfg: RunConfig, mode: str) -> EmbeddingModel:
    m = cfg.model
    return build_model(
        backbone=m.backbone,
        embedding_dim=m.embedding_dim,
        pretrained=m.pretrained,
        pooling=m.pooling,
        normalize=m.normalize,
        freeze_bn=m.freeze_bn,
        in_channels=1 if mode == "L" else 3,
        head_init=m.head_init,
        backbone_kwargs=m.backbone_kwargs,
        head_dropout=m.head_dropout,
    )


def build_method(cfg: RunConfig, num_classes: int, embedding_dim: int) -> Method:
    """The method named in ``cfg.method``, with the loss of ``cfg.loss`` when it uses one."""
    params = {k: v for k, v in cfg.method.items() if k != "name"}
    factory = METHODS.get(cfg.method["name"], key="method.name")
    loss = None
    if getattr(factory, "uses_loss", True):
        loss_params = {k: v for k, v in cfg.loss.items() if k != "name"}
        loss = build_loss(cfg.loss["name"], loss_params, embedding_dim=embedding_dim, num_classes=num_classes)
    return METHODS.build(
        cfg.method["name"],
        params,
        key="method",
        loss=loss,
        loss_lr_mult=cfg.optimizer.loss_lr_mult,
        num_classes=num_classes,
        embedding_dim=embedding_dim,
    )


def _format_metrics(metrics: dict[str, Any]) -> str:
    return "  ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float)))


class Trainer:
    """Train and evaluate one run.

    Args:
        cfg: The resolved configuration.
        run_dir: Where config, logs, checkpoints and metrics go.
        resume: Continue from ``run_dir/checkpoints/last.pt`` (model, method, optimiser,
            scheduler, sampler position and RNG state).
        fabric: An existing Fabric (tests); by default one is built from ``cfg.trainer``.
    """

    def __init__(self, cfg: RunConfig, run_dir: str | Path, resume: bool = False, fabric: Fabric | None = None):
        self.cfg = cfg
        self.run = RunDir(Path(run_dir))
        self.resume = resume
        t = cfg.trainer
        if t.threads:
            torch.set_num_threads(t.threads)
        self.run.create()
        self.fabric = fabric or Fabric(
            accelerator=t.accelerator,
            devices=t.devices,
            precision=t.precision,
            strategy=t.strategy,
            loggers=[
                CSVLogger(str(self.run.logs), name="csv", version=""),
                TensorBoardLogger(str(self.run.logs), name="tensorboard", version=""),
            ],
        )

    # ----------------------------------------------------------------- set-up
    def _setup(self) -> None:
        cfg, fabric = self.cfg, self.fabric
        fabric.launch()
        fabric.seed_everything(cfg.seed, verbose=False)
        self.data = build_data(cfg)
        self.model = build_model_from_config(cfg, self.data.mode)
        self.supervised = getattr(METHODS.get(cfg.method["name"], key="method.name"), "uses_labels", True)
        if not self.supervised:  # the method never sees a training label (reading one raises)
            self.data = replace(
                self.data, train=UnlabeledDataset(self.data.train), train_eval=UnlabeledDataset(self.data.train_eval)
            )
        self.num_classes = self.data.train.num_classes if self.supervised else 0
        self.method = build_method(cfg, self.num_classes, self.model.embedding_dim)
        world, rank = fabric.world_size, fabric.global_rank

        sampler = self.method.batch_sampler(self.data.train, cfg.seed, rank, world)
        if sampler is None and not self.supervised:
            raise ConfigError(f"method {cfg.method['name']!r} is unsupervised but supplies no batch sampler")
        if sampler is None:
            sampler = PKBatchSampler(
                self.data.train.labels,
                classes_per_batch=cfg.data.classes_per_batch,
                samples_per_class=cfg.data.samples_per_class,
                seed=cfg.seed,
                rank=rank,
                world_size=world,
                skip_singletons=cfg.data.skip_singleton_classes,
                class_names=self.data.train.class_names,
            )
        self.sampler = EpochBatchSampler(sampler, cfg.trainer.max_steps_per_epoch)
        self.steps_per_epoch = len(self.sampler)
        if self.steps_per_epoch < 1:
            raise ConfigError("the training sampler yields no batch: check data.classes_per_batch/samples_per_class")

        self.method.setup(
            MethodContext(
                train_dataset=self.data.train,
                train_dataset_eval=self.data.train_eval,
                num_classes=self.num_classes,
                embedding_dim=self.model.embedding_dim,
                feature_dim=self.model.feature_dim,
                epochs=cfg.trainer.epochs,
                steps_per_epoch=self.steps_per_epoch,
                seed=cfg.seed,
                rank=rank,
                world_size=world,
                embed_dataset=self._embed_dataset,
                batch_config={
                    "classes_per_batch": cfg.data.classes_per_batch,
                    "samples_per_class": cfg.data.samples_per_class,
                },
                run_dir=self.run.path,
                query_gallery=self.data.test.gallery is not None,
                model=self.model,
            )
        )
        groups = parameter_groups(cfg.optimizer, self.model, self.method)
        optimizer = build_optimizer(cfg.optimizer, groups)
        self.step_module, self.optimizer = fabric.setup(TrainStep(self.model, self.method), optimizer)
        self.scheduler = build_scheduler(cfg.scheduler, self.optimizer, self.steps_per_epoch, cfg.trainer.epochs)
        self._check_reload_best()
        # A private generator for the loader's worker seeds, reseeded every epoch, so that creating
        # an iterator never draws from the global RNG (which the transforms use when num_workers=0).
        self.loader_generator = torch.Generator()
        self.loader = DataLoader(
            self.data.train,
            batch_sampler=self.sampler,
            num_workers=cfg.data.num_workers,
            collate_fn=stack_batch,
            persistent_workers=False,
            generator=self.loader_generator,
        )
        # Not fabric.setup_dataloaders: its wrapper calls set_epoch(<number of iterations>) on the batch
        # sampler, which would override the epoch and start position of a resumed run. The P×K sampler
        # shards batches across ranks itself; batches are moved to the device in the loop.

        self.epoch = 0
        self.batch_in_epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.untrained: dict[str, float] | None = None
        self.best: dict[str, Any] | None = None
        self.reloads: list[dict[str, int]] = []
        self.train_time = 0.0

    def _check_reload_best(self) -> None:
        """``scheduler.reload_best_at`` needs an evaluation (hence a ``best.pt``) before its first epoch."""
        cfg = self.cfg
        at = cfg.scheduler.reload_best_at
        if any(not isinstance(e, int) or isinstance(e, bool) or not 2 <= e <= cfg.trainer.epochs for e in at):
            raise ConfigError(
                f"config key 'scheduler.reload_best_at': expected epoch numbers in 2..{cfg.trainer.epochs} "
                f"(trainer.epochs), got {at}"
            )
        if at and min(at) - 1 < cfg.trainer.eval_every:
            raise ConfigError(
                f"config key 'scheduler.reload_best_at': epoch {min(at)} comes before the first evaluation "
                f"(trainer.eval_every={cfg.trainer.eval_every}), so there is no best checkpoint to reload"
            )
        if at:
            self._print(
                f"scheduler.reload_best_at={at}: the weights are reloaded from best.pt, which is selected on the "
                "evaluation split (the reference's schedule; its figures select on the test set)"
            )

    # ------------------------------------------------------------ evaluation
    def _embed_dataset(
        self, dataset: DMLDataset, embed: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, Any]:
        fabric = self.fabric
        was_training = self.model.training
        self.model.eval()
        self.method.eval()
        try:
            with fabric.autocast(), warnings.catch_warnings():
                # Lightning's all_gather calls a torch function that torch now marks deprecated
                warnings.filterwarnings("ignore", message=r".*all_gather is deprecated")
                return embed_dataset(
                    embed or (lambda images: self.method.embed_for_eval(self.model, images)),
                    dataset,
                    batch_size=self.cfg.data.eval_batch_size,
                    num_workers=self.cfg.data.num_workers,
                    device=fabric.device,
                    rank=fabric.global_rank,
                    world_size=fabric.world_size,
                    gather=fabric.all_gather,
                )
        finally:
            self.model.train(was_training)
            self.method.train(was_training)

    def evaluate(self, final: bool = False) -> dict[str, float]:
        """Zero-shot retrieval and clustering metrics on the test side (``final``: after the last epoch)."""
        e = self.cfg.eval
        test = self.data.test
        q_emb, q_lab = self._embed_dataset(test.query)
        g_emb, g_lab = (None, None) if test.gallery is None else self._embed_dataset(test.gallery)
        report = evaluate_embeddings(
            q_emb,
            q_lab,
            g_emb,
            g_lab,
            recall_at=tuple(e.recall_at),
            metrics=tuple(e.metrics),
            metric=e.distance,
            seed=self.cfg.seed,
            backend=e.backend,
        )
        metrics = {k: float(v) for k, v in report.metrics.items()}
        metrics.update({k: float(v) for k, v in self.method.eval_metrics(q_emb, q_lab, test.query, final).items()})
        return metrics

    # ------------------------------------------------------------ checkpoints
    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "method": self.method.state_dict(),
            "method_extra": self.method.extra_checkpoint_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.global_step,
            "history": self.history,
            "untrained": self.untrained,
            "best": self.best,
            "reloads": self.reloads,
            "train_time": self.train_time,
            "rng": rng_state(),
            "config": config_to_dict(self.cfg),
            "num_classes": self.num_classes,
        }

    def _save(self, path: Path) -> None:
        if self.fabric.is_global_zero:
            save_checkpoint(path, self._state())
        self.fabric.barrier()

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path)
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        self.method.load_extra_checkpoint_state(state.get("method_extra", {}))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        self.epoch = state["epoch"]
        self.batch_in_epoch = state["batch_in_epoch"]
        self.global_step = state["global_step"]
        self.history = state["history"]
        self.untrained = state["untrained"]
        self.best = state["best"]
        self.reloads = state.get("reloads", [])
        self.train_time = state["train_time"]
        set_rng_state(state["rng"])

    def _metrics(self, status: str, error: str | None = None) -> dict[str, Any]:
        """``metrics.json``'s content (every rank holds it)."""
        data: dict[str, Any] = {
            "status": status,
            "test": self.history[-1]["metrics"] if self.history else None,
            "test_epoch": self.history[-1]["epoch"] if self.history else None,
            "best": self.best,
            "untrained": self.untrained,
            "history": self.history,
            "reloads": self.reloads,
            "epochs_completed": self.epoch,
            "global_step": self.global_step,
            "train_time_s": round(self.train_time, 3),
        }
        if error:
            data["error"] = error
        return data

    def _write_metrics(self, status: str, error: str | None = None) -> None:
        if self.fabric.is_global_zero:
            self.run.write_metrics(self._metrics(status, error))

    def _reload_best(self) -> None:
        """Restore the model and method weights of ``best.pt`` (optimiser, schedule and RNG go on)."""
        state = load_checkpoint(self.run.best)
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        self.method.load_extra_checkpoint_state(state.get("method_extra", {}))
        self.reloads.append({"epoch": self.epoch + 1, "from_epoch": state["epoch"]})
        self._print(f"epoch {self.epoch + 1}: reloaded the weights of the best epoch so far ({state['epoch']})")

    # ------------------------------------------------------------------ loop
    def _progress(self, total: int, initial: int) -> tqdm | None:
        show = self.cfg.trainer.progress_bar
        if show == "auto":
            show = sys.stderr.isatty()
        if not show or not self.fabric.is_global_zero:
            return None
        return tqdm(
            total=total,
            initial=initial,
            desc=f"epoch {self.epoch + 1}/{self.cfg.trainer.epochs}",
            leave=False,
            dynamic_ncols=True,
        )

    def _train_epoch(self) -> float:
        cfg, fabric = self.cfg, self.fabric
        self.sampler.set_epoch(self.epoch, start_batch=self.batch_in_epoch)
        self.loader_generator.manual_seed(cfg.seed * 100_003 + self.epoch)
        if self.batch_in_epoch == 0:
            self.method.on_epoch_start(self.epoch, self.model)
        self.step_module.train()
        bar = self._progress(self.steps_per_epoch, self.batch_in_epoch)
        losses: list[float] = []
        t0 = time.perf_counter()
        images_seen = 0
        for batch in self.loader:
            batch = fabric.to_device(batch)
            self.optimizer.zero_grad(set_to_none=True)
            out = self.step_module(batch)
            loss = out.loss
            if not torch.isfinite(loss.detach()).all():
                raise TrainingError(
                    f"non-finite loss ({loss.item()}) at epoch {self.epoch + 1}, "
                    f"step {self.batch_in_epoch + 1} "
                    f"(global step {self.global_step + 1}); training stopped. The last good checkpoint is "
                    f"{self.run.last if self.run.last.exists() else 'absent (no epoch completed)'}"
                )
            fabric.backward(loss)
            if cfg.trainer.grad_clip:
                fabric.clip_gradients(self.step_module, self.optimizer, max_norm=cfg.trainer.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.method.after_step(self.model, self.global_step)
            self.global_step += 1
            self.batch_in_epoch += 1
            images_seen += len(batch["index"]) * fabric.world_size
            value = float(loss.detach())
            losses.append(value)
            speed = images_seen / max(time.perf_counter() - t0, 1e-9)
            if self.global_step % cfg.trainer.log_every == 0:
                logs = {
                    "train/loss": value,
                    "train/lr": self.optimizer.param_groups[0]["lr"],
                    "train/images_per_s": speed,
                    "epoch": self.epoch,
                }
                logs.update({f"train/{k}": v for k, v in out.logs.items()})
                fabric.log_dict(logs, step=self.global_step)
            if bar is not None:
                bar.set_postfix(loss=f"{value:.4f}", img_s=f"{speed:.0f}")
                bar.update(1)
            every = cfg.trainer.checkpoint_every_steps
            if every and self.global_step % every == 0 and self.batch_in_epoch < self.steps_per_epoch:
                self._save(self.run.last)
        if bar is not None:
            bar.close()
        self.train_time += time.perf_counter() - t0
        return sum(losses) / max(len(losses), 1)

    def _record_eval(self, epoch_loss: float | None) -> dict[str, float]:
        metrics = self.evaluate(final=self.epoch >= self.cfg.trainer.epochs)
        entry = {"epoch": self.epoch, "step": self.global_step, "metrics": metrics}
        if epoch_loss is not None:
            entry["train_loss"] = epoch_loss
        self.history.append(entry)
        self.fabric.log_dict({f"test/{k}": v for k, v in metrics.items()}, step=self.global_step)
        key = self.cfg.eval.best_metric
        if key not in metrics:
            raise ConfigError(
                f"config key 'eval.best_metric': {key!r} is not computed; available: {', '.join(metrics)}"
            )
        if self.best is None or metrics[key] > self.best["metrics"][key]:
            self.best = {"epoch": self.epoch, "step": self.global_step, "metrics": metrics}
            self._save(self.run.best)
        return metrics

    def fit(self) -> dict[str, Any]:
        """Train (or resume), evaluating every ``eval_every`` epochs; returns ``metrics.json``'s content."""
        self._setup()
        cfg, fabric = self.cfg, self.fabric
        if fabric.is_global_zero:
            self.run.write_config(dump_yaml(config_to_dict(cfg)))
            env = environment_info(cfg.seed, fabric.device, fabric.world_size, cfg.trainer.precision)
            env["model"] = getattr(self.model, "spec", None)  # resolved backbone, weights origin, notes
            self.run.write_env(env)
        if self.resume:
            self._load(self.run.last)
            self._print(f"resumed from {self.run.last} at epoch {self.epoch + 1}, step {self.batch_in_epoch}")
        elif cfg.eval.untrained:
            self.untrained = self.evaluate()
            self._print(f"untrained: {_format_metrics(self.untrained)}")
        try:
            while self.epoch < cfg.trainer.epochs:
                if self.batch_in_epoch == 0 and self.epoch + 1 in cfg.scheduler.reload_best_at:
                    self._reload_best()
                epoch_loss = self._train_epoch()
                self.epoch += 1
                self.batch_in_epoch = 0
                summary = self.method.on_epoch_end(self.epoch - 1, self.model)
                if summary:
                    fabric.log_dict({f"method/{k}": v for k, v in summary.items()}, step=self.global_step)
                line = f"epoch {self.epoch}/{cfg.trainer.epochs}: loss={epoch_loss:.4f}"
                if summary:
                    line += "  " + _format_metrics(summary)
                if self.epoch % cfg.trainer.eval_every == 0 or self.epoch == cfg.trainer.epochs:
                    line += "  " + _format_metrics(self._record_eval(epoch_loss))
                self._save(self.run.last)
                self._write_metrics("running")
                self._print(line)
        except TrainingError as exc:
            self._write_metrics("failed", str(exc))
            raise
        except KeyboardInterrupt:
            self._write_metrics("interrupted")
            raise
        self._write_metrics("completed")
        for logger in fabric.loggers:
            logger.finalize("success")
        return json.loads(json.dumps(self._metrics("completed")))  # as metrics.json reads back, on every rank

    def _print(self, text: str) -> None:
        if self.fabric.is_global_zero:
            print(text, flush=True)


def format_table(metrics: dict[str, Any]) -> str:
    """A text table of untrained, final and best metrics from ``metrics.json``'s content."""
    rows = [("untrained", metrics.get("untrained")), ("final", metrics.get("test"))]
    if metrics.get("best"):
        rows.append((f"best (epoch {metrics['best']['epoch']})", metrics["best"]["metrics"]))
    keys = [k for k in (metrics.get("test") or metrics.get("untrained") or {})]
    width = max(len(r[0]) for r in rows)
    lines = [" " * width + " | " + " | ".join(f"{k:>11}" for k in keys)]
    lines.append("-" * len(lines[0]))
    for name, values in rows:
        if values:
            lines.append(f"{name:<{width}} | " + " | ".join(f"{values.get(k, math.nan):>11.4f}" for k in keys))
    return "\n".join(lines)
