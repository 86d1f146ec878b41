"""Keypoints: projection into the image, COCO visibility from the depth map, and the COCO encoding.

Pure numpy, values in, values out: the engine reads the keypoints' world positions from the scene, this module
decides where they land and whether the camera sees them. Conventions:

- Coordinates are COCO's continuous pixel coordinates: (0, 0) is the top-left corner of the top-left pixel, x to
  the right, y down, so the centre of pixel (column i, row j) is (i + 0.5, j + 0.5). ``shared.raster``'s ``K``
  and ``project_points`` use the same convention, so projecting is ``K`` applied to the camera-space point.
- Visibility, COCO's ``v``: 0 outside the image (or behind the camera), 1 inside but hidden, 2 visible. COCO
  writes ``x = y = 0`` for ``v = 0``; coordinates are rounded to 0.01 px.
- Hidden means another surface lies in front of the keypoint along its ray, decided against the frame's depth
  map. That map is Cycles' planar Z (depth along the viewing axis, ``engine/passes.py``), the same quantity as
  ``project_points``' depth, so the two are compared like for like. A keypoint on the far side of its own
  object is hidden by the object's near side, like by any other surface.

The tolerance (:func:`unoccluded`): a keypoint at depth ``z`` in pixel (row, col) is visible when

    z <= max(D over the 3x3 pixels around it) + 1 mm + 0.5 % * z + 0.5 * step

where ``D`` is the depth map and ``step`` the largest depth difference between two 4-adjacent pixels of that
3x3 block (the local depth change per pixel). A pixel with no surface (depth 0) in the block makes the keypoint
visible. The maximum over the block makes a point lying exactly on a surface robust to its sub-pixel position and
to Cycles' depth sample landing anywhere in the pixel (the filter jitters it up to 0.75 px); the ``step`` term
covers steep, slanted surfaces, whose depth changes a lot from pixel to pixel; 1 mm + 0.5 % covers float and
intersection noise. The price is a band of about one pixel along an occluder's edge in which a keypoint just
behind it still counts as visible, surfaces closer than that tolerance in front of a keypoint (a sheet glued
1 mm in front) do not hide it, and on a steep surface a point counts as hidden only when it lies a few pixels'
worth of that surface's depth change behind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .raster import NEAR_CLIP, project_points

__all__ = [
    "ABS_TOL_M",
    "REL_TOL",
    "STEP_SHARE",
    "project",
    "in_image",
    "unoccluded",
    "visibility",
    "encode_coco",
    "frame_keypoints",
    "num_keypoints",
    "coco_skeleton",
    "flip_index",
    "category_fields",
]

ABS_TOL_M = 1e-3  # metres
REL_TOL = 0.005  # share of the keypoint's depth
STEP_SHARE = 0.5  # share of the block's largest depth step between adjacent pixels
_RADIUS = 1  # the block is (2 * _RADIUS + 1) pixels square


def project(K: np.ndarray, world_from_camera: np.ndarray, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels Nx2, depth N)``: COCO continuous pixel coordinates and depth along the viewing axis (metres,
    negative behind the camera). ``world_from_camera`` in Blender's camera convention (-Z forward, +Y up)."""
    return project_points(K, world_from_camera, np.asarray(points_world, dtype=np.float64).reshape(-1, 3))


def in_image(pixels: np.ndarray, depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Points in front of the camera that land inside the image: ``0 <= x < width`` and ``0 <= y < height``."""
    p = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    d = np.asarray(depth, dtype=np.float64).reshape(-1)
    finite = np.isfinite(p).all(axis=1) & np.isfinite(d)
    with np.errstate(invalid="ignore"):
        return finite & (d > NEAR_CLIP) & (p[:, 0] >= 0) & (p[:, 0] < width) & (p[:, 1] >= 0) & (p[:, 1] < height)


def unoccluded(pixels: np.ndarray, depth: np.ndarray, depth_map: np.ndarray) -> np.ndarray:
    """Whether nothing in the depth map lies in front of each point (the rule in the module docstring).

    ``pixels`` must be inside the map (:func:`in_image`); ``depth_map`` is H x W metres, 0 (or non-finite) where
    no surface was hit. One gather of a 3x3 block per point, no loop over points or pixels."""
    p = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    z = np.asarray(depth, dtype=np.float64).reshape(-1)
    dm = np.asarray(depth_map)
    if dm.ndim != 2:
        raise ValueError(f"depth map must be 2-D, got shape {dm.shape}")
    if p.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    h, w = dm.shape
    col = np.clip(np.floor(p[:, 0]).astype(np.int64), 0, w - 1)
    row = np.clip(np.floor(p[:, 1]).astype(np.int64), 0, h - 1)
    offsets = np.arange(-_RADIUS, _RADIUS + 1)
    rows = np.clip(row[:, None, None] + offsets[None, :, None], 0, h - 1)
    cols = np.clip(col[:, None, None] + offsets[None, None, :], 0, w - 1)
    block = dm[rows, cols].astype(np.float64)  # (N, 3, 3); border pixels repeat at the image edge
    empty = ~(np.isfinite(block) & (block > 0)).all(axis=(1, 2))
    step = np.maximum(np.abs(np.diff(block, axis=1)).max(axis=(1, 2)), np.abs(np.diff(block, axis=2)).max(axis=(1, 2)))
    tol = ABS_TOL_M + REL_TOL * z + STEP_SHARE * step
    with np.errstate(invalid="ignore"):
        return empty | (z <= block.max(axis=(1, 2)) + tol)


def visibility(
    K: np.ndarray, world_from_camera: np.ndarray, points_world: np.ndarray, depth_map: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels Nx2, v N)`` for world points: COCO visibility 0 (outside the image or behind the camera),
    1 (inside, hidden) or 2 (visible), against ``depth_map`` (H x W planar depth, metres, 0 = no surface)."""
    dm = np.asarray(depth_map)
    h, w = dm.shape
    pixels, depth = project(K, world_from_camera, points_world)
    inside = in_image(pixels, depth, w, h)
    v = np.zeros(len(depth), dtype=np.int64)
    v[inside] = np.where(unoccluded(pixels[inside], depth[inside], dm), 2, 1)
    return pixels, v


def encode_coco(pixels: np.ndarray, v: np.ndarray) -> list[float | int]:
    """COCO's flat ``[x1, y1, v1, x2, y2, v2, ...]``: coordinates rounded to 0.01 px, ``0, 0`` where ``v = 0``."""
    vis = np.asarray(v, dtype=np.int64).reshape(-1)
    xy = np.where(vis[:, None] > 0, np.round(np.asarray(pixels, dtype=np.float64).reshape(-1, 2), 2), 0.0)
    xs, ys = (xy[:, 0] + 0.0).tolist(), (xy[:, 1] + 0.0).tolist()  # + 0.0: no -0.0 in the file
    return [value for x, y, k in zip(xs, ys, vis.tolist(), strict=True) for value in (x, y, k)]


def num_keypoints(flat: Sequence[float | int]) -> int:
    """COCO's ``num_keypoints``: how many keypoints are labelled (``v > 0``)."""
    return sum(1 for k in flat[2::3] if k > 0)


def frame_keypoints(
    points: Mapping[int, np.ndarray], K: np.ndarray, world_from_camera: np.ndarray, depth_map: np.ndarray
) -> dict[int, list[float | int]]:
    """COCO keypoint lists of every instance of a frame at once: ``points`` maps an instance id to its
    keypoints' world positions (K x 3); the result maps it to the flat ``[x, y, v] * K`` list."""
    ids = list(points)
    if not ids:
        return {}
    arrays = [np.asarray(points[i], dtype=np.float64).reshape(-1, 3) for i in ids]
    pixels, v = visibility(K, world_from_camera, np.concatenate(arrays), depth_map)
    bounds = np.cumsum([0] + [len(a) for a in arrays])
    return {i: encode_coco(pixels[a:b], v[a:b]) for i, a, b in zip(ids, bounds[:-1], bounds[1:], strict=True)}


def coco_skeleton(names: Sequence[str], pairs: Sequence[Sequence[str]]) -> list[list[int]]:
    """Pairs of keypoint names -> COCO's 1-based index pairs."""
    index = {n: i + 1 for i, n in enumerate(names)}
    return [[index[a], index[b]] for a, b in pairs]


def flip_index(names: Sequence[str], flip_pairs: Sequence[Sequence[str]]) -> list[int]:
    """YOLO's ``flip_idx``: after a left-right flip, keypoint ``i`` becomes keypoint ``flip_idx[i]`` (0-based).
    The identity when no pairs are given."""
    index = {n: i for i, n in enumerate(names)}
    out = list(range(len(names)))
    for a, b in flip_pairs:
        out[index[a]], out[index[b]] = index[b], index[a]
    return out


def category_fields(spec: Any) -> dict[str, Any]:
    """The COCO category keys of a class with keypoints (a ``shared.config.KeypointSpec``): ``keypoints`` (names),
    ``skeleton`` (1-based pairs) and, when flip pairs are configured, ``keypoint_flip_map`` (the pairs of names a
    left-right flip swaps, the key ``trainer/data/keypoints.py`` reads too)."""
    out: dict[str, Any] = {"keypoints": list(spec.names), "skeleton": coco_skeleton(spec.names, spec.skeleton)}
    if spec.flip_pairs:
        out["keypoint_flip_map"] = [list(p) for p in spec.flip_pairs]
    return out
