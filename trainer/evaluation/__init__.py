"""Evaluation: predictions, COCO metrics, per-class statistics and the eval report."""
