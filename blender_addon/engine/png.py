"""A small PNG encoder (numpy + zlib) for the 16-bit masks and depth maps.

Blender's Python has no imaging library, and ``save_render`` cannot write an arbitrary array. Filter type 0
and a fixed zlib level make the bytes depend only on the pixels, which keeps same-seed runs byte-identical.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(array: np.ndarray, level: int = 3) -> bytes:
    """PNG bytes for an HxW (grey) or HxWx3 / HxWx4 array of uint8 or uint16."""
    a = np.asarray(array)
    if a.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG needs uint8 or uint16 pixels, got {a.dtype}")
    if a.ndim == 2:
        color_type = 0
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        color_type = 2 if a.shape[2] == 3 else 6
    else:
        raise ValueError(f"PNG needs HxW, HxWx3 or HxWx4 pixels, got shape {a.shape}")
    h, w = a.shape[:2]
    depth = 16 if a.dtype == np.uint16 else 8
    rows = np.ascontiguousarray(a.astype(">u2") if depth == 16 else a).reshape(h, -1).view(np.uint8)
    raw = np.zeros((h, rows.shape[1] + 1), dtype=np.uint8)  # leading 0 per row: filter "none"
    raw[:, 1:] = rows
    header = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
        + (_chunk(b"IEND", b""))
    )


_VOLATILE = {b"tEXt", b"zTXt", b"iTXt", b"tIME", b"eXIf"}


def strip_png_metadata(path: str) -> None:
    """Drop text/time/EXIF chunks from a PNG Blender wrote (render date, render time, ...), so the same pixels
    give the same bytes. Pixel chunks are copied untouched."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return
    out = [data[:8]]
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if kind not in _VOLATILE:
            out.append(data[pos:end])
        pos = end
    with open(path, "wb") as f:
        f.write(b"".join(out))
