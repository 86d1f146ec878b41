"""Where a Blendset dataset keeps its files, and what the COCO file holds beyond standard COCO.

A dataset folder ``OUT``::

    OUT/config.json              the resolved config that produced it (DatasetConfig.to_dict())
    OUT/annotations.json         COCO, rebuilt from the frame records (see below)
    OUT/images/000042.png        RGB (.png or .jpg)
    OUT/instance/000042.png      uint16 instance ids, 0 = background; the id is the annotation's instance_id
    OUT/semantic/000042.png      uint16 class id + 1 (0 = background, so class id 0 stays visible)
    OUT/depth/000042.png         uint16 millimetres, 0 = no surface (optional .npy/.exr float32 metres)
    OUT/normals/000042.npy       float16 HxWx3 camera-space normals (optional)
    OUT/frames/000042.json       the frame record: written last and atomically; its presence means "frame done"
    OUT/yolo/                    YOLO export (optional)

Frame ``i`` (0-based, global across shards) has COCO image id ``i + 1``. Annotation ids are
``(i + 1) * ANN_ID_STRIDE + k`` for the k-th kept instance of the frame, so shards and resumed runs give the
same ids as one uninterrupted run and merging can never duplicate an id.

Pixel coordinates (boxes, polygons, keypoints, ``K``) are COCO's continuous ones: (0, 0) is the top-left corner
of the top-left pixel, x to the right, y down, so the centre of pixel (column i, row j) is (i + 0.5, j + 0.5).

Keypoints (classes with ``keypoints`` in the config; standard COCO keypoints, see ``shared/keypoints.py``):
``categories[*]["keypoints"]`` (names, in order), ``["skeleton"]`` (1-based index pairs) and, with
``flip_pairs``, ``["keypoint_flip_map"]`` (pairs of names a left-right flip swaps); ``annotations[*]["keypoints"]``
(flat ``[x, y, v] * K``, rounded to 0.01 px; ``v`` 0 outside the image with ``x = y = 0``, 1 inside but hidden,
2 visible) and ``["num_keypoints"]`` (keypoints with ``v > 0``). Annotations of other classes have neither key.

COCO extensions (all JSON-plain):

- ``images[*]["blendset"]``: ``frame``, ``seed``, ``component`` (mixture component index or null),
  ``camera`` (``K`` 3x3, ``world_from_camera`` 4x4 (Blender camera convention: -Z forward, +Y up),
  ``focal_length_mm``, ``sensor_width_mm``), ``params`` (flat dict of every sampled scalar, dotted names such
  as ``camera.elevation_deg``, ``camera.azimuth_deg``, ``camera.distance``, ``lights.energy_w``: the regression
  targets), and ``dropped`` (instances left out by filters, each with ``object``, ``class``, ``reason``).
- ``annotations[*]["attributes"]``: ``visible_pixels``, ``unoccluded_pixels`` (silhouette inside the image),
  ``occlusion`` (1 - visible/unoccluded), ``truncation`` (share of the full silhouette outside the image),
  ``depth_median`` (m, over visible pixels), ``distance`` (m, camera to object origin),
  ``background_similarity`` (the gap thesis's boundary-pixel cosine), ``instance_id``, ``object`` (Blender name).
- ``annotations[*]["polygons"]`` (only with ``output.polygons``): COCO polygons traced along pixel edges, holes
  filled; ``segmentation`` stays the RLE, which is exact.
- ``info["blendset"]``: ``config_hash``, ``schema_version``, ``count``.
"""

from __future__ import annotations

import os

ANN_ID_STRIDE = 10_000  # at most 9,999 annotations per frame

SUBDIRS = ("images", "instance", "semantic", "depth", "normals", "frames")


def frame_stem(frame: int) -> str:
    return f"{frame:06d}"


def image_id(frame: int) -> int:
    return frame + 1


def annotation_id(frame: int, k: int) -> int:
    if not 0 <= k < ANN_ID_STRIDE - 1:
        raise ValueError(f"frame {frame}: more than {ANN_ID_STRIDE - 1} annotations")
    return image_id(frame) * ANN_ID_STRIDE + k


def frame_record_path(out: str, frame: int) -> str:
    return os.path.join(out, "frames", frame_stem(frame) + ".json")


def safe_join(root: str, *parts: str) -> str:
    """Join and refuse any result outside ``root`` (no ``..`` or absolute escapes from file names in data)."""
    root_abs = os.path.realpath(root)
    path = os.path.realpath(os.path.join(root_abs, *parts))
    if path != root_abs and not path.startswith(root_abs + os.sep):
        raise ValueError(f"path {os.path.join(*parts)!r} escapes the output folder {root!r}")
    return path
