"""Piecewise-Linear Manifolds for unsupervised deep metric learning (Bhatnagar & Ahuja, CPAL 2024; methods.md §3)."""

from dmlkit.methods.pl_manifold.method import PLManifoldMethod
from dmlkit.methods.pl_manifold.proxies import ProxyManifold
from dmlkit.methods.pl_manifold.sampler import KNNBatches

__all__ = ["KNNBatches", "PLManifoldMethod", "ProxyManifold"]
