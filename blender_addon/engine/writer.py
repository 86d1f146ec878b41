"""Per-frame files in the layout of ``shared/layout.py``, each written atomically, the frame record last.

A frame counts as done only when ``frames/NNNNNN.json`` exists; every other file of the frame is replaced
atomically before it, so a run killed at any point leaves either a complete frame or files that the rerun
simply overwrites.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import numpy as np

from ..shared import layout
from ..shared.coco import write_json_atomic
from .errors import EngineError
from .png import encode_png


def _tmp(path: str) -> str:
    return f"{os.path.dirname(path)}/.tmp-{os.getpid()}-{os.path.basename(path)}"


def write_bytes_atomic(path: str, data: bytes) -> None:
    tmp = _tmp(path)
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def move_atomic(src: str, path: str) -> None:
    """Move a file Blender wrote into its final place (copy first when on another filesystem)."""
    tmp = _tmp(path)
    shutil.move(src, tmp)
    os.replace(tmp, path)


def prepare_output(out_dir: str, with_normals: bool) -> None:
    """Create the dataset folders and prove the folder is writable, with a message naming it otherwise."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        for sub in layout.SUBDIRS:
            if sub == "normals" and not with_normals:
                continue
            os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
        probe = os.path.join(out_dir, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.unlink(probe)
    except OSError as e:
        raise EngineError(f"output folder {out_dir!r} is not writable: {e.strerror or e}", "out") from None


def frame_paths(out_dir: str, frame: int, image_ext: str, config: Any) -> dict[str, str]:
    """Where each file of ``frame`` goes (only those the config asks for)."""
    stem = layout.frame_stem(frame)
    paths = {
        "rgb": layout.safe_join(out_dir, "images", stem + image_ext),
        "instance": layout.safe_join(out_dir, "instance", stem + ".png"),
        "semantic": layout.safe_join(out_dir, "semantic", stem + ".png"),
    }
    out = config.output
    if out.depth_png:
        paths["depth"] = layout.safe_join(out_dir, "depth", stem + ".png")
    if out.depth_float == "npy":
        paths["depth_float"] = layout.safe_join(out_dir, "depth", stem + ".npy")
    elif out.depth_float == "exr":
        paths["depth_float"] = layout.safe_join(out_dir, "depth", stem + ".exr")
    if out.normals:
        paths["normals"] = layout.safe_join(out_dir, "normals", stem + ".npy")
    paths["record"] = layout.frame_record_path(out_dir, frame)
    return paths


def depth_to_mm(depth: np.ndarray) -> np.ndarray:
    """uint16 millimetres; 0 stays "no surface", and far surfaces saturate at 65.535 m."""
    return np.clip(np.rint(depth * 1000.0), 0, 65535).astype(np.uint16)


def write_npy_atomic(path: str, array: np.ndarray) -> None:
    tmp = _tmp(path)
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def write_frame(paths: dict[str, str], arrays: dict[str, Any], record: dict[str, Any]) -> None:
    """Write the frame's arrays and files, then its record. ``arrays`` holds ``instance``/``semantic`` (uint16),
    ``depth`` (float32 m), ``normal`` (float32), ``rgb_file`` (a file Blender wrote, moved into place) and
    ``depth_exr_file`` (optional)."""
    move_atomic(arrays["rgb_file"], paths["rgb"])
    write_bytes_atomic(paths["instance"], encode_png(arrays["instance"]))
    write_bytes_atomic(paths["semantic"], encode_png(arrays["semantic"]))
    if "depth" in paths:
        write_bytes_atomic(paths["depth"], encode_png(depth_to_mm(arrays["depth"])))
    if "depth_float" in paths:
        if paths["depth_float"].endswith(".npy"):
            write_npy_atomic(paths["depth_float"], arrays["depth"].astype(np.float32))
        else:
            move_atomic(arrays["depth_exr_file"], paths["depth_float"])
    if "normals" in paths and "normal" in arrays:
        write_npy_atomic(paths["normals"], arrays["normal"].astype(np.float16))
    write_json_atomic(paths["record"], record)
