"""Embedding whole datasets through a Fabric: its device, its precision and, under several
processes, each rank embedding a shard and gathering the rest. The trainer, ``dmlkit eval``,
``dmlkit embed`` and the methods' passes over the training set all embed through here."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from lightning.fabric import Fabric

from dmlkit.data.base import DMLDataset
from dmlkit.evaluation.embed import embed_dataset
from dmlkit.methods.base import EmbedFn, Method
from dmlkit.models.model import EmbeddingModel


class FabricEmbedder:
    """``embedder(dataset, embed=None) -> (embeddings, labels)`` for ``model`` and ``method``.

    ``embed`` defaults to the method's test-time embedding (:meth:`Method.embed_for_eval`). Model
    and method are in eval mode while embedding and return to their previous mode after.
    Embeddings come back on the CPU in float32, identical on every rank; labels are ``None`` when
    the dataset hides them.
    """

    def __init__(
        self, fabric: Fabric, model: EmbeddingModel, method: Method, batch_size: int, num_workers: int = 0
    ) -> None:
        self.fabric, self.model, self.method = fabric, model, method
        self.batch_size, self.num_workers = batch_size, num_workers

    def __call__(self, dataset: DMLDataset, embed: EmbedFn | None = None) -> tuple[torch.Tensor, Any]:
        fabric, model, method = self.fabric, self.model, self.method
        was_training = model.training
        model.eval()
        method.eval()
        try:
            with fabric.autocast(), warnings.catch_warnings():
                # Lightning's all_gather calls a torch function that torch now marks deprecated
                warnings.filterwarnings("ignore", message=r".*all_gather is deprecated")
                return embed_dataset(
                    embed or (lambda images: method.embed_for_eval(model, images)),
                    dataset,
                    batch_size=self.batch_size,
                    num_workers=self.num_workers,
                    device=fabric.device,
                    rank=fabric.global_rank,
                    world_size=fabric.world_size,
                    gather=fabric.all_gather,
                )
        finally:
            model.train(was_training)
            method.train(was_training)
