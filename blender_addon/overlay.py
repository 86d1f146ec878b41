"""The preview picture: RGB with each instance's mask tinted in its class colour, its box, its class name, and its
keypoints: visible ones (v = 2) as filled squares in KEYPOINT_VISIBLE, hidden ones (v = 1) as hollow squares in
KEYPOINT_HIDDEN, the skeleton as lines in the class colour between labelled keypoints.

Pure numpy (no bpy), so it is tested on its own. Arrays are top-down (row 0 is the top of the image), as in
COCO; the caller flips Blender's bottom-up pixel buffers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# A 3x5 pixel font: each glyph is five rows of three bits, enough for class names at preview sizes.
_GLYPHS = {
    "A": "010 101 111 101 101",
    "B": "110 101 110 101 110",
    "C": "011 100 100 100 011",
    "D": "110 101 101 101 110",
    "E": "111 100 110 100 111",
    "F": "111 100 110 100 100",
    "G": "011 100 101 101 011",
    "H": "101 101 111 101 101",
    "I": "111 010 010 010 111",
    "J": "001 001 001 101 010",
    "K": "101 101 110 101 101",
    "L": "100 100 100 100 111",
    "M": "101 111 111 101 101",
    "N": "110 101 101 101 101",
    "O": "010 101 101 101 010",
    "P": "110 101 110 100 100",
    "Q": "010 101 101 110 011",
    "R": "110 101 110 101 101",
    "S": "011 100 010 001 110",
    "T": "111 010 010 010 010",
    "U": "101 101 101 101 111",
    "V": "101 101 101 101 010",
    "W": "101 101 111 111 101",
    "X": "101 101 010 101 101",
    "Y": "101 101 010 010 010",
    "Z": "111 001 010 100 111",
    "0": "111 101 101 101 111",
    "1": "010 110 010 010 111",
    "2": "110 001 010 100 111",
    "3": "110 001 010 001 110",
    "4": "101 101 111 001 001",
    "5": "111 100 110 001 110",
    "6": "011 100 111 101 111",
    "7": "111 001 010 010 010",
    "8": "111 101 111 101 111",
    "9": "111 101 111 001 110",
    "_": "000 000 000 000 111",
    "-": "000 000 111 000 000",
    ".": "000 000 000 000 010",
    ":": "000 010 000 010 000",
    " ": "000 000 000 000 000",
    "(": "001 010 010 010 001",
    ")": "100 010 010 010 100",
    "?": "110 001 010 000 010",
}
_FONT = {ch: np.array([[c == "1" for c in row] for row in bits.split()], dtype=bool) for ch, bits in _GLYPHS.items()}

TINT = 0.45  # how much of the class colour covers a mask pixel
PALETTE = np.array(
    [
        [0.90, 0.30, 0.10],
        [0.15, 0.55, 0.95],
        [0.20, 0.80, 0.30],
        [0.95, 0.80, 0.10],
        [0.70, 0.30, 0.90],
        [0.10, 0.85, 0.85],
        [0.95, 0.45, 0.65],
        [0.55, 0.55, 0.55],
    ],
    dtype=np.float32,
)


KEYPOINT_VISIBLE = np.array([0.2, 1.0, 0.3], dtype=np.float32)
KEYPOINT_HIDDEN = np.array([1.0, 0.85, 0.1], dtype=np.float32)


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """Boolean pixels of ``text`` (upper-cased; unknown characters as '?'), one blank column between glyphs."""
    glyphs = [_FONT.get(ch, _FONT["?"]) for ch in text.upper()] or [_FONT[" "]]
    gap = np.zeros((5, 1), dtype=bool)
    row = np.concatenate([part for g in glyphs for part in (g, gap)][:-1], axis=1)
    return np.kron(row, np.ones((scale, scale), dtype=bool)).astype(bool)


def _put_text(img: np.ndarray, text: str, x: int, y: int, color: np.ndarray, scale: int) -> None:
    """Write ``text`` with its top-left at (x, y) on a dark plate, clipped to the image."""
    glyphs = text_mask(text, scale)
    pad = scale
    h, w = glyphs.shape[0] + 2 * pad, glyphs.shape[1] + 2 * pad
    H, W = img.shape[:2]
    y = min(max(y, 0), max(H - h, 0))
    x = min(max(x, 0), max(W - w, 0))
    plate = np.zeros((h, w), dtype=bool)
    plate[pad : pad + glyphs.shape[0], pad : pad + glyphs.shape[1]] = glyphs
    h, w = min(h, H - y), min(w, W - x)
    region = img[y : y + h, x : x + w, :3]
    region *= 0.25
    region[plate[:h, :w]] = color


def _draw_box(img: np.ndarray, bbox: list[float], color: np.ndarray, thickness: int) -> None:
    """COCO [x, y, w, h] box outline, inside the box's pixels, clipped to the image."""
    H, W = img.shape[:2]
    x0, y0 = int(np.floor(bbox[0])), int(np.floor(bbox[1]))
    x1, y1 = int(np.ceil(bbox[0] + bbox[2])) - 1, int(np.ceil(bbox[1] + bbox[3])) - 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W - 1), min(y1, H - 1)
    if x1 < x0 or y1 < y0:
        return
    t = thickness
    img[y0 : min(y0 + t, y1 + 1), x0 : x1 + 1, :3] = color
    img[max(y1 - t + 1, y0) : y1 + 1, x0 : x1 + 1, :3] = color
    img[y0 : y1 + 1, x0 : min(x0 + t, x1 + 1), :3] = color
    img[y0 : y1 + 1, max(x1 - t + 1, x0) : x1 + 1, :3] = color


def _draw_line(img: np.ndarray, p: tuple[float, float], q: tuple[float, float], color: np.ndarray) -> None:
    """A one-pixel line between two points in COCO continuous coordinates, clipped to the image."""
    H, W = img.shape[:2]
    n = int(np.ceil(2 * max(abs(q[0] - p[0]), abs(q[1] - p[1])))) + 1  # half-pixel steps leave no gaps
    t = np.linspace(0.0, 1.0, n)
    xs = np.floor(p[0] + t * (q[0] - p[0])).astype(int)
    ys = np.floor(p[1] + t * (q[1] - p[1])).astype(int)
    ok = (xs >= 0) & (xs < W) & (ys >= 0) & (ys < H)
    img[ys[ok], xs[ok], :3] = color


def _draw_marker(img: np.ndarray, x: float, y: float, radius: int, filled: bool, color: np.ndarray) -> None:
    """A square of side 2 * radius + 1 around the pixel holding (x, y): filled, or only its outline."""
    H, W = img.shape[:2]
    cx, cy = int(np.floor(x)), int(np.floor(y))
    y0, y1, x0, x1 = cy - radius, cy + radius, cx - radius, cx + radius
    ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
    keep = (xs >= 0) & (xs < W) & (ys >= 0) & (ys < H)
    if not filled:
        keep &= (xs == x0) | (xs == x1) | (ys == y0) | (ys == y1)
    img[ys[keep], xs[keep], :3] = color


def _draw_keypoints(img: np.ndarray, ann: dict[str, Any], skeleton: list, color: np.ndarray, scale: int) -> None:
    pts = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
    for a, b in skeleton:  # 1-based, as in COCO
        if 1 <= a <= len(pts) and 1 <= b <= len(pts) and pts[a - 1, 2] > 0 and pts[b - 1, 2] > 0:
            _draw_line(img, tuple(pts[a - 1, :2]), tuple(pts[b - 1, :2]), color)
    for x, y, v in pts:
        if v > 0:
            visible = v >= 2
            _draw_marker(img, x, y, scale + 1, visible, KEYPOINT_VISIBLE if visible else KEYPOINT_HIDDEN)


def class_colors(
    categories: list[dict[str, Any]], configured: dict[str, tuple[float, float, float]]
) -> dict[int, np.ndarray]:
    """Colour per category id: the config's class colour, else a fixed palette entry."""
    out = {}
    for i, cat in enumerate(sorted(categories, key=lambda c: c["id"])):
        rgb = configured.get(cat["name"])
        out[cat["id"]] = np.asarray(rgb, dtype=np.float32) if rgb is not None else PALETTE[i % len(PALETTE)]
    return out


def compose(
    rgb: np.ndarray,
    instance: np.ndarray,
    coco: dict[str, Any],
    configured_colors: dict[str, tuple[float, float, float]] | None = None,
) -> np.ndarray:
    """The preview image (H, W, 4) float32 in 0..1 from an RGB(A) float image, the uint16 instance mask and
    the frame's COCO dict (categories, annotations with ``bbox`` and ``attributes.instance_id``, and for
    classes with keypoints ``keypoints`` plus the category's ``skeleton``)."""
    H, W = instance.shape
    out = np.ones((H, W, 4), dtype=np.float32)
    out[..., :3] = rgb[..., :3]
    colors = class_colors(coco.get("categories", []), configured_colors or {})
    names = {c["id"]: c["name"] for c in coco.get("categories", [])}
    scale = max(1, min(H, W) // 120)
    anns = coco.get("annotations", [])
    for ann in anns:  # tint first, so boxes and names stay crisp on top
        inst = ann.get("attributes", {}).get("instance_id")
        if inst is None:
            continue
        sel = instance == inst
        color = colors.get(ann["category_id"], PALETTE[0])
        out[sel, :3] = out[sel, :3] * (1.0 - TINT) + color * TINT
    for ann in anns:
        color = colors.get(ann["category_id"], PALETTE[0])
        _draw_box(out, ann["bbox"], color, scale)
        x, y = int(ann["bbox"][0]), int(ann["bbox"][1]) - 7 * scale
        if y < 0:
            y = int(ann["bbox"][1]) + scale
        _put_text(out, names.get(ann["category_id"], str(ann["category_id"])), x, y, color, scale)
    skeletons = {c["id"]: c.get("skeleton") or [] for c in coco.get("categories", [])}
    for ann in anns:  # last: keypoints stay visible over boxes and names
        if ann.get("keypoints"):
            color = colors.get(ann["category_id"], PALETTE[0])
            _draw_keypoints(out, ann, skeletons.get(ann["category_id"], []), color, scale)
    return np.clip(out, 0.0, 1.0)
