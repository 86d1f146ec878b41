"""COCO reading and writing: compressed RLE masks, polygons, the annotations file, and a checking loader.

Standard library and numpy only (Blender's Python imports this). The RLE strings are byte-identical to
``pycocotools.mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()``; the tests check that.

COCO's compressed RLE, in short: the mask is read in column-major (Fortran) order and cut into alternating runs
of 0s and 1s, starting with a (possibly empty) run of 0s. Each count from the third on is stored as the
difference to the count two places before, then written as little-endian groups of 5 bits, one ASCII character
(``48 + group``) per group, bit 0x20 meaning "another group follows" and bit 0x10 of the last group being the
sign.

The module is long (about 560 lines) because it is the whole COCO format in one place: the RLE encoder and
decoder must agree with each other and with pycocotools byte for byte, and the checking loader reads exactly
what the writer writes.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .atomic import atomic_write
from .errors import BlendsetError
from .layout import safe_join

__all__ = [
    "CocoError",
    "Problem",
    "LoadedCoco",
    "encode_rle",
    "decode_rle",
    "rle_area",
    "encode_instance_map",
    "instance_runs",
    "mask_to_polygons",
    "build_coco",
    "write_json_atomic",
    "load_coco",
]


class CocoError(BlendsetError, ValueError):
    """A COCO file is unusable; the message lists the problems found (at most 10, with counts per kind)."""

    def __init__(self, message: str, problems: list[Problem] | None = None):
        self.problems = problems or []
        super().__init__(message)


# ---------------------------------------------------------------------------------------------------------------
# RLE


_GROUP_LIMITS = np.array([1 << (5 * k - 1) for k in range(1, 13)], dtype=np.int64)


def _counts_to_string(counts: np.ndarray) -> str:
    """COCO's LEB128-like text form of run counts, vectorised (no Python loop per run)."""
    return _counts_to_strings([counts])[0]


def _counts_to_strings(many: list[np.ndarray]) -> list[str]:
    """:func:`_counts_to_string` for several masks in one set of array operations (one frame's instances)."""
    if not many:
        return []
    sizes = np.array([len(c) for c in many], dtype=np.int64)
    cnts = np.concatenate([np.asarray(c, dtype=np.int64) for c in many]) if sizes.sum() else np.zeros(0, np.int64)
    if cnts.size == 0:
        return [""] * len(many)
    # Position of each count inside its own mask's list: count i (i > 2) is stored relative to count i - 2.
    pos = np.arange(cnts.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    x = cnts.copy()
    rel = np.flatnonzero(pos > 2)
    x[rel] -= cnts[rel - 2]
    # A value needs k 5-bit groups when it fits in 5k signed bits (the top bit of the last group is the sign).
    mag = np.where(x >= 0, x, ~x)
    ngroups = 1 + np.searchsorted(_GROUP_LIMITS, mag, side="right")
    maxg = int(ngroups.max())
    shifts = 5 * np.arange(maxg, dtype=np.int64)
    groups = (x[:, None] >> shifts[None, :]) & 0x1F
    j = np.arange(maxg)[None, :]
    groups = groups | np.where(j < ngroups[:, None] - 1, 0x20, 0)
    text = (groups + 48)[j < ngroups[:, None]].astype(np.uint8).tobytes().decode("ascii")
    # Characters per mask, to cut the joined text back apart.
    chars_per_mask = _sum_segments(ngroups, sizes)
    ends = np.cumsum(chars_per_mask)
    return [text[e - n : e] for e, n in zip(ends.tolist(), chars_per_mask.tolist(), strict=True)]


def _sum_segments(values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Sums of consecutive segments of ``values`` with lengths ``sizes`` (zero-length segments allowed)."""
    csum = np.concatenate([[0], np.cumsum(values)])
    ends = np.cumsum(sizes)
    return csum[ends] - csum[ends - sizes]


def _string_to_counts(s: str | bytes) -> np.ndarray:
    """Inverse of :func:`_counts_to_string`."""
    raw = s.encode("ascii") if isinstance(s, str) else bytes(s)
    if not raw:
        return np.zeros(0, dtype=np.int64)
    c = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
    if np.any((c < 0) | (c > 63)):
        raise ValueError("RLE counts string has characters outside COCO's alphabet")
    last = (c & 0x20) == 0
    if not last[-1]:
        raise ValueError("RLE counts string is truncated (its last group says more follow)")
    group = np.concatenate([[0], np.cumsum(last[:-1])])
    start = np.flatnonzero(np.concatenate([[True], last[:-1]]))
    k = np.arange(c.size) - start[group]
    n = int(group[-1]) + 1
    x = np.zeros(n, dtype=np.int64)
    np.add.at(x, group, (c & 0x1F) << (5 * k))
    ends = np.flatnonzero(last)
    sign = (c[ends] & 0x10) != 0
    x[sign] -= np.int64(1) << (5 * (k[ends][sign] + 1))
    out = x.copy()
    if n > 1:
        out[1::2] = np.cumsum(x[1::2])
    if n > 2:
        out[2::2] = np.cumsum(x[2::2])
    return out


def _counts_from_runs(starts: np.ndarray, lengths: np.ndarray, n: int) -> np.ndarray:
    """Alternating 0/1 run counts for a mask whose 1-runs (in Fortran order) start at ``starts``."""
    if starts.size == 0:
        return np.array([n], dtype=np.int64)
    ends = starts + lengths
    gaps = np.empty(starts.size, dtype=np.int64)
    gaps[0] = starts[0]
    gaps[1:] = starts[1:] - ends[:-1]
    counts = np.empty(2 * starts.size, dtype=np.int64)
    counts[0::2] = gaps
    counts[1::2] = lengths
    if ends[-1] < n:
        counts = np.append(counts, n - ends[-1])
    return counts


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of a 2-D mask (any dtype; non-zero is foreground): ``{"size": [h, w], "counts": str}``."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"encode_rle needs a 2-D mask, got shape {m.shape}")
    h, w = m.shape
    flat = (m != 0).T.ravel()
    n = flat.size
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], change, [n]])
    counts = np.diff(edges)
    if n and flat[0]:
        counts = np.concatenate([[0], counts])
    if n == 0:
        counts = np.array([0], dtype=np.int64)
    return {"size": [int(h), int(w)], "counts": _counts_to_string(counts)}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """Boolean HxW mask from a COCO RLE (compressed string/bytes counts or an uncompressed list of counts)."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts_in = rle["counts"]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"not a COCO RLE (needs 'size' [h, w] and 'counts'): {e}") from None
    if isinstance(counts_in, (str, bytes)):
        counts = _string_to_counts(counts_in)
    else:
        counts = np.asarray(counts_in, dtype=np.int64)
    if np.any(counts < 0) or int(counts.sum()) != h * w:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected {h}*{w}={h * w}")
    values = (np.arange(counts.size) % 2).astype(bool)
    return np.repeat(values, counts).reshape(w, h).T


def rle_area(rle: dict[str, Any]) -> int:
    """Foreground pixel count of an RLE without decoding it to a mask."""
    c = rle["counts"]
    counts = _string_to_counts(c) if isinstance(c, (str, bytes)) else np.asarray(c, dtype=np.int64)
    return int(counts[1::2].sum())


def instance_runs(instance_map: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of equal ids in Fortran order: ``(values, starts, lengths)``, one pass over the image."""
    flat = np.asarray(instance_map).T.ravel()
    n = flat.size
    if n == 0:
        return flat[:0], np.zeros(0, np.int64), np.zeros(0, np.int64)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    lengths = np.diff(np.append(starts, n))
    return flat[starts], starts, lengths


def encode_instance_map(
    instance_map: np.ndarray,
    ids: Iterable[int],
    runs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[int, dict[str, Any]]:
    """Compressed RLE for each id in ``ids`` from one uint16 instance map.

    One Fortran-order pass finds every run boundary; the runs are then grouped by id, so the cost is one image
    scan plus work proportional to the number of runs, not one full scan per instance. An id with no pixel gets
    an all-zero RLE. ``runs`` may pass a precomputed :func:`instance_runs` result.
    """
    im = np.asarray(instance_map)
    if im.ndim != 2:
        raise ValueError(f"instance map must be 2-D, got shape {im.shape}")
    h, w = im.shape
    n = h * w
    values, starts, lengths = runs if runs is not None else instance_runs(im)
    order = np.argsort(values, kind="stable")
    sv = values[order]
    id_list = [int(i) for i in ids]
    all_counts = []
    for i in id_list:
        lo, hi = np.searchsorted(sv, i, "left"), np.searchsorted(sv, i, "right")
        sel = order[lo:hi]
        all_counts.append(_counts_from_runs(starts[sel], lengths[sel], n))
    strings = _counts_to_strings(all_counts)
    return {i: {"size": [int(h), int(w)], "counts": c} for i, c in zip(id_list, strings, strict=True)}


# ---------------------------------------------------------------------------------------------------------------
# Polygons

# Directed pixel-edge steps (dx, dy) in image coordinates (y down), indexed 0..3 = +x, +y, -x, -y.
_STEP = ((1, 0), (0, 1), (-1, 0), (0, -1))


def mask_to_polygons(mask: np.ndarray, min_area: float = 1.0) -> list[list[float]]:
    """Outer outlines of a mask as COCO polygons ``[x0, y0, x1, y1, ...]`` (pixel-corner coordinates).

    The outline follows pixel edges ("crack following"), so each polygon encloses exactly its component's pixels;
    straight runs are merged into single segments. Components are 4-connected (pixels touching only at a corner
    become separate polygons). COCO polygons cannot describe holes, so holes are filled: use the RLE when they
    matter. Polygons enclosing less than ``min_area`` pixels are left out.
    """
    m = np.asarray(mask) != 0
    if m.ndim != 2:
        raise ValueError(f"mask_to_polygons needs a 2-D mask, got shape {m.shape}")
    h, w = m.shape
    p = np.pad(m, 1)
    inner = p[1:-1, 1:-1]
    stride = w + 1
    # Each boundary edge runs with the inside on its right (clockwise on screen for outer outlines).
    starts, dirs = [], []
    for d, (nbr, corner) in enumerate(
        (
            (p[:-2, 1:-1], (0, 0)),  # top edge: from (c, r) going +x
            (p[1:-1, 2:], (1, 0)),  # right edge: from (c+1, r) going +y
            (p[2:, 1:-1], (1, 1)),  # bottom edge: from (c+1, r+1) going -x
            (p[1:-1, :-2], (0, 1)),  # left edge: from (c, r+1) going -y
        )
    ):
        r, c = np.nonzero(inner & ~nbr)
        starts.append((r + corner[1]) * stride + c + corner[0])
        dirs.append(np.full(r.size, d, dtype=np.int8))
    start = np.concatenate(starts)
    direction = np.concatenate(dirs)
    if start.size == 0:
        return []
    step_key = np.array([1, stride, -1, -stride], dtype=np.int64)
    # Out-edges per vertex: a vertex has one, or two at a checkerboard corner.
    out: dict[int, list[int]] = {}
    for k, s in enumerate(start.tolist()):
        out.setdefault(s, []).append(k)
    used = np.zeros(start.size, dtype=bool)
    polygons: list[list[float]] = []
    for first in range(start.size):
        if used[first]:
            continue
        xs: list[int] = []
        ys: list[int] = []
        k = first
        prev_dir = -1
        while not used[k]:
            used[k] = True
            d = int(direction[k])
            if d != prev_dir:
                v = int(start[k])
                xs.append(v % stride)
                ys.append(v // stride)
            prev_dir = d
            nxt = int(start[k] + step_key[d])
            cands = [e for e in out.get(nxt, ()) if not used[e]]
            if not cands:
                break
            if len(cands) > 1:  # prefer the right turn: keeps diagonal neighbours apart
                right = (d + 1) % 4
                cands.sort(key=lambda e: 0 if direction[e] == right else 1)
            k = cands[0]
        if direction[first] == prev_dir and len(xs) > 1:  # first and last segment are one straight line
            xs.pop(0)
            ys.pop(0)
        xa, ya = np.array(xs, float), np.array(ys, float)
        area = 0.5 * float(np.sum(xa * np.roll(ya, -1) - np.roll(xa, -1) * ya))
        if area >= min_area and len(xs) >= 3:  # negative area: a hole outline
            flat = np.empty(2 * len(xs))
            flat[0::2], flat[1::2] = xa, ya
            polygons.append(flat.tolist())
    return polygons


# ---------------------------------------------------------------------------------------------------------------
# Writing


def build_coco(frame_records: list[dict[str, Any]], categories: list[dict[str, Any]], info: dict[str, Any]) -> dict:
    """One COCO dict from per-frame records ``{"image": {...}, "annotations": [...]}`` (see shared/layout.py).

    Images and annotations are sorted by id and categories by id, so the same records always give the same file
    whatever order the frames finished in (shards, resumed runs). Duplicate ids raise :class:`CocoError`.
    """
    images: dict[int, dict] = {}
    anns: dict[int, dict] = {}
    for rec in frame_records:
        img = rec["image"]
        if img["id"] in images:
            raise CocoError(f"two frame records have image id {img['id']}")
        images[img["id"]] = img
        for a in rec.get("annotations", []):
            if a["id"] in anns:
                raise CocoError(f"two annotations have id {a['id']}")
            anns[a["id"]] = a
    return {
        "info": info,
        "licenses": [],
        "images": [images[k] for k in sorted(images)],
        "annotations": [anns[k] for k in sorted(anns)],
        "categories": sorted(categories, key=lambda c: c["id"]),
    }


def write_json_atomic(path: str, obj: Any, indent: int | None = None) -> None:
    """JSON as the engine has always written its records and ``annotations.json``: compact (no spaces, no final
    newline) when ``indent`` is None, no final newline either way, non-finite floats refused. Written through
    :mod:`shared.atomic` (fsync, then rename), so readers see the old file or the complete new one. The bytes
    matter: a merged dataset must equal a one-process run byte for byte."""
    separators = (",", ":") if indent is None else None
    with atomic_write(path, fsync=True) as f:
        json.dump(obj, f, indent=indent, allow_nan=False, separators=separators)


# ---------------------------------------------------------------------------------------------------------------
# Reading with checks

ProblemKind = Literal[
    "not_json",
    "missing_key",
    "duplicate_image_id",
    "duplicate_annotation_id",
    "duplicate_category_id",
    "unknown_image",
    "unknown_category",
    "bad_bbox",
    "bbox_outside_image",
    "bad_keypoints",
    "missing_file",
    "bad_file",
]


@dataclass(frozen=True)
class Problem:
    kind: str
    image_id: int | None
    annotation_id: int | None
    message: str


@dataclass
class LoadedCoco:
    """A checked COCO dataset. ``data`` holds only the usable images and annotations; ``skipped`` lists
    everything that was removed and why (empty when loading with ``on_problem="raise"``)."""

    data: dict[str, Any]
    path: str
    images_root: str | None
    skipped: list[Problem] = field(default_factory=list)

    def skip_summary(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.skipped))


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_BBOX_TOL = 1.0  # px: boxes may reach this far past the image edge (rounding in other tools)


def _check_image_file(path: str) -> str | None:
    """Cheap sanity check (full decoding is the trainer's job): exists, not empty, PNG/JPEG not truncated."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return None if os.path.exists(path) else "missing"
    if size == 0:
        return "empty file"
    with open(path, "rb") as f:
        head = f.read(8)
        if head.startswith(_PNG_MAGIC):
            f.seek(max(0, size - 12))
            if b"IEND" not in f.read(12):
                return "truncated PNG (no IEND chunk at the end)"
        elif head.startswith(_JPEG_MAGIC):
            f.seek(max(0, size - 64))
            if b"\xff\xd9" not in f.read(64):
                return "truncated JPEG (no end-of-image marker)"
        elif path.lower().endswith((".png", ".jpg", ".jpeg")):
            return f"not a {os.path.splitext(path)[1]} file (wrong magic bytes {head[:4]!r})"
    return None


def _format_problems(path: str, problems: list[Problem]) -> str:
    counts = Counter(p.kind for p in problems)
    lines = [f"{path}: {len(problems)} problem(s): " + ", ".join(f"{k}: {n}" for k, n in sorted(counts.items()))]
    lines += [f"  - {p.kind}: {p.message}" for p in problems[:10]]
    if len(problems) > 10:
        lines.append(f"  ... and {len(problems) - 10} more")
    return "\n".join(lines)


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _category_keypoints_problem(c: dict[str, Any]) -> str | None:
    """Why a category's ``keypoints`` (names) and ``skeleton`` (1-based index pairs) are unusable, or None."""
    names = c["keypoints"]
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        return f"keypoints must be a non-empty list of names, got {str(names)[:60]}"
    if len(set(names)) != len(names):
        return "keypoint names repeat"
    for pair in c.get("skeleton", []) or []:
        ok = isinstance(pair, list) and len(pair) == 2
        if not ok or not all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= len(names) for k in pair):
            return f"skeleton pair {pair!r} is not two keypoint indices in 1..{len(names)} (COCO's are 1-based)"
    return None


def _annotation_keypoints_problem(a: dict[str, Any], k: int | None) -> str | None:
    """Why an annotation's ``keypoints`` do not fit its category (``k`` keypoints, None: not a keypoint
    category), or None: ``3 * k`` finite numbers, every third a visibility 0, 1 or 2, and ``num_keypoints``
    (when given) the count of v > 0."""
    flat = a.get("keypoints")
    if k is None:
        return None if flat is None else f"has keypoints but category {a['category_id']} defines none"
    if flat is None:
        return f"category {a['category_id']} has {k} keypoints but the annotation has none"
    if not isinstance(flat, list) or len(flat) != 3 * k:
        n = len(flat) if isinstance(flat, list) else type(flat).__name__
        return f"keypoints must be a list of 3 * {k} numbers (x, y, v per keypoint), got {n}"
    if not all(_finite_number(v) for v in flat):
        return "keypoints hold a value that is not a finite number"
    vis = flat[2::3]
    if any(v not in (0, 1, 2) for v in vis):
        return f"keypoint visibilities must be 0, 1 or 2, got {sorted({v for v in vis if v not in (0, 1, 2)})[:3]}"
    n = a.get("num_keypoints")
    if n is not None and n != sum(1 for v in vis if v > 0):
        return f"num_keypoints is {n!r} but {sum(1 for v in vis if v > 0)} keypoints have v > 0"
    return None


def load_coco(
    path: str,
    images_root: str | None = None,
    on_problem: Literal["raise", "skip"] = "raise",
    check_files: bool = True,
) -> LoadedCoco:
    """Read a COCO file and check it before anyone trains on it.

    ``images_root`` defaults to ``<folder of path>/images`` when that exists, else the file's folder. With
    ``on_problem="raise"`` any problem raises :class:`CocoError` listing up to 10 of them with counts per kind.
    With ``"skip"`` bad images (with their annotations) and bad annotations are removed and returned in
    ``skipped``: never silently. Problems that make the whole file unusable (not JSON, missing top-level keys)
    always raise. Category id 0 is an ordinary category.

    Problem kinds: ``not_json``, ``missing_key`` (top level, or an image/annotation without id or size),
    ``duplicate_image_id``, ``duplicate_annotation_id``, ``duplicate_category_id``, ``unknown_image``,
    ``unknown_category``, ``bad_bbox`` (not 4 finite numbers, or zero/negative width or height),
    ``bbox_outside_image`` (beyond 1 px), ``bad_keypoints`` (a category's ``keypoints``/``skeleton`` malformed:
    the category is left out; or an annotation's ``keypoints`` not ``3 * K`` numbers of its category with
    visibilities 0/1/2, a ``num_keypoints`` that disagrees, keypoints missing in a keypoint category),
    ``missing_file``, ``bad_file`` (empty, truncated PNG/JPEG, wrong magic bytes, or a file name escaping
    ``images_root``), and with ``"skip"`` also ``dropped_with_image`` (a good annotation removed because its image
    was removed).
    """
    if on_problem not in ("raise", "skip"):
        raise ValueError(f"on_problem must be 'raise' or 'skip', got {on_problem!r}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise CocoError(f"{path}: file does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CocoError(f"{path}: not valid JSON ({e})", [Problem("not_json", None, None, str(e))]) from None
    if not isinstance(data, dict):
        raise CocoError(f"{path}: a COCO file is a JSON object, got {type(data).__name__}")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        probs = [Problem("missing_key", None, None, f"top-level {k!r} missing or not a list") for k in missing]
        raise CocoError(_format_problems(path, probs), probs)
    if images_root is None:
        folder = os.path.dirname(os.path.abspath(path))
        images_root = os.path.join(folder, "images") if os.path.isdir(os.path.join(folder, "images")) else folder

    problems: list[Problem] = []
    bad_images: set[int] = set()
    bad_anns: set[int] = set()

    categories, cat_ids = [], set()
    cat_keypoints: dict[int, int] = {}  # category id -> number of keypoints, for keypoint categories
    for c in data["categories"]:
        cid = c.get("id") if isinstance(c, dict) else None
        if isinstance(cid, bool) or not isinstance(cid, int) or cid in cat_ids:
            problems.append(Problem("duplicate_category_id", None, None, f"category {c!r}: missing or repeated id"))
            continue
        if "keypoints" in c:
            why = _category_keypoints_problem(c)
            if why:  # left out: its annotations then show up as unknown_category
                problems.append(Problem("bad_keypoints", None, None, f"category {cid}: {why}"))
                continue
            cat_keypoints[cid] = len(c["keypoints"])
        cat_ids.add(cid)
        categories.append(c)

    images: dict[int, dict] = {}
    image_order: list[int] = []
    for img in data["images"]:
        iid = img.get("id") if isinstance(img, dict) else None
        if isinstance(iid, bool) or not isinstance(iid, int):
            problems.append(Problem("missing_key", None, None, f"image without an integer id: {str(img)[:80]}"))
            continue
        if iid in images:
            problems.append(Problem("duplicate_image_id", iid, None, f"image id {iid} appears more than once"))
            bad_images.add(iid)
            continue
        bad = [k for k in ("file_name", "width", "height") if k not in img]
        if bad:
            problems.append(Problem("missing_key", iid, None, f"image {iid} lacks {', '.join(bad)}"))
            bad_images.add(iid)
        images[iid] = img
        image_order.append(iid)
        if check_files and not bad:
            try:
                fpath = safe_join(images_root, str(img["file_name"]))
            except ValueError as e:
                problems.append(Problem("bad_file", iid, None, str(e)))
                bad_images.add(iid)
                continue
            why = _check_image_file(fpath)
            if why == "missing":
                problems.append(Problem("missing_file", iid, None, f"image {iid}: {fpath} does not exist"))
                bad_images.add(iid)
            elif why:
                problems.append(Problem("bad_file", iid, None, f"image {iid}: {fpath}: {why}"))
                bad_images.add(iid)

    anns: list[dict] = []
    ann_ids: set[int] = set()
    for a in data["annotations"]:
        if not isinstance(a, dict) or isinstance(a.get("id"), bool) or not isinstance(a.get("id"), int):
            problems.append(Problem("missing_key", None, None, f"annotation without an integer id: {str(a)[:80]}"))
            continue
        aid, iid = a["id"], a.get("image_id")
        if aid in ann_ids:
            problems.append(Problem("duplicate_annotation_id", iid, aid, f"annotation id {aid} appears twice"))
            bad_anns.add(aid)
            continue
        ann_ids.add(aid)
        anns.append(a)
        if iid not in images:
            problems.append(Problem("unknown_image", iid, aid, f"annotation {aid} refers to unknown image {iid}"))
            bad_anns.add(aid)
            continue
        if a.get("category_id") not in cat_ids:
            msg = f"annotation {aid} has unknown category id {a.get('category_id')!r}"
            problems.append(Problem("unknown_category", iid, aid, msg))
            bad_anns.add(aid)
            continue
        why = _annotation_keypoints_problem(a, cat_keypoints.get(a["category_id"]))
        if why:
            problems.append(Problem("bad_keypoints", iid, aid, f"annotation {aid}: {why}"))
            bad_anns.add(aid)
            continue
        box = a.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(_finite_number(v) for v in box)):
            problems.append(Problem("bad_bbox", iid, aid, f"annotation {aid}: bbox {box!r} is not 4 numbers"))
            bad_anns.add(aid)
            continue
        x, y, bw, bh = box
        if bw <= 0 or bh <= 0:
            problems.append(Problem("bad_bbox", iid, aid, f"annotation {aid}: bbox {box} has zero/negative size"))
            bad_anns.add(aid)
            continue
        img = images[iid]
        W, H = img.get("width"), img.get("height")
        if _finite_number(W) and _finite_number(H):
            if x < -_BBOX_TOL or y < -_BBOX_TOL or x + bw > W + _BBOX_TOL or y + bh > H + _BBOX_TOL:
                msg = f"annotation {aid}: bbox {box} lies outside image {iid} ({W}x{H})"
                problems.append(Problem("bbox_outside_image", iid, aid, msg))
                bad_anns.add(aid)

    if problems and on_problem == "raise":
        raise CocoError(_format_problems(path, problems), problems)
    clean = dict(data)
    clean["categories"] = categories
    clean["images"] = [images[i] for i in image_order if i not in bad_images]
    kept = {i for i in image_order if i not in bad_images}
    clean["annotations"] = [a for a in anns if a["id"] not in bad_anns and a.get("image_id") in kept]
    # Annotations of removed images are skipped too: say so, one entry per annotation.
    for a in anns:
        if a["id"] not in bad_anns and a.get("image_id") in bad_images:
            msg = f"annotation {a['id']} dropped with its image {a['image_id']}"
            problems.append(Problem("dropped_with_image", a.get("image_id"), a["id"], msg))
    return LoadedCoco(clean, path, images_root, problems)
