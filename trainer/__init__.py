"""Blendset's training and analysis side: datasets, models, metrics, the gap toolkit and the `blendset` CLI."""

__version__ = "0.1.0"
