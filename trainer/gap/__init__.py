"""The gap toolkit: measure how synthetic data differs from real data, filter it, and write better configs.

Methods follow seed 002 (``/work/shared/seeds/002_*``, chapters 4-5): per-image and per-box metadata compared
with the 1-D Bhattacharyya distance, feature-space KNN/KDE likelihoods with an elbow cut, a GMM fitted to real
metadata and mapped back onto generator ranges, and a dataset score without training. ``suggest`` closes the
loop that seed 000 asks for: error analysis of a trained model on real data, turned into a rendering plan.

Library code raises :class:`GapError` and takes progress callbacks; ``trainer/commands/gap.py`` is the CLI.
"""

from __future__ import annotations


class GapError(Exception):
    """Input the gap toolkit cannot work with (empty real set, mismatched classes, too few samples, ...)."""


__all__ = ["GapError"]
