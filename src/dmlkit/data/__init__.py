"""Datasets in their official layouts, transforms and batch samplers."""
