"""The training loop, on Lightning Fabric (devices, mixed precision, DDP).

One :class:`Trainer` runs one config into one run directory. Everything the loop uses is
assembled by :mod:`dmlkit.assembly` (data, model, method, batches, optimiser, evaluator); this
module is the loop alone: epochs and steps, evaluation, checkpoints, logs and ``metrics.json``.
It knows nothing of any particular method: it calls the method's hooks (:mod:`dmlkit.methods.base`).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.fabric import Fabric
from lightning.fabric.loggers import CSVLogger, TensorBoardLogger
from torch.utils.data import DataLoader
from tqdm import tqdm

from dmlkit.assembly import RunAssembly, assemble, build_fabric, check_config
from dmlkit.assembly.summary import format_summary, run_summary
from dmlkit.config import RunConfig, config_to_dict, dump_yaml
from dmlkit.data.base import stack_batch
from dmlkit.data.samplers import SeededItems
from dmlkit.errors import ConfigError, DmlkitError, Stopped, TrainingError
from dmlkit.evaluation.evaluator import Evaluation
from dmlkit.evaluation.retrieval_figure import write_retrieval_figure
from dmlkit.facts import RunFacts
from dmlkit.files import json_safe
from dmlkit.methods import TrainStep
from dmlkit.training.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from dmlkit.training.run_dir import RunDir, check_run_dir, environment_info, unresumable_changes
from dmlkit.training.run_lock import RunLock
from dmlkit.training.signals import stop_signals_raise

# Fabric's CSV logger appends to an existing metrics.csv (resume); its warning that old logs
# "will be deleted" is wrong for that case.
warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")


def _first_process() -> bool:
    """Whether this is the first process of a run (rank 0 of node 0; processes started by Lightning or by
    an external launcher such as torchrun or srun carry their ranks in the environment)."""
    return all(os.environ.get(var, "0") == "0" for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def _format_metrics(metrics: dict[str, Any]) -> str:
    return "  ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float)))


class Trainer:
    """Train and evaluate one run.

    Args:
        cfg: The run's config; checked and resolved by :func:`~dmlkit.assembly.check_config` here,
            before anything is created.
        run_dir: Where config, logs, checkpoints, figures and metrics go. Created once the run is
            assembled; it must not hold another run unless ``resume``.
        resume: Continue from ``run_dir/checkpoints/last.pt`` (model, method, optimiser, schedule,
            position in the epoch, RNG state); only
            :data:`~dmlkit.training.run_dir.RESUMABLE_CHANGES` may differ from the saved config.
        fabric: An existing Fabric (tests); by default one is built from ``cfg.trainer``.
    """

    def __init__(self, cfg: RunConfig, run_dir: str | Path, resume: bool = False, fabric: Fabric | None = None):
        self.cfg = check_config(cfg)
        self.run = RunDir(Path(run_dir))
        self.resume = resume
        if _first_process():  # the processes a run launches share the first one's directory
            check_run_dir(self.run, self.cfg, resume)
        if self.cfg.trainer.threads:
            torch.set_num_threads(self.cfg.trainer.threads)
        self.fabric = fabric or build_fabric(
            self.cfg.trainer,
            loggers=[
                # every row written when it is logged, so a killed run keeps its log
                CSVLogger(str(self.run.logs), name="csv", version="", flush_logs_every_n_steps=1),
                TensorBoardLogger(str(self.run.logs), name="tensorboard", version=""),
            ],
        )
        self.lock = RunLock(self.run.path)

    # ----------------------------------------------------------------- set-up
    def _setup(self) -> None:
        cfg, fabric = self.cfg, self.fabric
        fabric.launch()
        fabric.seed_everything(cfg.seed, verbose=False)
        self.parts: RunAssembly = assemble(cfg, fabric, self.run.plots)
        self.model, self.method, self.sampler = self.parts.model, self.parts.method, self.parts.sampler
        if cfg.trainer.sync_batchnorm and fabric.world_size > 1:
            if fabric.device.type == "cpu":
                raise ConfigError(
                    "config key 'trainer.sync_batchnorm': SyncBatchNorm needs GPUs (torch has no CPU version); "
                    "set it to false on CPU"
                )
            # the same modules' parameters and buffers, so the optimiser and checkpoints are unchanged
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.steps_per_epoch = len(self.sampler)
        self.step_module, self.optimizer = fabric.setup(TrainStep(self.model, self.method), self.parts.optimizer)
        self.scheduler = self.parts.scheduler
        # A private generator for the loader's worker seeds, reseeded every epoch, so that creating
        # an iterator never draws from the global RNG (the model's randomness: dropout, DVML's samples).
        self.loader_generator = torch.Generator()
        self.loader = DataLoader(
            SeededItems(self.parts.data.train),  # augmentation per (seed, epoch, batch, position)
            batch_sampler=self.sampler,
            num_workers=cfg.data.num_workers,
            collate_fn=stack_batch,
            # workers kept across epochs (each item's augmentation is seeded by SeededItems, not by the
            # worker), and pinned host memory for an asynchronous copy to a GPU
            persistent_workers=cfg.data.num_workers > 0,
            pin_memory=fabric.device.type == "cuda",
            generator=self.loader_generator,
        )
        # Not fabric.setup_dataloaders: its wrapper calls set_epoch(<number of iterations>) on the batch
        # sampler, which would override the epoch and start position of a resumed run. The epoch
        # sampler shards batches across ranks itself; batches are moved to the device in the loop.
        self.epoch = 0
        self.batch_in_epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.untrained: dict[str, float] | None = None
        self.best: dict[str, Any] | None = None
        self.reloads: list[dict[str, int]] = []
        self.train_time = 0.0

    # ------------------------------------------------------------ evaluation
    def evaluate(self, final: bool = False) -> Evaluation:
        """Zero-shot retrieval, clustering and the method's metrics on the test side."""
        return self.parts.evaluator(final=final)

    # ------------------------------------------------------------ checkpoints
    def _state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": config_to_dict(self.cfg),
            "facts": self.parts.facts.to_dict(),
            "model": self.model.state_dict(),
            "method": self.method.state_dict(),
            "method_extra": self.method.extra_checkpoint_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.global_step,
            "history": self.history,
            "untrained": self.untrained,
            "best": self.best,
            "reloads": self.reloads,
            "train_time": self.train_time,
            "rng": rng_state(),
        }

    def _save(self, path: Path) -> None:
        if self.fabric.is_global_zero:
            save_checkpoint(path, self._state())
        self.fabric.barrier()

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise DmlkitError(
                f"--resume: {path} was written by another version of dmlkit (format {state.get('format')!r})"
            )
        self._check_same_run(path, state)
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        self.method.load_extra_checkpoint_state(state["method_extra"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = state["epoch"]
        self.batch_in_epoch = state["batch_in_epoch"]
        self.global_step = state["global_step"]
        self.history = state["history"]
        self.untrained = state["untrained"]
        self.best = state["best"]
        self.reloads = state["reloads"]
        self.train_time = state["train_time"]
        set_rng_state(state["rng"])

    def _check_same_run(self, path: Path, state: dict[str, Any]) -> None:
        """A checkpoint resumes only the run that wrote it: same config (up to the resumable keys), same data."""
        bad = unresumable_changes(state["config"], self.cfg)
        if bad:
            raise DmlkitError(
                f"--resume: {path} was written by another run: its config differs from this run's at {', '.join(bad)}"
            )
        saved, now = RunFacts.from_dict(state["facts"]).to_dict(), self.parts.facts.to_dict()  # older: defaults
        before = saved["world_size"]
        if before != now["world_size"]:
            raise DmlkitError(
                f"--resume: {path} was written by a run of {before} process(es), this one has {now['world_size']} "
                "(trainer.devices x trainer.num_nodes): the batch of a step and the batches of an epoch depend on "
                f"the number of processes, so resume on {before}, or start a new run"
            )
        derived = ("class_names", "epochs")  # the names are compared below; epochs is trainer.epochs (resumable)
        changed = [f"{k} {saved[k]!r} -> {now[k]!r}" for k in now if k not in derived and saved.get(k) != now[k]]
        if saved.get("class_names") != now["class_names"]:
            changed.append("the class names")
        if changed:
            raise DmlkitError(
                f"--resume: the run's data or model changed since {path} was written ({'; '.join(changed)}); "
                "resume with the data it was trained on, or start a new run"
            )

    def _reload_best(self) -> None:
        """Restore the model and method weights of ``best.pt`` (the rest of the state goes on)."""
        state = load_checkpoint(self.run.best)
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        self.reloads.append({"epoch": self.epoch + 1, "from_epoch": state["epoch"]})
        self._print(
            f"epoch {self.epoch + 1}: reloaded the weights of best.pt (epoch {state['epoch']}), which is "
            "selected on the evaluation split"
        )

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
        # Scalars stay on the device and are read on logging steps only (no per-step host sync): the
        # epoch's loss sum, and the first step whose loss was not finite (-1: none yet).
        loss_sum = torch.zeros((), dtype=torch.float64, device=fabric.device)
        first_bad = torch.full((), -1, dtype=torch.long, device=fabric.device)
        bad_value = torch.zeros((), dtype=torch.float64, device=fabric.device)
        epoch_start = self.global_step - self.batch_in_epoch
        steps = 0
        t0 = time.perf_counter()
        images_seen = 0
        for batch in self.loader:
            batch = fabric.to_device(batch)
            self.optimizer.zero_grad(set_to_none=True)
            out = self.step_module(batch)
            loss = out.loss.detach()
            bad = ~torch.isfinite(loss).all()
            new_bad = bad & (first_bad < 0)
            bad_value = torch.where(new_bad, loss.to(torch.float64).sum(), bad_value)
            first_bad = torch.where(new_bad, self.global_step, first_bad)
            fabric.backward(out.loss)
            if cfg.trainer.grad_clip:
                fabric.clip_gradients(self.step_module, self.optimizer, max_norm=cfg.trainer.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.method.after_step(self.model, self.global_step)
            self.global_step += 1
            self.batch_in_epoch += 1
            steps += 1
            images_seen += len(batch["index"]) * fabric.world_size
            loss_sum += loss.to(torch.float64)
            speed = images_seen / max(time.perf_counter() - t0, 1e-9)
            every = cfg.trainer.checkpoint_every_steps
            save = every and self.global_step % every == 0 and self.batch_in_epoch < self.steps_per_epoch
            log = self.global_step % cfg.trainer.log_every == 0
            if log or save or bar is not None or self.batch_in_epoch == self.steps_per_epoch:
                self._stop_if_not_finite(first_bad, bad_value, epoch_start)
            if log:
                logs = {
                    "train/loss": float(loss),
                    "train/lr": self.optimizer.param_groups[0]["lr"],
                    "train/images_per_s": speed,
                    "epoch": self.epoch,
                }
                logs.update({f"train/{k}": float(v) for k, v in out.logs.items()})
                fabric.log_dict(logs, step=self.global_step)
            if bar is not None:
                bar.set_postfix(loss=f"{float(loss):.4f}", img_s=f"{speed:.0f}")
                bar.update(1)
            if save:
                self._save(self.run.last)
        self._stop_if_not_finite(first_bad, bad_value, epoch_start)
        if bar is not None:
            bar.close()
        self.train_time += time.perf_counter() - t0
        return float(loss_sum) / max(steps, 1)

    def _stop_if_not_finite(self, first_bad: torch.Tensor, value: torch.Tensor, epoch_start: int) -> None:
        """Raise if a step of this epoch had a non-finite loss. Read on logging and checkpoint steps and at
        the epoch's end (not every step: no host sync), so a checkpoint is never written after one."""
        step = int(first_bad)
        if step < 0:
            return
        last = self.run.last if self.run.last.exists() else "absent (no epoch completed)"
        raise TrainingError(
            f"non-finite loss ({float(value)}) at epoch {self.epoch + 1}, step {step - epoch_start + 1} "
            f"(global step {step + 1}); training stopped (seen at global step {self.global_step}). The last good "
            f"checkpoint is {last}"
        )

    def _record_eval(self, epoch_loss: float | None) -> Evaluation:
        evaluation = self.evaluate(final=self.epoch >= self.cfg.trainer.epochs)
        metrics = evaluation.metrics
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
        return evaluation

    def _start_run_dir(self) -> None:
        """Lock the run directory, check it again under the lock, create it and record the config and the
        environment (first process; the others wait)."""
        if self.fabric.is_global_zero:
            self.lock.acquire()
            try:
                check_run_dir(self.run, self.cfg, self.resume)  # another run may have started since __init__
            except BaseException:
                self.lock.release()
                self.run.remove_if_empty()
                raise
            self.run.create()
            cfg = self.cfg
            self.run.write_config(dump_yaml(config_to_dict(cfg)))
            env = environment_info(cfg.seed, self.fabric.device, self.fabric.world_size, cfg.trainer.precision)
            env["model"] = getattr(self.model, "spec", None)  # resolved backbone, weights origin, notes
            self.run.write_env(env)
            summary = run_summary(self.parts, self.fabric)
            self.run.write_summary(summary)
            self._print(format_summary(summary))
        self.fabric.barrier()

    def fit(self) -> dict[str, Any]:
        """Train (or resume), evaluating every ``eval_every`` epochs; returns ``metrics.json``'s content.

        Every way out is recorded in ``metrics.json`` (``status``: ``completed``, ``failed`` with the
        error, ``interrupted`` for Ctrl-C, ``killed-by-signal`` with the signal for SIGTERM/SIGHUP), the
        CSV log keeps every row logged, and the run directory's lock is released.
        """
        self._setup()
        self._start_run_dir()
        try:
            with stop_signals_raise():
                return self._fit()
        finally:
            self.lock.release()

    def _end(self, status: str, error: str | None = None) -> None:
        self._write_metrics(status, error)
        for logger in self.fabric.loggers:
            logger.finalize(status)

    def _fit(self) -> dict[str, Any]:
        cfg, fabric = self.cfg, self.fabric
        try:
            if self.resume:
                self._load(self.run.last)
                self._print(f"resumed from {self.run.last} at epoch {self.epoch + 1}, step {self.batch_in_epoch}")
            self._write_metrics("running")  # a record from the start: kill -9 leaves "running", nothing else can
            if not self.resume and cfg.eval.untrained:
                self.untrained = self.evaluate().metrics
                self._print(f"untrained: {_format_metrics(self.untrained)}")
            final: Evaluation | None = None
            while self.epoch < cfg.trainer.epochs:
                if self.batch_in_epoch == 0 and self.method.restore_best_before(self.epoch):
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
                    final = self._record_eval(epoch_loss)
                    line += "  " + _format_metrics(final.metrics)
                self._save(self.run.last)
                self._write_metrics("running")
                self._print(line)
            if final is not None:
                self._write_retrieval_figure(final)
                self.method.on_train_end(final)
        except Exception as exc:  # a non-finite loss, a bad image, a crash: the record says so
            self._end("failed", str(exc) if isinstance(exc, DmlkitError) else f"{type(exc).__name__}: {exc}")
            raise
        except KeyboardInterrupt:
            self._end("interrupted", "KeyboardInterrupt (Ctrl-C)")
            raise
        except Stopped as exc:
            self._end("killed-by-signal", exc.name)
            raise
        self._end("completed")
        return json.loads(json.dumps(json_safe(self._metrics("completed"))[0]))  # as metrics.json reads back

    def _write_retrieval_figure(self, final: Evaluation) -> None:
        """``plots/retrieval.png`` of the final evaluation (first process)."""
        e = self.cfg.eval
        if not (self.fabric.is_global_zero and e.retrieval_queries):
            return
        path = self.run.plots / "retrieval.png"
        try:
            write_retrieval_figure(path, final, e.retrieval_queries, e.retrieval_neighbours, self.cfg.seed, e.distance)
        except (OSError, ValueError) as exc:  # a figure never fails a trained run; it says why it is missing
            warnings.warn(f"{path} not written: {type(exc).__name__}: {exc}", stacklevel=2)

    def _print(self, text: str) -> None:
        if self.fabric.is_global_zero:
            print(text, flush=True)
