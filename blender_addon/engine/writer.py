"""The dataset folder on disk: its sub-folders and ``config.json``, each process's scratch folder, and the
per-frame files in the layout of ``shared/layout.py``, each written atomically, the frame record last.

A frame counts as done only when ``frames/NNNNNN.json`` exists; every other file of the frame is replaced
atomically before it, so a run killed at any point leaves either a complete frame or files that the rerun
simply overwrites.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any

import numpy as np

from ..shared import layout
from ..shared.atomic import TEMP_PREFIX, atomic_path, atomic_write, is_temp, write_bytes, write_json
from ..shared.coco import write_json_atomic
from ..shared.config import ConfigError, DatasetConfig, config_hash
from .errors import EngineError
from .png import encode_png

SCRATCH_PREFIX = f"{TEMP_PREFIX}render-"  # per-process scratch folder; listings and uploads skip temp names


def move_atomic(src: str, path: str) -> None:
    """Move a file Blender wrote into its final place (copied first when on another filesystem)."""
    with atomic_path(path) as tmp:
        shutil.move(src, tmp)


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


def write_config(out_dir: str, config: DatasetConfig, count: int) -> None:
    """config.json records what this folder holds; a folder made with another config is refused."""
    path = os.path.join(out_dir, "config.json")
    mine = config_hash(config)
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                existing = DatasetConfig.from_dict(json.load(f))
        except (ConfigError, ValueError) as e:
            raise EngineError(f"{path} exists but is not a Blendset config ({e}); use another --out", "out") from None
        if config_hash(existing) != mine:
            raise EngineError(
                f"{out_dir} holds a dataset made with another config (hash {config_hash(existing)}, "
                f"this one {mine}): use another output folder",
                "out",
            )
    # the same writer as shared.merge's config.json: a merged dataset's config.json is byte-identical
    write_json_atomic(path, dataclasses.replace(config, count=max(count, 0)).to_dict(), indent=2)


def make_scratch_dir(out_dir: str) -> str:
    """This process's scratch folder ``.tmp-render-<pid>`` (Blender's renders before they are moved into place).
    Scratch folders of killed runs (their process is gone) are removed first; live ones (other shards) stay."""
    for name in os.listdir(out_dir):
        if not (is_temp(name) and name.startswith(SCRATCH_PREFIX)):
            continue
        try:
            pid = int(name[len(SCRATCH_PREFIX) :])
            os.kill(pid, 0)
            continue  # still running
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        shutil.rmtree(os.path.join(out_dir, name), ignore_errors=True)
    path = os.path.join(out_dir, f"{SCRATCH_PREFIX}{os.getpid()}")
    os.makedirs(path, exist_ok=True)
    return path


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
    with atomic_write(path, "wb") as f:
        np.save(f, array)


def write_frame(paths: dict[str, str], arrays: dict[str, Any], record: dict[str, Any]) -> None:
    """Write the frame's arrays and files, then its record. ``arrays`` holds ``instance``/``semantic`` (uint16),
    ``depth`` (float32 m), ``normal`` (float32), ``rgb_file`` (a file Blender wrote, moved into place) and
    ``depth_exr_file`` (optional)."""
    move_atomic(arrays["rgb_file"], paths["rgb"])
    write_bytes(paths["instance"], encode_png(arrays["instance"]))
    write_bytes(paths["semantic"], encode_png(arrays["semantic"]))
    if "depth" in paths:
        write_bytes(paths["depth"], encode_png(depth_to_mm(arrays["depth"])))
    if "depth_float" in paths:
        if paths["depth_float"].endswith(".npy"):
            write_npy_atomic(paths["depth_float"], arrays["depth"].astype(np.float32))
        else:
            move_atomic(arrays["depth_exr_file"], paths["depth_float"])
    if "normals" in paths and "normal" in arrays:
        write_npy_atomic(paths["normals"], arrays["normal"].astype(np.float16))
    write_json(paths["record"], record, indent=None, fsync=True)  # the record marks the frame done: durable
