"""Magnet loss (Rippel et al., ICLR 2016): per-class cluster index, neighbourhood sampling,
variance-standardised loss (:mod:`dmlkit.losses.magnet`) and cluster-based classification."""

from dmlkit.methods.magnet.classify import cluster_class_scores, cluster_classify
from dmlkit.methods.magnet.cluster_index import ClusterIndex, build_cluster_index
from dmlkit.methods.magnet.method import MagnetMethod
from dmlkit.methods.magnet.sampler import NeighbourhoodBatches

__all__ = [
    "ClusterIndex",
    "MagnetMethod",
    "NeighbourhoodBatches",
    "build_cluster_index",
    "cluster_class_scores",
    "cluster_classify",
]
