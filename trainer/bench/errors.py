"""The error of the benchmark protocols (digits, variability): a step failed for a reason the message names."""

from __future__ import annotations

from shared.errors import BlendsetError

__all__ = ["BenchError"]


class BenchError(BlendsetError, RuntimeError):
    """A benchmark step failed; the message names the step and what to look at (its command's own error)."""
