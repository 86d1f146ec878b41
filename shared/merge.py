"""Shards and merging: which frames a shard renders, and how shard folders become one dataset.

Shard ``i`` of ``n`` renders the contiguous block ``[i*count//n, (i+1)*count//n)``, so a missing shard shows up
as a named frame range. Frames are numbered globally and every id derives from the frame number
(``shared.layout``), so merging copies files and rebuilds ``annotations.json`` from the frame records with the
same function a single run uses: the result is byte-identical to a one-process run.

Standard library and numpy only (Blender's Python imports this module too).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from . import layout
from .atomic import atomic_path
from .coco import build_coco, write_json_atomic
from .config import ConfigError, DatasetConfig, config_hash
from .errors import BlendsetError
from .progress import ProgressFn, Step
from .yolo import export_yolo

__all__ = [
    "MergeError",
    "ShardError",
    "frames_of_shard",
    "parse_shard",
    "read_frame_records",
    "coco_from_records",
    "frame_ranges",
    "merge_datasets",
]


class MergeError(BlendsetError, ValueError):
    """Shard folders cannot be merged; the message says which folder and why."""


class ShardError(BlendsetError, ValueError):
    """A shard is asked for that does not exist: a malformed ``i/n``, ``n < 1`` or ``i`` outside ``0..n-1``."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with 0 <= i < n; :class:`ShardError` with the reason otherwise."""
    try:
        i_s, n_s = text.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise ShardError(f"shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ShardError(f"shard {text!r}: need 0 <= i < n")
    return i, n


def frames_of_shard(count: int, index: int, num_shards: int) -> list[int]:
    """The frames shard ``index`` of ``num_shards`` renders: a contiguous block, all blocks covering 0..count-1."""
    start = index * count // num_shards
    stop = (index + 1) * count // num_shards
    return list(range(start, stop))


def frame_ranges(frames: list[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"`` (for messages naming missing frames)."""
    parts: list[str] = []
    frames = sorted(frames)
    i = 0
    while i < len(frames):
        j = i
        while j + 1 < len(frames) and frames[j + 1] == frames[j] + 1:
            j += 1
        parts.append(str(frames[i]) if i == j else f"{frames[i]}-{frames[j]}")
        i = j + 1
    return ", ".join(parts)


def read_frame_records(folder: str) -> list[dict[str, Any]]:
    """Every frame record in ``folder/frames`` sorted by frame. An unreadable record raises naming the file
    (records are written atomically, so one only breaks by outside damage)."""
    frames_dir = os.path.join(folder, "frames")
    if not os.path.isdir(frames_dir):
        return []
    records = []
    for name in sorted(os.listdir(frames_dir)):
        if name.startswith(".") or not name.endswith(".json"):
            continue
        path = os.path.join(frames_dir, name)
        try:
            with open(path, encoding="utf-8") as f:
                rec = json.load(f)
            rec["image"]["blendset"]["frame"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise MergeError(f"frame record {path} is unreadable: {e}") from None
        records.append(rec)
    records.sort(key=lambda r: r["image"]["blendset"]["frame"])
    return records


def coco_from_records(
    records: list[dict[str, Any]], config: DatasetConfig, categories: list[dict[str, Any]]
) -> dict[str, Any]:
    """The dataset's COCO dict. Frames flagged ``empty_dropped`` (filters.drop_empty_frames) are left out and
    counted in ``info``. The frame records' own bookkeeping keys stay out of the COCO file."""
    kept = [r for r in records if not r["image"]["blendset"].get("empty_dropped")]
    info = {
        "description": config.name,
        "version": "1.0",
        "blendset": {
            "config_hash": config_hash(config),
            "schema_version": config.schema_version,
            "count": len(kept),
            "empty_frames_dropped": len(records) - len(kept),
        },
    }
    return build_coco(kept, categories, info)


def _load_config(folder: str) -> DatasetConfig:
    path = os.path.join(folder, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            return DatasetConfig.from_dict(json.load(f))
    except FileNotFoundError:
        raise MergeError(f"{folder}: no config.json, not a Blendset dataset folder") from None
    except (json.JSONDecodeError, ConfigError) as e:
        raise MergeError(f"{path}: {e}") from None


def _frame_files(folder: str, record: dict[str, Any]) -> list[str]:
    """Paths (relative to the dataset folder) of every file a frame wrote, the record last."""
    frame = record["image"]["blendset"]["frame"]
    stem = layout.frame_stem(frame)
    rel = [os.path.join("images", record["image"]["file_name"])]
    for sub in ("instance", "semantic", "depth", "normals"):
        d = os.path.join(folder, sub)
        if os.path.isdir(d):
            for ext in (".png", ".npy", ".exr"):
                if os.path.exists(os.path.join(d, stem + ext)):
                    rel.append(os.path.join(sub, stem + ext))
    rel.append(os.path.join("frames", stem + ".json"))
    return rel


def _same_files(a_dir: str, b_dir: str, rel: list[str]) -> bool:
    for r in rel:
        pa, pb = os.path.join(a_dir, r), os.path.join(b_dir, r)
        if not os.path.exists(pb):
            return False
        with open(pa, "rb") as fa, open(pb, "rb") as fb:
            if fa.read() != fb.read():
                return False
    return True


def merge_datasets(
    shard_dirs: list[str],
    out_dir: str,
    progress: ProgressFn | None = None,
    allow_missing: bool = False,
) -> dict[str, Any]:
    """Merge shard folders into ``out_dir`` and return the COCO dict written to ``out_dir/annotations.json``.

    Refuses (:class:`MergeError`) when config hashes differ, categories differ, one frame appears in two shards
    with different content (identical copies are taken once), or frames of ``0..count-1`` are missing (named
    as ranges) unless ``allow_missing``. Writes the YOLO export too when the config asks for it
    (``output.yolo``), as a single run's finalize does. ``progress`` gets a ``merge`` step per frame copied
    (its ``frame`` in ``values``).
    """
    if not shard_dirs:
        raise MergeError("no shard folders given")
    configs = [(d, _load_config(d)) for d in shard_dirs]
    first_dir, first = configs[0]
    want = config_hash(first)
    for d, c in configs[1:]:
        if config_hash(c) != want:
            raise MergeError(
                f"{d} was rendered with another config than {first_dir} (config hash {config_hash(c)} vs {want}): "
                "only shards of the same config and seed can be merged"
            )
    count = max(c.count for _, c in configs)
    chosen: dict[int, tuple[str, dict[str, Any]]] = {}
    categories: list[dict[str, Any]] | None = None
    for d, _ in configs:
        for rec in read_frame_records(d):
            if rec.get("config_hash") not in (None, want):
                raise MergeError(
                    f"{d}: frame {rec['image']['blendset']['frame']} has config hash "
                    f"{rec.get('config_hash')}, the folder's config has {want}"
                )
            cats = rec.get("categories")
            if categories is None:
                categories = cats
            elif cats != categories:
                raise MergeError(
                    f"{d}: frame {rec['image']['blendset']['frame']} has categories {cats}, "
                    f"other shards have {categories}"
                )
            frame = rec["image"]["blendset"]["frame"]
            if frame in chosen:
                other_dir, other = chosen[frame]
                if other != rec or not _same_files(other_dir, d, _frame_files(other_dir, other)):
                    raise MergeError(f"frame {frame} is in {other_dir} and in {d} with different content")
                continue
            chosen[frame] = (d, rec)
    missing = sorted(set(range(count)) - set(chosen))
    if missing and not allow_missing:
        raise MergeError(
            f"frames {frame_ranges(missing)} of 0-{count - 1} are in none of the shard folders "
            "(a shard missing or unfinished?)"
        )
    os.makedirs(out_dir, exist_ok=True)
    for sub in layout.SUBDIRS:
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    out_abs = os.path.realpath(out_dir)
    for k, frame in enumerate(sorted(chosen)):
        d, rec = chosen[frame]
        if os.path.realpath(d) != out_abs:
            for rel in _frame_files(d, rec):
                dst = layout.safe_join(out_dir, rel)
                with atomic_path(dst) as tmp:
                    shutil.copyfile(os.path.join(d, rel), tmp)
        if progress is not None:
            progress(Step("merge", k + 1, len(chosen), {"frame": frame}))
    write_json_atomic(os.path.join(out_dir, "config.json"), first.to_dict() | {"count": count}, indent=2)
    records = [chosen[f][1] for f in sorted(chosen)]
    coco = coco_from_records(records, first, categories or [])
    write_json_atomic(os.path.join(out_dir, "annotations.json"), coco)
    if first.output.yolo:
        export_yolo(coco, os.path.join(out_dir, "images"), os.path.join(out_dir, "yolo"))
    return coco
