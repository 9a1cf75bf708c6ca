"""Deep Variational Metric Learning (Lin et al., ECCV 2018) on top of any base loss.

On the pooled backbone features x (the reconstruction target):

* z_I = the model's own projection (:meth:`EmbeddingModel.project`), the test-time embedding;
* μ, log σ² from :class:`~dmlkit.methods.dvml.modules.VariationalHead`; T samples
  z_V = μ + σ·ε and synthesised ẑ = z_I + s·z_V, where s scales z_V to the batch's class spread
  (``variance_scale: class_spread``, the default; ``unit``, s = 1, is the paper: there the KL keeps σ at
  1 and z_V is noise much larger than z_I, docs/dvml.md; :func:`variance_scale`);
* a decoder reconstructs x from every ẑ.

Loss ``λ1·KL + λ2·recon + λ3·L_m(ẑ) + λ4·L_m(z_I)`` with the base metric loss L_m of the run's
``loss`` section; the reconstruction is the MSE by default (``reconstruction``: ``norm`` is the paper's
eq. 9, ``sum`` the squared error summed over the features, which collapses the embedding in phase 2;
docs/dvml.md). Phase 1 (the first ``phase1_epochs`` epochs, default a quarter of the run rounded half up,
recorded in the run's summary):
λ = (1, 1, 0.1, 1) and the decoder's input is detached, so the reconstruction trains only the
decoder; phase 2: λ = (0.8, 1, 0.2, 0.8) with the input attached. The reconstruction target x is
always detached (``detach_target``). z_I and ẑ go through the model's configured normalisation
(``model.normalize``) before L_m: L2-normalised for Triplet / Triplet2+DWS, raw for N-pair.
L_m(ẑ) averages over the T synthetic batches (``synthetic_in_loss: all``) or uses the first only.

Every ``diagnostics_every`` steps the logs show whether the variational branch is alive: mean σ,
‖z_I‖, ‖s·z_V‖, cos(ẑ, z_I), the class spread, s and each term's share of the gradient norm on z_I
(:func:`branch_diagnostics`). ``synthesis_space`` and ``invariant_terms`` select where ẑ is formed and
which terms reach z_I; ``variational_input`` whether μ, σ train the backbone.

After the final evaluation (:meth:`~dmlkit.methods.base.Method.on_train_end`) the run directory gets
``plots/tsne_test.png`` (Barnes-Hut t-SNE of test embeddings of up to ``tsne_classes`` classes; the
paper's Fig. 4) and ``plots/tsne_centred.png`` (the same embeddings minus their class centre, the
"central latent space" of Fig. 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from dmlkit.errors import ConfigError
from dmlkit.losses import validate
from dmlkit.losses.base import MetricLoss
from dmlkit.methods.base import StepOutput
from dmlkit.methods.dvml.modules import (
    RECONSTRUCTIONS,
    Decoder,
    VariationalHead,
    kl_to_standard_normal,
    reconstruction_loss,
)
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


def branch_diagnostics(
    z_i: torch.Tensor, z_v: torch.Tensor, z_hat: torch.Tensor, logvar: torch.Tensor, terms: dict[str, torch.Tensor]
) -> dict[str, float]:
    """Whether the variational branch is alive: mean σ, ‖z_I‖, ‖z_V‖, cos(ẑ, z_I), and each loss term's share
    of the summed gradient norms on z_I (``grad_share_<term>``; 0 for a term that does not reach z_I)."""
    with torch.no_grad():
        out = {
            "sigma": float(torch.exp(0.5 * logvar).mean()),
            "norm_z_i": float(z_i.norm(dim=-1).mean()),
            "norm_z_v": float(z_v.norm(dim=-1).mean()),
            "cos_z_hat_z_i": float(F.cosine_similarity(z_hat, z_i.unsqueeze(0).expand_as(z_hat), dim=-1).mean()),
        }
    norms = {}
    for name, term in terms.items():
        grad = None
        if term.requires_grad:
            (grad,) = torch.autograd.grad(term, z_i, retain_graph=True, allow_unused=True)
        norms[name] = 0.0 if grad is None else float(grad.norm())
    total = sum(norms.values()) or 1.0
    out.update({f"grad_share_{name}": value / total for name, value in norms.items()})
    return out


#: The scales of z_V of :func:`variance_scale`.
VARIANCE_SCALES = ("unit", "class_spread", "invariant")
#: The terms besides L_m(z_I) that may reach z_I (``invariant_terms``).
BRANCH_TERMS = ("recon", "metric_synthetic")


def class_spread(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Root-mean-square distance of the rows of ``z`` to their class's mean, over the batch's classes with
    two or more rows: each class's mean squared distance corrected by n/(n − 1) (unbiased), weighted by
    its n; 0 if no class has two rows. A 0-d tensor (no host sync).

    Example:
        >>> z = torch.tensor([[0.0, 0.0], [2.0, 0.0], [5.0, 5.0]])
        >>> float(class_spread(z, torch.tensor([0, 0, 1])))  # rows 0, 1: squared distances 1, 1 -> 2·2/1/2
        1.4142135381698608
    """
    _, inverse, counts = labels.unique(return_inverse=True, return_counts=True)
    centres = z.new_zeros(len(counts), z.shape[-1]).index_add_(0, inverse, z) / counts[:, None].to(z.dtype)
    n = counts[inverse].to(z.dtype)
    kept = n > 1
    squared = (z - centres[inverse]).pow(2).sum(-1) * n / (n - 1).clamp(min=1)
    return (torch.where(kept, squared, 0).sum() / kept.sum().clamp(min=1)).sqrt()


def variance_scale(
    how: str, z: torch.Tensor, z_v: torch.Tensor, labels: torch.Tensor, factor: float = 1.0
) -> torch.Tensor:
    """s, the factor applied to z_V before ẑ = z + s·z_V (a 0-d tensor, a constant of the step).

    ``unit``: s = 1 (the paper). ``class_spread``: the root-mean-square norm of s·z_V is ``factor`` × the
    class spread of z (:func:`class_spread`), so synthesised samples lie as far from their example as
    class members lie from their centre. ``invariant``: it is ``factor`` × the root-mean-square norm of z.
    s = 1 where the target or z_V is 0 (no class with two rows, say).
    """
    if how == "unit":
        return z.new_ones(())
    z, z_v = z.detach(), z_v.detach()
    target = class_spread(z, labels) if how == "class_spread" else z.pow(2).sum(-1).mean().sqrt()
    noise = z_v.pow(2).sum(-1).mean().sqrt()
    usable = (target > 0) & (noise > 0)
    return torch.where(usable, factor * target / noise.clamp(min=torch.finfo(z.dtype).tiny), 1.0)


def phase1_length(epochs: int, fraction: float) -> int:
    """Epochs of phase 1: ``fraction × epochs`` rounded half up (Python's ``round`` rounds half to even, which
    made 2 epochs × 0.25 a run without phase 1).

    Example:
        >>> [phase1_length(e, 0.25) for e in (1, 2, 3, 4, 6, 10)]
        [0, 1, 1, 1, 2, 3]
    """
    return math.floor(float(fraction) * int(epochs) + 0.5)


@METHODS.register("dvml")
class DVMLMethod(MetricLossMethod):
    """DVML around the run's base loss (``loss`` section).

    Args:
        loss: The base metric loss L_m (the ``loss`` section; supplied by the assembly).
        feature_dim, embedding_dim, epochs, seed: Facts of the run (supplied by the assembly).
        num_samples: T, synthesised samples per example (20).
        phase1_epochs: Epochs of phase 1; ``None`` (default): :func:`phase1_length` of ``phase1_fraction``.
        phase1_fraction: Fraction of the run in phase 1 when ``phase1_epochs`` is not given (0.25).
        phase1_lambdas: λ1..λ4 of phase 1, (1, 1, 0.1, 1).
        phase2_lambdas: λ1..λ4 of phase 2, (0.8, 1, 0.2, 0.8).
        reconstruction: ``mean`` (MSE, default), ``norm`` (the paper's eq. 9) or ``sum`` (squared error
            summed over the feature dimensions); see :func:`~dmlkit.methods.dvml.modules.reconstruction_loss`.
        detach_target: Detach the reconstruction target x (default true).
        synthetic_in_loss: ``all`` (average L_m over the T synthetic batches) or ``first``.
        decoder_hidden: Hidden size of the decoder (default: the embedding size, 512 in the paper).
        variance_scale: How z_V is scaled before it is added: ``class_spread`` (default: to
            ``variance_scale_factor`` × the batch's class spread), ``unit`` (as sampled, the paper) or
            ``invariant`` (to that factor × the norm of z); see :func:`variance_scale` and docs/dvml.md.
        variance_scale_factor: The factor of ``class_spread`` and ``invariant`` (1).
        synthesis_space: Where ẑ = z + z_V is formed: ``projection`` (on z_I before the model's
            normalisation, the paper) or ``embedding`` (on the normalised embedding; ẑ is normalised
            again before L_m). The same for a model without normalisation.
        invariant_terms: The terms besides L_m(z_I) whose gradient reaches z_I (and through it the
            backbone): any of ``recon`` (in phase 2; never in phase 1) and ``metric_synthetic``;
            default both (the paper). A term left out still trains the variational head and the decoder.
        variational_input: What μ, σ are computed from: ``shared`` (the backbone's features, so the KL,
            the reconstruction and L_m(ẑ) train the backbone through μ and σ; the paper) or ``detached``
            (the same features without a gradient path: only terms that reach z_I train the backbone).
        logvar_clamp: Bound of |log σ²|.
        tsne: Write the t-SNE figures at the end of training.
        tsne_classes: Classes shown in the t-SNE figures (the first ones of the test set).
        tsne_points: Most points in a t-SNE figure.
        diagnostics_every: Every this many steps (counted as the trainer's global step, so a multiple of
            ``trainer.log_every`` puts them in the logs), the state of the variational branch (mean σ,
            ‖z_I‖, ‖z_V‖, cos(ẑ, z_I)) and each term's share of the gradient norm on z_I
            (``grad_share_*``); 0: never.
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
        reconstruction: str = "mean",
        detach_target: bool = True,
        synthetic_in_loss: str = "all",
        decoder_hidden: int | None = None,
        variance_scale: str = "class_spread",
        variance_scale_factor: float = 1.0,
        synthesis_space: str = "projection",
        invariant_terms: Sequence[str] = BRANCH_TERMS,
        variational_input: str = "shared",
        logvar_clamp: float = 10.0,
        tsne: bool = True,
        tsne_classes: int = 10,
        tsne_points: int = 2000,
        diagnostics_every: int = 10,
    ) -> None:
        super().__init__(loss)
        validate.positive_int("method.num_samples", num_samples)
        if phase1_epochs is not None:
            validate.non_negative_int("method.phase1_epochs", phase1_epochs)
        if not isinstance(phase1_fraction, (int, float)) or not 0 <= phase1_fraction <= 1:
            raise ConfigError(
                f"config key 'method.phase1_fraction': expected a number in [0, 1], got {phase1_fraction!r}"
            )
        validate.choice("method.reconstruction", reconstruction, RECONSTRUCTIONS)
        validate.non_negative_int("method.diagnostics_every", diagnostics_every)
        validate.choice("method.variance_scale", variance_scale, VARIANCE_SCALES)
        validate.choice("method.synthesis_space", synthesis_space, ("projection", "embedding"))
        validate.positive("method.variance_scale_factor", variance_scale_factor)
        validate.choice("method.variational_input", variational_input, ("shared", "detached"))
        terms = list(invariant_terms) if isinstance(invariant_terms, (list, tuple)) else None
        if terms is None or any(t not in BRANCH_TERMS for t in terms):
            raise ConfigError(
                f"config key 'method.invariant_terms': expected a list of {list(BRANCH_TERMS)} (possibly empty), "
                f"got {invariant_terms!r}"
            )
        if synthetic_in_loss not in ("all", "first"):
            raise ConfigError(
                f"config key 'method.synthetic_in_loss': expected 'all' or 'first', got {synthetic_in_loss!r}"
            )
        self.num_samples = num_samples
        self.epochs, self.seed = int(epochs), int(seed)
        self.phase1_epochs = phase1_epochs if phase1_epochs is not None else phase1_length(epochs, phase1_fraction)
        self.lambdas = {1: _lambdas("phase1_lambdas", phase1_lambdas), 2: _lambdas("phase2_lambdas", phase2_lambdas)}
        self.reconstruction = reconstruction
        self.detach_target = bool(detach_target)
        self.synthetic_in_loss = synthetic_in_loss
        self.variance_scale, self.scale_factor = variance_scale, float(variance_scale_factor)
        self.synthesis_space, self.invariant_terms = synthesis_space, tuple(terms)
        self.variational_input = variational_input
        self.tsne, self.tsne_classes, self.tsne_points = bool(tsne), int(tsne_classes), int(tsne_points)
        self.variational = VariationalHead(feature_dim, embedding_dim, float(logvar_clamp))
        self.decoder = Decoder(embedding_dim, feature_dim, decoder_hidden)
        self.epoch = 0  # the current epoch; after the last one, ``epochs``
        self.diagnostics_every, self._steps = int(diagnostics_every), 0

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
        x = model.features(batch["image"])
        # all that follows sees the global batch (the class spread, the samples, the metric losses)
        head_input = x.detach() if self.variational_input == "detached" else x
        x, z_i, mu, logvar, labels = self.gather(x, model.project(x), *self.variational(head_input), batch["label"])
        eps = torch.randn((self.num_samples, *mu.shape), device=mu.device, dtype=mu.dtype)
        z_v = mu + torch.exp(0.5 * logvar) * eps  # (T, B, D)
        base = z_i if self.synthesis_space == "projection" else model.finish(z_i)
        scale = variance_scale(self.variance_scale, base, z_v, labels, self.scale_factor)
        if self.variance_scale != "unit":  # s = 1: nothing to multiply
            z_v = scale * z_v
        z_hat = base.unsqueeze(0) + z_v

        def reaching(term: str) -> torch.Tensor:  # ẑ, or ẑ without a path into z_I for a term kept out of it
            return z_hat if term in self.invariant_terms else base.detach().unsqueeze(0) + z_v

        decoder_input = z_hat.detach() if self.phase == 1 else reaching("recon")
        target = x.detach() if self.detach_target else x
        kl = kl_to_standard_normal(mu, logvar)
        recon = reconstruction_loss(self.decoder(decoder_input), target, self.reconstruction)
        synthetic = reaching("metric_synthetic")
        synthetic = synthetic if self.synthetic_in_loss == "all" else synthetic[:1]
        loss_hat = torch.stack([self.loss(model.finish(z), labels) for z in synthetic]).mean()
        loss_i = self.loss(model.finish(z_i), labels)
        l1, l2, l3, l4 = self.lambdas[self.phase]
        total = l1 * kl + l2 * recon + l3 * loss_hat + l4 * loss_i
        logs = {
            "kl": kl.detach(),
            "recon": recon.detach(),
            "metric_synthetic": loss_hat.detach(),
            "metric_invariant": loss_i.detach(),
            "phase": float(self.phase),
        }
        self._steps += 1  # as the trainer's global step, so that they are due on the steps it logs
        if self.diagnostics_every and self._steps % self.diagnostics_every == 0 and z_i.requires_grad:
            terms = {
                "kl": l1 * kl,
                "recon": l2 * recon,
                "metric_synthetic": l3 * loss_hat,
                "metric_invariant": l4 * loss_i,
            }
            logs.update(branch_diagnostics(z_i, z_v, z_hat, logvar, terms))
            spread = class_spread(base.detach(), labels)
            logs.update({"variance_scale": float(scale), "class_spread": float(spread)})
        return StepOutput(total, logs)

    def summary(self) -> dict[str, Any]:
        return {
            "phase1_epochs": self.phase1_epochs,
            "phase2_from_epoch": self.phase1_epochs + 1 if self.phase1_epochs < self.epochs else None,
            "reconstruction": self.reconstruction,
            "num_samples": self.num_samples,
            "variance_scale": self.variance_scale,
            "synthesis_space": self.synthesis_space,
            "invariant_terms": list(self.invariant_terms),
            "variational_input": self.variational_input,
        }

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
        """The epoch counter (a run resumed mid-epoch gets no ``on_epoch_start``) and the step count (when the
        diagnostics are due); the phase length is derived."""
        return {"epoch": self.epoch, "steps": self._steps}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        self.epoch = int(state.get("epoch", 0))
        self._steps = int(state.get("steps", 0))
