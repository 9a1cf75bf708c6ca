"""Deep Variational Metric Learning (Lin et al., ECCV 2018): variational head, decoder, two-phase loss."""

from dmlkit.methods.dvml.method import DVMLMethod
from dmlkit.methods.dvml.modules import Decoder, VariationalHead, kl_to_standard_normal, reconstruction_loss

__all__ = ["DVMLMethod", "Decoder", "VariationalHead", "kl_to_standard_normal", "reconstruction_loss"]
