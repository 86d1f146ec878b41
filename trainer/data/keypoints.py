"""COCO keypoint datasets in torchvision's ``(image, target)`` shape: ``CocoKeypoints``.

The dataset is standard COCO keypoints: ``categories[].keypoints`` (names), ``categories[].skeleton`` (1-based
pairs), ``annotations[].keypoints`` flat ``[x, y, v] * K`` and ``num_keypoints``. ``v`` is 0 for a keypoint outside
the image (written as ``x = y = 0``), 1 inside but hidden, 2 visible.

Coordinates. COCO here means continuous pixel coordinates: (0, 0) is the top-left corner of the top-left pixel
and the centre of pixel (i, j) is (i + 0.5, j + 0.5), as for COCO boxes. torchvision's Keypoint R-CNN uses the
same convention: ``roi_heads.keypoints_to_heatmap`` puts a keypoint in heatmap cell ``floor((x - x1) * 56 / w)``
and ``heatmaps_to_keypoints`` returns the centre of the winning cell, ``(d + 0.5) * w / W + x1`` ("c = d + 0.5",
Heckbert 1990); ``GeneralizedRCNNTransform`` only scales them. So the target's ``keypoints`` are the file's values
unchanged, predictions come back in COCO coordinates, and nothing adds or removes half a pixel (a dataset of
integer pixel indices, detectron2's reading of the person keypoints, would be half a pixel off; Blendset's engine
and the real-photo builder write continuous coordinates). ``tests/trainer/test_keypoints.py`` checks the round
trip through torchvision's own encode/decode.

Visibility. In the target, ``keypoints[..., 2]`` keeps COCO's 0/1/2; torchvision trains on every keypoint with
``v > 0`` (hidden-but-labelled corners included), as COCO's OKS scores them.

Checks, with the same raise/skip policy and skip listing as :class:`~trainer.data.datasets.CocoDetection`:
``shared.coco.load_coco`` checks the form (``3 * K`` finite numbers, visibility 0/1/2, ``num_keypoints``, the
skeleton); here every category must name the same keypoints (one list, else DataError) and an annotation whose
labelled keypoint lies outside its image (beyond 1 px) is a ``bad_keypoints`` skip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from shared import keypoints
from trainer.data.datasets import CocoDetection, DataError, Skip

_KEYPOINT_TOL = 1.0  # px a labelled keypoint may lie outside its image (rounding in other tools)


def keypoint_schema(categories: Sequence[dict], path: str) -> dict[str, Any]:
    """``{"names", "skeleton", "flip_index"}`` shared by every category, or DataError.

    ``flip_index`` comes from an optional ``keypoint_flip_map`` (pairs of names that swap under a mirror, e.g.
    ``[["left_eye", "right_eye"]]``; unnamed keypoints map to themselves) and is None without one.
    """
    if not categories:
        raise DataError(f"{path}: no categories")
    names = None
    for cat in categories:
        kps = cat.get("keypoints")
        if not isinstance(kps, list) or not kps or not all(isinstance(n, str) for n in kps):
            raise DataError(f"{path}: category {cat.get('name')!r} has no 'keypoints' list of names")
        if names is not None and kps != names:
            raise DataError(f"{path}: categories name different keypoints; one keypoint list is needed")
        names = kps
    first = sorted(categories, key=lambda c: int(c["id"]))[0]
    skeleton = [[int(a), int(b)] for a, b in first.get("skeleton") or []]  # checked by shared.coco
    flip_map = first.get("keypoint_flip_map")
    flip_index = None
    if flip_map is not None:
        for pair in flip_map:
            if not isinstance(pair, list) or len(pair) != 2 or not all(n in names for n in pair):
                raise DataError(f"{path}: keypoint_flip_map entry {pair!r} is not a pair of keypoint names")
        flip_index = keypoints.flip_index(names, flip_map)
    return {"names": list(names), "skeleton": skeleton, "flip_index": flip_index}


def keypoint_problem(ann: dict, width: float, height: float) -> str | None:
    """Why an annotation's keypoints cannot be used, or None. Their form (``3 * K`` finite numbers, visibility
    0/1/2, ``num_keypoints``) is checked by ``shared.coco.load_coco``; this adds the image's bounds."""
    kps = ann["keypoints"]
    tol = _KEYPOINT_TOL
    for k in range(len(kps) // 3):
        x, y, v = kps[3 * k : 3 * k + 3]
        if v > 0 and not (-tol <= x <= width + tol and -tol <= y <= height + tol):
            return f"labelled keypoint {k} at ({x}, {y}) lies outside the {width:g}x{height:g} image"
    return None


class CocoKeypoints(CocoDetection):
    """``(image, target)`` pairs for Keypoint R-CNN: the detection target (``boxes``, ``labels``, ``image_id``,
    ``area``, ``iscrowd``) plus ``keypoints``, a float ``N x K x 3`` tensor of ``(x, y, v)`` in continuous pixel
    coordinates (see the module docstring). ``keypoint_names``, ``skeleton`` and ``flip_index`` describe the one
    keypoint list; ``coco_ground_truth()`` holds only the annotations that passed the checks."""

    def __init__(self, path: str, transforms=None, on_problem: str = "raise", check_files: bool = True):
        super().__init__(path, transforms, masks=False, on_problem=on_problem, check_files=check_files)
        schema = keypoint_schema(self.source.data["categories"], path)
        self.keypoint_names: list[str] = schema["names"]
        self.skeleton: list[list[int]] = schema["skeleton"]
        self.flip_index: list[int] | None = schema["flip_index"]
        self.extra_skipped: list[Skip] = []
        for i, info in enumerate(self.images):
            kept = []
            for ann in self.anns[i]:
                why = keypoint_problem(ann, float(info["width"]), float(info["height"]))
                if why is None:
                    kept.append(ann)
                else:
                    self.extra_skipped.append(Skip("bad_keypoints", ann.get("id"), why))
            self.anns[i] = kept
        if self.extra_skipped:
            if on_problem == "raise":
                listing = "\n  ".join(str(s) for s in self.extra_skipped[:10])
                raise DataError(
                    f"{path}: {len(self.extra_skipped)} annotation(s) with bad keypoints:\n  {listing}\n"
                    "(pass --skip-bad to leave these out and list them)"
                )
            dropped = {s.id for s in self.extra_skipped}
            data = dict(self.source.data)
            data["annotations"] = [a for a in data["annotations"] if a.get("id") not in dropped]
            self.source.data = data

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    @property
    def skipped(self) -> list:
        return list(self.source.skipped) + self.extra_skipped

    def target(self, index: int, height: int, width: int) -> dict:
        target = super().target(index, height, width)
        rows = [a["keypoints"] for a in self.anns[index]]
        keypoints = torch.tensor(rows, dtype=torch.float32).reshape(-1, self.num_keypoints, 3)
        keypoints[keypoints[..., 2] == 0] = 0.0  # "not labelled" is (0, 0, 0) whatever the file wrote
        target["keypoints"] = keypoints
        return target


def check_same_keypoints(named: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """All sources must name the same keypoints in the same order; the first list is returned."""
    first_name, first = named[0]
    for name, names in named[1:]:
        if list(names) != list(first):
            raise DataError(
                f"keypoint lists differ: {first_name} has {len(first)} ({', '.join(first[:4])}, ...) but {name} has "
                f"{len(names)} ({', '.join(list(names)[:4])}, ...)"
            )
    return list(first)
