"""The gap toolkit: measure how synthetic data differs from real data, filter it, and write better configs.

Methods follow the gap thesis (chapters 4-5; see ``docs/references.md``): per-image and per-box metadata
compared with the 1-D Bhattacharyya distance, feature-space KNN/KDE likelihoods with an elbow cut, a GMM fitted
to real metadata and mapped back onto generator ranges, and a dataset score without training. ``suggest`` closes
the loop that the bias-fix study asks for: error analysis of a trained model on real data, turned into a
rendering plan.

Library code raises :class:`GapError` and takes :data:`shared.progress.ProgressFn` callbacks;
``trainer/commands/gap.py`` is the CLI. This package imports none of its modules, so every module may import
``GapError`` from here without a cycle.
"""

from __future__ import annotations

from shared.errors import BlendsetError


class GapError(BlendsetError):
    """Input the gap toolkit cannot work with (empty real set, mismatched classes, too few samples, ...)."""


__all__ = ["GapError"]
