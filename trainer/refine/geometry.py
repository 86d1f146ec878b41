"""Does a refined image keep the geometry of its render? Measured on edges, independent of the training loss.

Two numbers per image:

- ``edge_iou``: edge maps of input and output (colour gradient above a share of the image's strongest gradient,
  so a colour cast alone does not change them), each dilated by ``tolerance`` pixels, then intersection over
  union.
  1.0 means every edge stayed where it was.
- ``boundary_recall_in`` / ``boundary_recall_out``: the share of instance-mask boundary pixels that have an
  edge within ``tolerance`` pixels, in the input and in the output. A refiner that keeps the labels valid keeps
  the output's value close to the input's (``boundary_agreement`` = out / in, capped at 1).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from trainer.refine.data import RefineError


def edge_map(image: np.ndarray, sigma: float = 1.0, relative: float = 0.2) -> np.ndarray:
    """Boolean edges of an H x W (x C) image: colour gradient magnitude (Sobel per channel after Gaussian
    smoothing, summed in quadrature, so an edge between two colours of equal brightness still counts) above
    ``relative`` times the image's strongest gradient. A flat image has no edges."""
    img = image.astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, None]
    mag = np.zeros(img.shape[:2], dtype=np.float32)
    for c in range(img.shape[2]):
        smooth = ndimage.gaussian_filter(img[:, :, c], sigma) if sigma > 0 else img[:, :, c]
        mag += ndimage.sobel(smooth, axis=0) ** 2 + ndimage.sobel(smooth, axis=1) ** 2
    mag = np.sqrt(mag)
    peak = float(mag.max())
    if peak < 1e-3:
        return np.zeros(mag.shape, dtype=bool)
    return mag > relative * peak


def _dilate(mask: np.ndarray, tolerance: int) -> np.ndarray:
    if tolerance <= 0:
        return mask
    return ndimage.binary_dilation(mask, structure=np.ones((3, 3), bool), iterations=tolerance)


def edge_iou(source: np.ndarray, refined: np.ndarray, tolerance: int = 1) -> float:
    """IoU of the dilated edge maps of two images of the same size (1.0 when neither has an edge)."""
    if source.shape[:2] != refined.shape[:2]:
        raise RefineError(f"image sizes differ: {source.shape[:2]} vs {refined.shape[:2]}")
    a = _dilate(edge_map(source), tolerance)
    b = _dilate(edge_map(refined), tolerance)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def mask_boundaries(instance: np.ndarray) -> np.ndarray:
    """Pixels where the instance id changes to a neighbour (including object/background borders)."""
    inst = instance.astype(np.int64)
    edge = np.zeros(inst.shape, dtype=bool)
    edge[:, 1:] |= inst[:, 1:] != inst[:, :-1]
    edge[1:, :] |= inst[1:, :] != inst[:-1, :]
    return edge


def boundary_recall(image: np.ndarray, boundaries: np.ndarray, tolerance: int = 1) -> float | None:
    """Share of boundary pixels with an image edge within ``tolerance`` px; None when there is no boundary."""
    n = int(boundaries.sum())
    if n == 0:
        return None
    edges = _dilate(edge_map(image), tolerance)
    return float(np.logical_and(edges, boundaries).sum() / n)


def compare(source: np.ndarray, refined: np.ndarray, instance: np.ndarray | None, tolerance: int = 1) -> dict:
    """Every geometry number for one image pair; ``instance`` is the uint16 instance map or None."""
    out: dict = {"edge_iou": edge_iou(source, refined, tolerance)}
    if instance is not None:
        if instance.shape[:2] != source.shape[:2]:
            raise RefineError(f"instance map {instance.shape[:2]} and image {source.shape[:2]} differ in size")
        bounds = mask_boundaries(instance)
        r_in = boundary_recall(source, bounds, tolerance)
        r_out = boundary_recall(refined, bounds, tolerance)
        out["boundary_recall_in"] = r_in
        out["boundary_recall_out"] = r_out
        out["boundary_agreement"] = None if not r_in else min(1.0, r_out / r_in)
    return out
