"""A small OpenEXR reader in numpy for the files Blender writes for render passes.

Reads scanline images, single-part or multi-part (Blender 4.x writes multilayer EXRs as one part with channels
named ``ViewLayer.Depth.Z``; Blender 5.x writes one part per pass), with HALF, FLOAT and UINT channels, and the
codecs NONE, RLE, ZIPS and ZIP (the last two through the standard library's zlib; ZIP is Blender's default).
Other codecs (PIZ, PXR24, B44, DWA...), tiled and deep files raise :class:`ExrError` naming what is missing:
render with ``exr_codec`` ``NONE`` or ``ZIP`` to use this reader.

``read_exr(path)`` returns ``{channel name: float32 H x W}`` over the data window, row 0 at the top (EXR's
scanline order, the same as an image array; note that ``bpy`` image pixels start at the bottom row). In
multi-part files a channel keeps its own name when that name is unique, and is prefixed by its part name
(``"<part>.<channel>"``) when the part name is not already part of it and two parts share a channel name.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import BlendsetError

__all__ = ["ExrError", "read_exr", "exr_header"]

_MAGIC = 20000630
_COMPRESSION = {
    0: "NONE",
    1: "RLE",
    2: "ZIPS",
    3: "ZIP",
    4: "PIZ",
    5: "PXR24",
    6: "B44",
    7: "B44A",
    8: "DWAA",
    9: "DWAB",
    10: "HTJ2K256",
    11: "HTJ2K32",
}
_LINES_PER_BLOCK = {"NONE": 1, "RLE": 1, "ZIPS": 1, "ZIP": 16}
_PIXEL = {0: ("UINT", np.dtype("<u4")), 1: ("HALF", np.dtype("<f2")), 2: ("FLOAT", np.dtype("<f4"))}


class ExrError(BlendsetError, ValueError):
    """The file is not an EXR this reader handles; the message says why (e.g. the compression it uses)."""


@dataclass
class _Channel:
    name: str
    dtype: np.dtype
    x_sampling: int
    y_sampling: int


@dataclass
class _Part:
    name: str | None
    channels: list[_Channel]
    compression: str
    window: tuple[int, int, int, int]  # xmin, ymin, xmax, ymax
    kind: str
    chunk_count: int | None


class _Reader:
    def __init__(self, data: bytes, path: str):
        self.data, self.pos, self.path = data, 0, path

    def need(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise ExrError(f"{self.path}: truncated EXR (needs {n} bytes at offset {self.pos})")

    def cstr(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ExrError(f"{self.path}: truncated EXR header")
        s = self.data[self.pos : end].decode("latin-1")
        self.pos = end + 1
        return s

    def unpack(self, fmt: str) -> tuple:
        n = struct.calcsize(fmt)
        self.need(n)
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += n
        return out


def _parse_channels(raw: bytes, path: str) -> list[_Channel]:
    r = _Reader(raw, path)
    out = []
    while r.pos < len(raw) and raw[r.pos] != 0:
        name = r.cstr()
        ptype, _linear, xs, ys = r.unpack("<iB3xii")
        if ptype not in _PIXEL:
            raise ExrError(f"{path}: channel {name!r} has unknown pixel type {ptype}")
        out.append(_Channel(name, _PIXEL[ptype][1], xs, ys))
    return out


def _parse_header(r: _Reader) -> _Part | None:
    attrs: dict[str, tuple[str, bytes]] = {}
    while True:
        r.need(1)
        if r.data[r.pos] == 0:
            r.pos += 1
            break
        name, typ = r.cstr(), r.cstr()
        (size,) = r.unpack("<i")
        r.need(size)
        attrs[name] = (typ, r.data[r.pos : r.pos + size])
        r.pos += size
    if not attrs:
        return None
    for key in ("channels", "compression", "dataWindow"):
        if key not in attrs:
            raise ExrError(f"{r.path}: header lacks the required attribute {key!r}")
    comp_code = attrs["compression"][1][0]
    compression = _COMPRESSION.get(comp_code, f"unknown ({comp_code})")
    window = struct.unpack("<4i", attrs["dataWindow"][1][:16])
    name = attrs["name"][1].decode("latin-1") if "name" in attrs else None
    kind = attrs["type"][1].decode("latin-1") if "type" in attrs else "scanlineimage"
    chunks = struct.unpack("<i", attrs["chunkCount"][1][:4])[0] if "chunkCount" in attrs else None
    return _Part(name, _parse_channels(attrs["channels"][1], r.path), compression, window, kind, chunks)


def exr_header(path: str) -> list[dict]:
    """The parts of an EXR as plain dicts (name, type, compression, data window, channel names and types)."""
    with open(path, "rb") as f:
        data = f.read()
    parts, _, _ = _parse(data, path)
    return [
        {
            "name": p.name,
            "type": p.kind,
            "compression": p.compression,
            "data_window": list(p.window),
            "channels": {c.name: {"<f2": "HALF", "<f4": "FLOAT", "<u4": "UINT"}[c.dtype.str] for c in p.channels},
        }
        for p in parts
    ]


def _parse(data: bytes, path: str) -> tuple[list[_Part], _Reader, bool]:
    r = _Reader(data, path)
    magic, version = r.unpack("<ii")
    if magic != _MAGIC:
        raise ExrError(f"{path}: not an OpenEXR file (magic number {magic:#x})")
    flags = version & ~0xFF
    if version & 0x200:
        raise ExrError(f"{path}: tiled EXR files are not supported (render scanline EXRs)")
    if version & 0x800:
        raise ExrError(f"{path}: deep-data EXR files are not supported")
    multipart = bool(flags & 0x1000)
    parts: list[_Part] = []
    while True:
        part = _parse_header(r)
        if part is None:
            if not multipart and not parts:
                raise ExrError(f"{path}: empty EXR header")
            break
        parts.append(part)
        if not multipart:
            break
    return parts, r, multipart


def _unpredict(raw: bytes) -> bytes:
    """Undo the ZIP/RLE pre-processing: byte deltas (a running sum modulo 256), then the two interleaved
    halves."""
    d = np.frombuffer(raw, dtype=np.uint8).copy()
    d[1:] -= np.uint8(128)  # wraps modulo 256, as the format intends
    t = np.cumsum(d, dtype=np.uint8)
    half = (t.size + 1) // 2
    out = np.empty_like(t)
    out[0::2] = t[:half]
    out[1::2] = t[half:]
    return out.tobytes()


def _rle_decode(raw: bytes, expected: int, path: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw):
        n = struct.unpack_from("<b", raw, i)[0]
        i += 1
        if n < 0:
            out += raw[i : i - n]
            i -= n
        else:
            out += raw[i : i + 1] * (n + 1)
            i += 1
    if len(out) != expected:
        raise ExrError(f"{path}: corrupt RLE block ({len(out)} bytes, expected {expected})")
    return bytes(out)


def _decompress(block: bytes, compression: str, expected: int, path: str) -> bytes:
    if len(block) == expected and compression != "NONE":
        return block  # the writer stores a block raw when compressing does not make it smaller
    if compression == "NONE":
        return block
    if compression in ("ZIP", "ZIPS"):
        try:
            return _unpredict(zlib.decompress(block))
        except zlib.error as e:
            raise ExrError(f"{path}: corrupt {compression} block ({e})") from None
    if compression == "RLE":
        return _unpredict(_rle_decode(block, expected, path))
    raise ExrError(
        f"{path}: EXR compression {compression} is not supported by this reader (NONE, RLE, ZIPS and ZIP are); "
        "set the render's exr_codec to 'NONE' or 'ZIP'"
    )


def _read_uncompressed_fast(
    data: bytes, part: _Part, offsets: tuple, multipart: bool, line_bytes: int
) -> list[np.ndarray] | None:
    """All scanlines of an uncompressed part with one structured-array view, when its chunks are stored back to
    back in order (what Blender writes). Returns None to fall back to reading chunk by chunk."""
    xmin, ymin, xmax, ymax = part.window
    w, h = xmax - xmin + 1, ymax - ymin + 1
    if part.compression != "NONE" or len(offsets) != h or h == 0:
        return None
    head = 12 if multipart else 8
    stride = head + line_bytes
    offs = np.asarray(offsets, dtype=np.int64)
    if np.any(np.diff(offs) != stride) or offs[0] + stride * h > len(data):
        return None
    fields: list[tuple] = [("part", "<i4")] if multipart else []
    fields += [("y", "<i4"), ("size", "<i4")]
    fields += [(f"c{i}", c.dtype, (w,)) for i, c in enumerate(part.channels)]
    rec = np.frombuffer(data, dtype=np.dtype(fields), count=h, offset=int(offs[0]))
    if np.any(rec["size"] != line_bytes) or not np.array_equal(np.sort(rec["y"]), np.arange(ymin, ymax + 1)):
        return None
    rows = rec["y"] - ymin
    ordered = bool(np.all(np.diff(rows) == 1))
    out = []
    for i in range(len(part.channels)):
        if ordered:
            out.append(rec[f"c{i}"].astype(np.float32))  # one strided copy per channel
        else:
            arr = np.empty((h, w), dtype=np.float32)
            arr[rows] = rec[f"c{i}"]
            out.append(arr)
    return out


def read_exr(path: str) -> dict[str, np.ndarray]:
    """Every channel of every part of a scanline EXR as float32 H x W arrays (row 0 at the top)."""
    with open(path, "rb") as f:
        data = f.read()
    parts, r, multipart = _parse(data, path)
    for p in parts:
        if p.kind != "scanlineimage":
            raise ExrError(f"{path}: part {p.name!r} has type {p.kind!r}; only scanline images are supported")
        if p.compression not in _LINES_PER_BLOCK:
            raise ExrError(
                f"{path}: EXR compression {p.compression} is not supported by this reader (NONE, RLE, ZIPS and "
                "ZIP are); set the render's exr_codec to 'NONE' or 'ZIP'"
            )
        for c in p.channels:
            if c.x_sampling != 1 or c.y_sampling != 1:
                raise ExrError(f"{path}: channel {c.name!r} is subsampled; not supported")
    tables = []
    for p in parts:
        xmin, ymin, xmax, ymax = p.window
        lpb = _LINES_PER_BLOCK[p.compression]
        n = p.chunk_count if p.chunk_count is not None else -(-(ymax - ymin + 1) // lpb)
        tables.append(r.unpack(f"<{n}Q"))
    names = [c.name for p in parts for c in p.channels]
    out: dict[str, np.ndarray] = {}
    for index, (p, offsets) in enumerate(zip(parts, tables, strict=True)):
        xmin, ymin, xmax, ymax = p.window
        w, h = xmax - xmin + 1, ymax - ymin + 1
        lpb = _LINES_PER_BLOCK[p.compression]
        chans = p.channels
        line_bytes = sum(c.dtype.itemsize for c in chans) * w
        arrays = _read_uncompressed_fast(data, p, offsets, multipart, line_bytes)
        if arrays is not None:
            offsets = ()  # done in one go
        else:
            arrays = [np.zeros((h, w), dtype=np.float32) for _ in chans]
        for off in offsets:
            r.pos = off
            if multipart:
                (part_no,) = r.unpack("<i")
                if part_no != index:
                    raise ExrError(f"{path}: chunk at {off} belongs to part {part_no}, expected {index}")
            y, size = r.unpack("<ii")
            r.need(size)
            lines = min(lpb, ymax + 1 - y)
            if lines <= 0 or y < ymin:
                raise ExrError(f"{path}: chunk at {off} has scanline {y} outside the data window")
            block = _decompress(data[r.pos : r.pos + size], p.compression, lines * line_bytes, path)
            if len(block) != lines * line_bytes:
                raise ExrError(f"{path}: chunk for scanline {y} has {len(block)} bytes, expected {lines * line_bytes}")
            pos = 0
            for line in range(lines):
                row = y - ymin + line
                for c, arr in zip(chans, arrays, strict=True):
                    nbytes = c.dtype.itemsize * w
                    arr[row] = np.frombuffer(block, dtype=c.dtype, count=w, offset=pos)
                    pos += nbytes
        for c, arr in zip(chans, arrays, strict=True):
            key = c.name
            if multipart and p.name and names.count(c.name) > 1 and not c.name.startswith(p.name + "."):
                key = f"{p.name}.{c.name}"
            out[key] = arr
    return out
