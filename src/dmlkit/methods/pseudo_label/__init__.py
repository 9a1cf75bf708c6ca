"""k-means pseudo-labels (DeepCluster-style): the unsupervised baseline beside PL-Manifold."""

from dmlkit.methods.pseudo_label.method import PseudoLabelMethod
from dmlkit.methods.pseudo_label.sampler import PseudoLabelBatches

__all__ = ["PseudoLabelBatches", "PseudoLabelMethod"]
