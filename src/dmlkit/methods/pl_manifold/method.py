"""Piecewise-Linear Manifolds for unsupervised DML (Bhatnagar & Ahuja, CPAL 2024), methods.md §3.

No training label is read: the run gives this method (``uses_labels = False``) the training set
with its labels hidden. Per run:

1. A momentum (EMA) teacher of the embedding model (:class:`torch.optim.swa_utils.AveragedModel`,
   momentum 0.999 as STML, parameters and buffers), created with the method, always in eval mode,
   updated after every step, and checkpointed with it.
2. Before every epoch the teacher embeds the training set (evaluation transform) and each image's
   ``neighbours − 1`` nearest neighbours feed the :class:`~dmlkit.methods.pl_manifold.sampler.KNNBatches`:
   batches of ``queries`` × ``neighbours`` images, each in ``views`` augmented views (STML: 24 × 5 × 2).
3. Per batch, the teacher embeddings x (no gradient) give the piecewise-linear model
   (:func:`~dmlkit.methods.pl_manifold.piecewise_linear.fit_pieces`: subset selection, rank-r PCA) and
   the symmetric PL similarity s (α·β); the proxies' similarity to x uses their own pieces.
4. ``L = w_point·L_point + w_proxy·L_proxy + w_neigh·L_neighbourhood`` (1 : 1 : 1): the student's
   distances match δ(1 − s) for point pairs and point–proxy pairs; the neighbourhood loss moves the
   proxies (their own fp32 parameter group, ``proxy_lr``, no weight decay) to their most similar points.
5. Evaluation embeds with the student (STML evaluates the student) and, after the last epoch (or at
   every evaluation, ``diagnostics: every``), adds the similarity-quality diagnostics on test
   neighbourhood batches (:mod:`dmlkit.methods.pl_manifold.diagnostics_run`): the test labels are read
   there only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from dmlkit.data.base import DMLDataset
from dmlkit.errors import ConfigError
from dmlkit.evaluation.knn import exact_knn
from dmlkit.losses import validate
from dmlkit.methods.base import Method, StepOutput
from dmlkit.methods.pl_manifold.diagnostics_run import DIAGNOSTICS_WHEN, diagnostic_names, run_diagnostics
from dmlkit.methods.pl_manifold.losses import neighbourhood_loss, point_loss, proxy_loss
from dmlkit.methods.pl_manifold.piecewise_linear import RESIDUAL_SCALES, fit_pieces
from dmlkit.methods.pl_manifold.proxies import ProxyManifold
from dmlkit.methods.pl_manifold.sampler import KNNBatches
from dmlkit.methods.pl_manifold.similarity import data_similarity
from dmlkit.methods.registry import METHODS

if TYPE_CHECKING:
    from dmlkit.models.model import EmbeddingModel

DISTANCE_SCALES = ("mean", "none")


@METHODS.register("pl_manifold")
class PLManifoldMethod(Method):
    """Unsupervised training with a piecewise-linear model of the teacher's embedding.

    Args:
        model: The embedding model, copied into the teacher (supplied by the assembly).
        embedding_dim, num_examples, query_gallery, seed, batch_shards: Facts of the run (supplied by the
            assembly); a batch holds ``queries × batch_shards`` neighbourhoods, ``queries`` per process.
        momentum: EMA momentum of the teacher (0.999).
        queries, neighbours, views: Batch structure (24 × 5 × 2, STML).
        rank: Dimension r of every linear piece (2) [decision].
        max_size: Largest neighbourhood of a piece, the point included (10) [decision].
        threshold: ε of subset selection: the largest residual off the piece, divided by the
            ``residual_scale``, that a joining point may have (0.8) [decision].
        residual_scale: ``local`` (the mean distance of the point to its ``max_size − 1`` nearest;
            default) or ``centre`` (the candidate's distance to the piece's centre: the sine of its
            angle off the piece, which in 64-d is near 1 for almost every candidate) [decision]; see
            :func:`~dmlkit.methods.pl_manifold.piecewise_linear.fit_pieces`.
        subset_selection: ``False``: every piece takes its ``max_size`` nearest points (ablation).
        n_alpha, n_beta: Exponents of α (orthogonal) and β (in-plane) decay (3, 0.5; slide 16).
        distance_scale: ``mean`` divides o and p by their batch means before α, β; ``none`` keeps them raw.
        binary: Binary similarity (1 inside a neighbourhood, 0 outside; ablation).
        rescale: Min-max rescale the symmetric similarity to [0, 1].
        delta: δ, the distance that similarity 0 maps to (1 for normalised embeddings, STML).
        num_proxies: N_ρ (100; 0 = no proxies, ablation).
        proxy_lr: Learning rate of the proxies (``None``: the base LR × the method multiplier).
        proxy_top_k: Points per proxy in the neighbourhood loss (5).
        point_weight, proxy_weight, neighbourhood_weight: Loss weights (1, 1, 1; slide 11).
        diagnostics: When to compute the similarity-quality diagnostics: ``final`` (after the last
            epoch), ``every`` (every evaluation) or ``never``.
        diagnostic_batches: Test neighbourhood batches the diagnostics average over (20).
    """

    uses_labels = False

    def __init__(
        self,
        model: EmbeddingModel,
        embedding_dim: int,
        num_examples: int,
        query_gallery: bool = False,
        seed: int = 0,
        batch_shards: int = 1,
        momentum: float = 0.999,
        queries: int = 24,
        neighbours: int = 5,
        views: int = 2,
        rank: int = 2,
        max_size: int = 10,
        threshold: float = 0.8,
        subset_selection: bool = True,
        residual_scale: str = "local",
        n_alpha: float = 3.0,
        n_beta: float = 0.5,
        distance_scale: str = "mean",
        binary: bool = False,
        rescale: bool = False,
        delta: float = 1.0,
        num_proxies: int = 100,
        proxy_lr: float | None = None,
        proxy_top_k: int = 5,
        point_weight: float = 1.0,
        proxy_weight: float = 1.0,
        neighbourhood_weight: float = 1.0,
        diagnostics: str = "final",
        diagnostic_batches: int = 20,
    ) -> None:
        super().__init__()
        validate.in_open_interval("method.momentum", momentum, 0.0, 1.0)
        for key, value in (("queries", queries), ("neighbours", neighbours), ("views", views)):
            validate.positive_int(f"method.{key}", value)
        validate.positive_int("method.rank", rank)
        validate.positive_int("method.max_size", max_size)
        if max_size <= rank:
            raise ConfigError(f"config key 'method.max_size': must exceed method.rank ({rank}), got {max_size}")
        validate.at_least("method.threshold", threshold)
        validate.choice("method.residual_scale", residual_scale, RESIDUAL_SCALES)
        for key, value in (("subset_selection", subset_selection), ("binary", binary), ("rescale", rescale)):
            validate.flag(f"method.{key}", value)
        validate.at_least("method.n_alpha", n_alpha)
        validate.at_least("method.n_beta", n_beta)
        validate.choice("method.distance_scale", distance_scale, DISTANCE_SCALES)
        validate.positive("method.delta", delta)
        if proxy_lr is not None:
            validate.positive("method.proxy_lr", proxy_lr)
        validate.positive_int("method.proxy_top_k", proxy_top_k)
        for key, value in (("point", point_weight), ("proxy", proxy_weight), ("neighbourhood", neighbourhood_weight)):
            validate.at_least(f"method.{key}_weight", value)
        validate.choice("method.diagnostics", diagnostics, DIAGNOSTICS_WHEN)
        validate.positive_int("method.diagnostic_batches", diagnostic_batches)
        self.momentum = float(momentum)
        self.queries, self.neighbours, self.views = int(queries), int(neighbours), int(views)
        self.piece_args = {
            "rank": int(rank),
            "max_size": int(max_size),
            "threshold": float(threshold),
            "subset_selection": subset_selection,
            "residual_scale": residual_scale,
        }
        self.similarity_args = {"n_alpha": float(n_alpha), "n_beta": float(n_beta), "distance_scale": distance_scale}
        self.binary, self.rescale, self.delta = binary, rescale, float(delta)
        self.proxies = ProxyManifold(embedding_dim, num_proxies, rank)
        self.proxy_lr, self.proxy_top_k = proxy_lr, int(proxy_top_k)
        self.weights = {
            "point": float(point_weight),
            "proxy": float(proxy_weight),
            "neighbourhood": float(neighbourhood_weight),
        }
        self.diagnostics, self.diagnostic_batches = diagnostics, int(diagnostic_batches)
        self.query_gallery, self.seed = bool(query_gallery), int(seed)
        queries_per_batch = self.queries * batch_shards  # for all processes together
        self.batch_source = KNNBatches(num_examples, queries_per_batch, self.neighbours, self.views, self.seed)
        self.teacher = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.momentum), use_buffers=True)
        self.teacher.requires_grad_(False)
        self.teacher.eval()

    # ------------------------------------------------------------------ set-up
    def train(self, mode: bool = True) -> PLManifoldMethod:
        super().train(mode)
        self.teacher.eval()  # the teacher never trains: no dropout, BN running statistics
        return self

    def param_groups(self, base_lr: float, lr_mult: float) -> list[dict[str, Any]]:
        """The proxies alone, at ``proxy_lr`` and without weight decay (the teacher is not optimised)."""
        if self.proxies.num_proxies == 0:
            return []
        lr = self.proxy_lr if self.proxy_lr is not None else base_lr * lr_mult
        return [{"params": list(self.proxies.parameters()), "lr": lr, "weight_decay": 0.0, "name": "proxies"}]

    # --------------------------------------------------------------- training
    def teacher_embed(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's embedding of ``images`` (no gradient)."""
        with torch.no_grad():
            return self.teacher(images)

    def on_epoch_start(self, epoch: int, model: EmbeddingModel) -> None:
        """Teacher embeddings of the training set → every image's nearest neighbours for the sampler."""
        embeddings, _ = self._bound().embed_training_set(self.teacher_embed)
        k = self.neighbours - 1
        knn = exact_knn(embeddings, None, k)[1].cpu().numpy() if k else np.zeros((len(embeddings), 0), np.int64)
        self.batch_source.set_neighbours(knn)

    def training_step(self, model: EmbeddingModel, batch: dict[str, Any]) -> StepOutput:
        if "label" in batch:
            raise RuntimeError("pl_manifold received training labels; the trainer must hide them")
        images = batch["image"]
        student, x = self.gather(model(images).float(), self.teacher_embed(images).float())
        pieces = fit_pieces(x, **self.piece_args)
        similarity = data_similarity(x, pieces, binary=self.binary, rescale=self.rescale, **self.similarity_args)
        losses = {"point": point_loss(student, similarity, self.delta)}
        if self.proxies.num_proxies:
            proxy_similarity = self.proxies.similarity_to(x, **self.similarity_args)
            losses["proxy"] = proxy_loss(student, self.proxies.locations, proxy_similarity, self.delta)
            losses["neighbourhood"] = neighbourhood_loss(x, self.proxies, proxy_similarity, self.proxy_top_k)
        loss = sum(self.weights[k] * v for k, v in losses.items())
        logs = {f"loss_{k}": v.detach() for k, v in losses.items()}
        logs["piece_size"] = pieces.sizes.float().mean()
        return StepOutput(loss, logs)

    def after_step(self, model: EmbeddingModel, step: int) -> None:
        self.teacher.update_parameters(model)

    # ------------------------------------------------------------- evaluation
    def eval_metrics(
        self, embeddings: torch.Tensor, labels: Any, dataset: DMLDataset, final: bool = False
    ) -> dict[str, float]:
        """The similarity-quality diagnostics (``diag_*``) when due; test labels are read only here."""
        due = self.diagnostics == "every" or (self.diagnostics == "final" and final)
        if not due or self.query_gallery:
            return {}
        return run_diagnostics(
            embeddings.float(),
            np.asarray(labels),
            batches=self.diagnostic_batches,
            queries=self.queries,
            neighbours=self.neighbours,
            piece_args=self.piece_args,
            similarity_args={**self.similarity_args, "binary": self.binary, "rescale": self.rescale},
            seed=self.seed,
        )

    def metric_names(self) -> set[str]:
        return set() if self.diagnostics == "never" else diagnostic_names()

    # ------------------------------------------------------------- checkpoint
    def extra_checkpoint_state(self) -> dict[str, Any]:
        """The neighbour lists of the current epoch (a run resumed mid-epoch keeps them)."""
        return {"batches": self.batch_source.state_dict()}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        if state.get("batches") is not None:
            self.batch_source.load_state_dict(state["batches"])
