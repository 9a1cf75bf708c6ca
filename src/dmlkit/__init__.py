"""dmlkit: deep metric learning with zero-shot retrieval evaluation."""

__version__ = "0.1.0"
