"""Deep Variational Metric Learning (Lin et al., ECCV 2018) on top of any base loss.

On the pooled backbone features x (the reconstruction target):

* z_I = the model's own projection (:meth:`EmbeddingModel.project`), the test-time embedding;
* μ, log σ² from :class:`~dmlkit.methods.dvml.modules.VariationalHead`; T samples
  z_V = μ + σ·ε and synthesised ẑ = z_I + z_V;
* a decoder reconstructs x from every ẑ.

Loss ``λ1·KL + λ2·recon + λ3·L_m(ẑ) + λ4·L_m(z_I)`` with the base metric loss L_m of the run's
``loss`` section. Phase 1 (the first ``phase1_epochs`` epochs, default a quarter of the run):
λ = (1, 1, 0.1, 1) and the decoder's input is detached, so the reconstruction trains only the
decoder; phase 2: λ = (0.8, 1, 0.2, 0.8) with the input attached. The reconstruction target x is
always detached (``detach_target``). z_I and ẑ go through the model's configured normalisation
(``model.normalize``) before L_m: L2-normalised for Triplet / Triplet2+DWS, raw for N-pair.
L_m(ẑ) averages over the T synthetic batches (``synthetic_in_loss: all``) or uses the first only.

After the final evaluation (:meth:`~dmlkit.methods.base.Method.on_train_end`) the run directory gets
``plots/tsne_test.png`` (Barnes-Hut t-SNE of test
embeddings of up to ``tsne_classes`` classes; the paper's Fig. 4) and ``plots/tsne_centred.png``
(the same embeddings minus their class centre, the "central latent space" of Fig. 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dmlkit.errors import ConfigError
from dmlkit.losses import validate
from dmlkit.losses.base import MetricLoss
from dmlkit.methods.base import StepOutput
from dmlkit.methods.dvml.modules import Decoder, VariationalHead, kl_to_standard_normal, reconstruction_loss
from dmlkit.methods.metric_loss import MetricLossMethod
from dmlkit.methods.registry import METHODS
from dmlkit.visualization import plot_distribution, tsne_2d

if TYPE_CHECKING:
    from dmlkit.evaluation.evaluator import Evaluation
    from dmlkit.models.model import EmbeddingModel

PHASE1_LAMBDAS = (1.0, 1.0, 0.1, 1.0)
PHASE2_LAMBDAS = (0.8, 1.0, 0.2, 0.8)


def _lambdas(key: str, value: Sequence[float]) -> tuple[float, float, float, float]:
    ok = isinstance(value, (list, tuple)) and len(value) == 4
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value)
    if not ok:
        raise ConfigError(
            f"config key 'method.{key}': expected four numbers >= 0 (KL, recon, L_m(ẑ), L_m(z_I)), got {value!r}"
        )
    return tuple(float(v) for v in value)  # type: ignore[return-value]


@METHODS.register("dvml")
class DVMLMethod(MetricLossMethod):
    """DVML around the run's base loss (``loss`` section).

    Args:
        loss: The base metric loss L_m (the ``loss`` section; supplied by the assembly).
        feature_dim, embedding_dim, epochs, seed: Facts of the run (supplied by the assembly).
        num_samples: T, synthesised samples per example (20).
        phase1_epochs: Epochs of phase 1; ``None`` (default) takes ``round(phase1_fraction × epochs)``.
        phase1_fraction: Fraction of the run in phase 1 when ``phase1_epochs`` is not given (0.25).
        phase1_lambdas: λ1..λ4 of phase 1, (1, 1, 0.1, 1).
        phase2_lambdas: λ1..λ4 of phase 2, (0.8, 1, 0.2, 0.8).
        reconstruction: ``sum`` (squared L2 summed over feature dims) or ``mean`` (MSE).
        detach_target: Detach the reconstruction target x (default true).
        synthetic_in_loss: ``all`` (average L_m over the T synthetic batches) or ``first``.
        decoder_hidden: Hidden size of the decoder (default: the embedding size, 512 in the paper).
        logvar_clamp: Bound of |log σ²|.
        tsne: Write the t-SNE figures at the end of training.
        tsne_classes: Classes shown in the t-SNE figures (the first ones of the test set).
        tsne_points: Most points in a t-SNE figure.
    """

    def __init__(
        self,
        loss: MetricLoss,
        feature_dim: int,
        embedding_dim: int,
        epochs: int,
        seed: int = 0,
        num_samples: int = 20,
        phase1_epochs: int | None = None,
        phase1_fraction: float = 0.25,
        phase1_lambdas: Sequence[float] = PHASE1_LAMBDAS,
        phase2_lambdas: Sequence[float] = PHASE2_LAMBDAS,
        reconstruction: str = "sum",
        detach_target: bool = True,
        synthetic_in_loss: str = "all",
        decoder_hidden: int | None = None,
        logvar_clamp: float = 10.0,
        tsne: bool = True,
        tsne_classes: int = 10,
        tsne_points: int = 2000,
    ) -> None:
        super().__init__(loss)
        validate.positive_int("method.num_samples", num_samples)
        if phase1_epochs is not None:
            validate.non_negative_int("method.phase1_epochs", phase1_epochs)
        if not isinstance(phase1_fraction, (int, float)) or not 0 <= phase1_fraction <= 1:
            raise ConfigError(
                f"config key 'method.phase1_fraction': expected a number in [0, 1], got {phase1_fraction!r}"
            )
        if reconstruction not in ("sum", "mean"):
            raise ConfigError(f"config key 'method.reconstruction': expected 'sum' or 'mean', got {reconstruction!r}")
        if synthetic_in_loss not in ("all", "first"):
            raise ConfigError(
                f"config key 'method.synthetic_in_loss': expected 'all' or 'first', got {synthetic_in_loss!r}"
            )
        self.num_samples = num_samples
        self.epochs, self.seed = int(epochs), int(seed)
        self.phase1_epochs = phase1_epochs if phase1_epochs is not None else round(float(phase1_fraction) * epochs)
        self.lambdas = {1: _lambdas("phase1_lambdas", phase1_lambdas), 2: _lambdas("phase2_lambdas", phase2_lambdas)}
        self.reconstruction = reconstruction
        self.detach_target = bool(detach_target)
        self.synthetic_in_loss = synthetic_in_loss
        self.tsne, self.tsne_classes, self.tsne_points = bool(tsne), int(tsne_classes), int(tsne_points)
        self.variational = VariationalHead(feature_dim, embedding_dim, float(logvar_clamp))
        self.decoder = Decoder(embedding_dim, feature_dim, decoder_hidden)
        self.epoch = 0  # the current epoch; after the last one, ``epochs``

    # ------------------------------------------------------------------ set-up

    def param_groups(self, base_lr: float, lr_mult: float) -> list[dict[str, Any]]:
        heads = list(self.variational.parameters()) + list(self.decoder.parameters())
        return [{"params": heads, "lr": base_lr * lr_mult, "name": "method"}, *super().param_groups(base_lr, lr_mult)]

    @property
    def phase(self) -> int:
        """1 while ``epoch < phase1_epochs``, then 2."""
        return 1 if self.epoch < self.phase1_epochs else 2

    # ------------------------------------------------------------------ training
    def training_step(self, model: EmbeddingModel, batch: dict[str, Any]) -> StepOutput:
        labels = batch["label"]
        x = model.features(batch["image"])
        z_i = model.project(x)
        mu, logvar = self.variational(x)
        eps = torch.randn((self.num_samples, *mu.shape), device=mu.device, dtype=mu.dtype)
        z_hat = z_i.unsqueeze(0) + mu + torch.exp(0.5 * logvar) * eps  # (T, B, D)
        decoder_input = z_hat.detach() if self.phase == 1 else z_hat
        target = x.detach() if self.detach_target else x
        kl = kl_to_standard_normal(mu, logvar)
        recon = reconstruction_loss(self.decoder(decoder_input), target, self.reconstruction)
        synthetic = z_hat if self.synthetic_in_loss == "all" else z_hat[:1]
        loss_hat = torch.stack([self.loss(model.finish(z), labels) for z in synthetic]).mean()
        loss_i = self.loss(model.finish(z_i), labels)
        l1, l2, l3, l4 = self.lambdas[self.phase]
        total = l1 * kl + l2 * recon + l3 * loss_hat + l4 * loss_i
        logs = {
            "kl": float(kl.detach()),
            "recon": float(recon.detach()),
            "metric_synthetic": float(loss_hat.detach()),
            "metric_invariant": float(loss_i.detach()),
            "phase": float(self.phase),
        }
        return StepOutput(total, logs)

    def on_epoch_start(self, epoch: int, model: EmbeddingModel) -> None:
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, model: EmbeddingModel) -> dict[str, float]:
        summary = {"phase": float(self.phase)}
        self.epoch = epoch + 1
        if self.epoch == self.phase1_epochs and self.phase1_epochs < self.epochs:
            summary["phase2_from_epoch"] = float(self.phase1_epochs + 1)
        return summary

    # ------------------------------------------------------------- figures
    def on_train_end(self, evaluation: Evaluation) -> None:
        """The t-SNE figures of the final test embeddings (first process only)."""
        if self.tsne and self.plots_dir is not None:
            self._plot_tsne(
                evaluation.embeddings.float().cpu().numpy(), evaluation.labels, evaluation.dataset.class_names
            )

    def _plot_tsne(self, emb: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> None:
        classes = np.unique(labels)[: self.tsne_classes]
        keep = np.flatnonzero(np.isin(labels, classes))
        if len(keep) > self.tsne_points:
            keep = np.sort(np.random.default_rng(self.seed).choice(keep, self.tsne_points, replace=False))
        x, y = emb[keep], labels[keep]
        if len(x) < 5:
            return
        centres = {c: x[y == c].mean(0) for c in np.unique(y)}
        centred = x - np.stack([centres[c] for c in y])
        plots = self.plots_dir
        what = f"{len(x)} test embeddings z_I of {len(np.unique(y))} classes"
        plot_distribution(
            plots / "tsne_test.png", tsne_2d(x, self.seed), y, title=f"t-SNE: {what}", class_names=class_names
        )
        plot_distribution(
            plots / "tsne_centred.png",
            tsne_2d(centred, self.seed),
            y,
            title=f"t-SNE of the central latent space: {what} minus their class centre",
            class_names=class_names,
        )

    # ------------------------------------------------------------- checkpoint
    def extra_checkpoint_state(self) -> dict[str, Any]:
        """The epoch counter (a run resumed mid-epoch gets no ``on_epoch_start``); the phase length is derived."""
        return {"epoch": self.epoch}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        self.epoch = int(state.get("epoch", 0))
