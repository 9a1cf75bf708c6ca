"""Backbones, embedding heads and the embedding model."""
