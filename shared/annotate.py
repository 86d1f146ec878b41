"""Instance map -> COCO annotations with Blendset's attributes (visibility, occlusion, truncation, depth, ...).

Pure numpy, values in, values out: the engine renders, this module measures. Conventions:

- ``bbox`` is ``[x, y, w, h]`` tight to the VISIBLE pixels in COCO's pixel convention: ``x``/``y`` are the
  smallest column/row, ``w = max_col - min_col + 1`` (so a single pixel has a 1x1 box).
- ``area`` is the visible pixel count (not the box area), ``segmentation`` the compressed RLE of those pixels.
- Occlusion and truncation are measured against the object's rendered silhouette (``InstanceInfo``), never
  guessed from the box: ``occlusion = 1 - visible / silhouette_inframe`` (clipped to 0..1) and
  ``truncation = 1 - silhouette_inframe / silhouette_total``.
- ``background_similarity`` follows the gap thesis (section 4.6.2), computed on sRGB values scaled to 0..1 (the
  stored image, as a detector sees it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .coco import _counts_from_runs, _counts_to_strings, instance_runs, mask_to_polygons
from .config import Filters
from .keypoints import num_keypoints
from .layout import annotation_id, image_id

__all__ = ["InstanceInfo", "annotate_frame", "background_similarity"]


@dataclass(frozen=True)
class InstanceInfo:
    """One labelled object in a frame, as the engine knows it.

    ``silhouette_total``: pixels of the object's full, unoccluded silhouette on the unbounded image plane;
    ``silhouette_inframe``: those inside the image. ``distance``: metres from the camera to the object origin.
    """

    instance_id: int
    class_id: int
    class_name: str
    object_name: str
    silhouette_total: int
    silhouette_inframe: int
    distance: float


# The 8 neighbours of the 3x3 square used by the gap thesis's dilation.
_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
_DY = np.array([d[0] for d in _NEIGHBOURS])
_DX = np.array([d[1] for d in _NEIGHBOURS])


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    """The first three channels, dtype unchanged (the cosine does not depend on the 0..255 or 0..1 scale)."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] < 3:
        raise ValueError(f"rgb must be HxWx3 (or 4), got shape {a.shape}")
    return a[..., :3]


def _flat_rgb(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img).reshape(-1, 3)


def background_similarity(rgb: np.ndarray, mask: np.ndarray) -> float | None:
    """The gap thesis's background similarity of one object: cosine between its boundary and the background next to it.

    Every pair (object pixel p, 8-neighbour q outside the object, as a 3x3 dilation finds them) contributes p's
    RGB to the object vector and q's RGB to the background vector at the same position, so the two concatenated
    vectors line up pixel by pixel; the result is their cosine. 1.0 means the boundary looks exactly like what
    surrounds it (also for two shades of the same hue: a cosine ignores brightness), 0.0 means orthogonal
    colours. Computed on the stored sRGB values; the cosine does not depend on their scale, so uint8, uint16 and
    float 0..1 images give the same value. Returns None when the object has no background neighbour (empty
    mask, or it covers the image); 0.0 when one side is all black and the other is not, 1.0 when both are.
    """
    m = np.asarray(mask) != 0
    img = _as_rgb(rgb)
    if img.shape[:2] != m.shape:
        raise ValueError(f"rgb {img.shape[:2]} and mask {m.shape} differ in size")
    if not m.any():
        return None
    ys, xs = _boundary(m)
    return _similarities(_flat_rgb(img), m.astype(np.uint8), [(ys, xs)], [1])[0]


def _boundary(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of ``m`` with at least one 8-neighbour outside it (``m`` minus its 3x3 erosion, done as two
    separable 3-wide passes); pixels past the array edge count as inside, so only real neighbours make a pixel a
    boundary pixel."""
    h, w = m.shape
    pm = np.ones((h + 2, w + 2), dtype=bool)
    pm[1:-1, 1:-1] = m
    rows = pm[:, :-2] & pm[:, 1:-1] & pm[:, 2:]  # (h+2, w): horizontal 3-wide erosion
    interior = rows[:-2] & rows[1:-1] & rows[2:]  # (h, w): then vertical
    return np.nonzero(m & ~interior)


def _similarities(
    flat: np.ndarray, labels: np.ndarray, boundaries: list[tuple[np.ndarray, np.ndarray]], ids: list[int]
) -> list[float | None]:
    """Background similarity of several objects at once (one set of array operations for all of them).

    ``flat``: the image as (H*W, 3); ``labels``: H x W ids; ``boundaries[k]``: image (rows, cols) of object
    ``ids[k]``'s boundary pixels. Pairs are (boundary pixel, 8-neighbour inside the image with another id).
    """
    h, w = labels.shape
    out: list[float | None] = [None] * len(ids)
    if not boundaries:
        return out
    ys = np.concatenate([b[0] for b in boundaries]).astype(np.int64)
    xs = np.concatenate([b[1] for b in boundaries]).astype(np.int64)
    owner = np.repeat(np.arange(len(ids)), [b[0].size for b in boundaries])
    if ys.size == 0:
        return out
    centre = ys * w + xs
    nflat = centre[:, None] + (_DY * w + _DX)[None, :]
    # Only pixels on the image border can have neighbours outside it: fix those few up separately.
    edge = np.flatnonzero((ys == 0) | (ys == h - 1) | (xs == 0) | (xs == w - 1))
    if edge.size:
        ey, ex = ys[edge, None] + _DY[None, :], xs[edge, None] + _DX[None, :]
        inside = (ey >= 0) & (ey < h) & (ex >= 0) & (ex < w)
        nflat[edge] = np.where(inside, nflat[edge], centre[edge, None])  # outside -> itself: never a pair
    own_ids = np.asarray(ids, dtype=np.int64)[owner]
    pair = labels.ravel()[nflat] != own_ids[:, None]
    rows, cols = np.nonzero(pair)
    obj = flat[centre].astype(np.float32)  # (n, 3), each boundary pixel once
    bg = flat[nflat[rows, cols]].astype(np.float32)  # (pairs, 3); per-pair sums below stay exact enough
    k = len(ids)
    dot = np.bincount(owner[rows], weights=np.einsum("ij,ij->i", obj[rows], bg), minlength=k)
    obj2 = np.bincount(owner, weights=np.einsum("ij,ij->i", obj, obj) * pair.sum(axis=1), minlength=k)
    bg2 = np.bincount(owner[rows], weights=np.einsum("ij,ij->i", bg, bg), minlength=k)
    npairs = np.bincount(owner[rows], minlength=k)
    for i in range(k):
        if npairs[i] == 0:
            continue
        if obj2[i] == 0.0 or bg2[i] == 0.0:
            out[i] = 1.0 if obj2[i] == bg2[i] else 0.0
        else:
            out[i] = float(np.clip(dot[i] / np.sqrt(obj2[i] * bg2[i]), -1.0, 1.0))
    return out


def _median(values: np.ndarray) -> float | None:
    """Exact median of the finite values (None if there is none).

    Selection by sampling (Floyd and Rivest's idea): a strided sample brackets the middle rank, two comparison
    passes count what lies below the bracket and pick what lies inside it, and only that small remainder is
    partitioned. Several times cheaper than a partition of everything; falls back to one when the bracket
    misses (the result is exact either way).
    """
    v = values if np.isfinite(values).all() else values[np.isfinite(values)]
    n = v.size
    if n == 0:
        return None
    ranks = [(n - 1) // 2, n // 2]  # the two middle ranks (equal for odd n)
    if n > 4096:
        sample = np.sort(v[:: n // 1024])
        s = sample.size
        lo = sample[max(0, s // 2 - 64)]
        hi = sample[min(s - 1, s // 2 + 64)]
        below = int(np.count_nonzero(v < lo))
        middle = v[(v >= lo) & (v <= hi)]
        if below <= ranks[0] and ranks[1] < below + middle.size:
            part = np.partition(middle, [r - below for r in ranks])
            return float((float(part[ranks[0] - below]) + float(part[ranks[1] - below])) / 2.0)
    part = np.partition(v, ranks)
    return float((float(part[ranks[0]]) + float(part[ranks[1]])) / 2.0)


def _keypoint_fields(keypoints: Mapping[int, list[float | int]] | None, instance_id: int) -> dict[str, Any]:
    flat = keypoints.get(instance_id) if keypoints else None
    if flat is None:
        return {}  # no keys at all: annotations of classes without keypoints stay as they were
    return {"keypoints": list(flat), "num_keypoints": num_keypoints(flat)}


def _dropped(info: InstanceInfo, reason: str, visible: int, occlusion: float | None) -> dict[str, Any]:
    return {
        "object": info.object_name,
        "class": info.class_name,
        "class_id": info.class_id,
        "instance_id": info.instance_id,
        "reason": reason,
        "visible_pixels": visible,
        "occlusion": occlusion,
    }


def annotate_frame(
    instance_map: np.ndarray,
    instances: list[InstanceInfo],
    depth: np.ndarray | None,
    rgb: np.ndarray | None,
    filters: Filters,
    frame: int,
    polygons: bool = False,
    keypoints: Mapping[int, list[float | int]] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """COCO annotations for one frame, plus the instances left out and why.

    ``instance_map``: HxW integer ids (0 = background) whose ids are ``InstanceInfo.instance_id``; ids in the map
    that are not in ``instances`` (distractors) are not annotated. ``depth``: HxW metres (or None: no
    ``depth_median``); ``rgb``: HxWx3 image (or None: no ``background_similarity``). Instances are annotated in
    increasing ``instance_id`` order; the k-th kept one gets ``shared.layout.annotation_id(frame, k)``.
    Dropped instances (no visible pixel, fewer than ``filters.min_visible_pixels``, occlusion above
    ``filters.max_occlusion``) come back in the second list with ``object``, ``class``, ``reason``.
    With ``polygons`` each annotation also gets ``"polygons"`` (COCO polygon lists of the visible pixels).
    ``keypoints`` maps an instance id to its COCO keypoint list (``shared.keypoints.frame_keypoints``); those
    instances' annotations get ``keypoints`` and ``num_keypoints``.
    """
    im = np.asarray(instance_map)
    if im.ndim != 2:
        raise ValueError(f"instance map must be 2-D, got shape {im.shape}")
    if depth is not None and np.shape(depth)[:2] != im.shape:
        raise ValueError(f"depth {np.shape(depth)} and instance map {im.shape} differ in size")
    if rgb is not None and np.shape(rgb)[:2] != im.shape:
        raise ValueError(f"rgb {np.shape(rgb)[:2]} and instance map {im.shape} differ in size")
    ids = [i.instance_id for i in instances]
    if len(set(ids)) != len(ids):
        raise ValueError("instance ids must be unique within a frame")
    if any(i <= 0 for i in ids):
        raise ValueError("instance id 0 is the background; instance ids start at 1")
    h, w = im.shape
    n = h * w
    flat_rgb = _flat_rgb(_as_rgb(rgb)) if rgb is not None else None

    # One Fortran-order pass: every run of equal ids, grouped by id. Boxes and RLEs both come from the runs.
    values, starts, lengths = instance_runs(im)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]

    annotations: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    boundaries: list[tuple[np.ndarray, np.ndarray]] = []
    run_counts: list[np.ndarray] = []
    for info in sorted(instances, key=lambda i: i.instance_id):
        lo = np.searchsorted(sorted_values, info.instance_id, "left")
        hi = np.searchsorted(sorted_values, info.instance_id, "right")
        sel = order[lo:hi]
        s, ln = starts[sel], lengths[sel]
        visible = int(ln.sum())
        inframe = int(info.silhouette_inframe)
        if visible == 0:
            dropped.append(_dropped(info, "not visible", 0, 1.0 if inframe > 0 else None))
            continue
        occlusion = float(np.clip(1.0 - visible / inframe, 0.0, 1.0)) if inframe > 0 else 0.0
        if visible < filters.min_visible_pixels:
            reason = f"too few visible pixels ({visible} < {filters.min_visible_pixels})"
            dropped.append(_dropped(info, reason, visible, occlusion))
            continue
        if occlusion > filters.max_occlusion:
            reason = f"too occluded ({occlusion:.3f} > {filters.max_occlusion})"
            dropped.append(_dropped(info, reason, visible, occlusion))
            continue
        e = s + ln - 1  # last pixel of each run
        c0, c1 = int(s[0] // h), int(e[-1] // h)
        spans = (s // h) != (e // h)  # a run crossing a column boundary covers rows h-1 and 0
        r0 = 0 if spans.any() else int((s % h).min())
        r1 = h - 1 if spans.any() else int((e % h).max())
        total = int(info.silhouette_total)
        truncation = float(np.clip(1.0 - inframe / total, 0.0, 1.0)) if total > 0 else 0.0
        crop_mask = None
        depth_median = None
        if depth is not None or flat_rgb is not None or polygons:
            y0, y1, x0, x1 = max(r0 - 1, 0), min(r1 + 2, h), max(c0 - 1, 0), min(c1 + 2, w)
            crop_mask = im[y0:y1, x0:x1] == info.instance_id
            if depth is not None:
                depth_median = _median(np.asarray(depth)[y0:y1, x0:x1][crop_mask])
            if flat_rgb is not None:
                by, bx = _boundary(crop_mask)
                boundaries.append((by + y0, bx + x0))
        k = len(annotations)
        run_counts.append(_counts_from_runs(s, ln, n))
        ann: dict[str, Any] = {
            "id": annotation_id(frame, k),
            "image_id": image_id(frame),
            "category_id": int(info.class_id),
            "bbox": [c0, r0, c1 - c0 + 1, r1 - r0 + 1],
            "area": visible,
            "iscrowd": 0,
            "segmentation": {"size": [h, w], "counts": ""},  # filled in below, all objects at once
            **_keypoint_fields(keypoints, info.instance_id),
            "attributes": {
                "visible_pixels": visible,
                "unoccluded_pixels": inframe,
                "occlusion": occlusion,
                "truncation": truncation,
                "depth_median": depth_median,
                "distance": float(info.distance),
                "background_similarity": None,  # filled in below, all objects at once
                "instance_id": int(info.instance_id),
                "object": info.object_name,
            },
        }
        if polygons and crop_mask is not None:
            polys = mask_to_polygons(crop_mask)
            ann["polygons"] = [[v + (x0 if j % 2 == 0 else y0) for j, v in enumerate(p)] for p in polys]
        annotations.append(ann)
    for ann, text in zip(annotations, _counts_to_strings(run_counts), strict=True):
        ann["segmentation"]["counts"] = text
    if flat_rgb is not None and annotations:
        ids_kept = [a["attributes"]["instance_id"] for a in annotations]
        for ann, sim in zip(annotations, _similarities(flat_rgb, im, boundaries, ids_kept), strict=True):
            ann["attributes"]["background_similarity"] = sim
    return annotations, dropped
