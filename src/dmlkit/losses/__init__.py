"""Metric losses and miners, selected by name (see :data:`LOSSES`)."""
