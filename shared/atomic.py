"""The one way Blendset writes a file: to a temp file beside it, then ``os.replace`` onto the final name.

Readers, resumed runs and uploads then see either the old file or the complete new one, never half of it, and
an interrupted writer leaves at most a temp file behind. Every temp file is named ``.tmp-<token>-<name>``:
it keeps the final name's extension (PIL, matplotlib and numpy choose the format from it) and
:func:`is_temp` recognises it, so listings and uploads skip in-flight files.

Standard library only: Blender's Python imports this too.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["TEMP_PREFIX", "atomic_path", "atomic_write", "is_temp", "write_bytes", "write_json", "write_text"]

TEMP_PREFIX = ".tmp-"


def _read_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it briefly; done once, at import
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()


def is_temp(name: str) -> bool:
    """True for the base name of an atomic writer's temp file (or a write probe of the engine)."""
    return name.startswith((TEMP_PREFIX, ".write-test-"))


def _temp_name(path: str) -> str:
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(4)}-{name}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[str]:
    """Yield a temp path beside ``path`` for a writer that wants a file name (``torch.save``, ``fig.savefig``,
    ``Image.save``); on success it becomes ``path``, on any exception it is removed. ``fsync`` makes the new
    content durable before the rename (for records that mark work as done)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = _temp_name(path)
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise FileNotFoundError(f"{path}: the writer created no file at {tmp}")
        os.chmod(tmp, _FILE_MODE)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8", newline: str | None = None,
    fsync: bool = False,
) -> Iterator[IO[Any]]:  # fmt: skip
    """``with atomic_write(path) as f: f.write(...)``: an open file (text ``"w"`` or binary ``"wb"``) whose
    content replaces ``path`` when the block ends without an exception."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', not {mode!r}")
    with atomic_path(path, fsync=fsync) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()


def write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> None:
    with atomic_write(path, "wb", fsync=fsync) as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str, *, fsync: bool = False) -> None:
    with atomic_write(path, fsync=fsync) as f:
        f.write(text)


def write_json(
    path: str | os.PathLike, value: Any, *, indent: int | None = 2, sort_keys: bool = False, fsync: bool = False,
    default: Any = None, allow_nan: bool = False,
) -> None:  # fmt: skip
    """JSON that readers see whole or not at all. Non-finite floats are refused unless ``allow_nan`` (they are
    not JSON; Python's reader accepts them, most others do not)."""
    separators = (",", ":") if indent is None else None
    text = json.dumps(value, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan, separators=separators,
                      default=default)  # fmt: skip
    write_text(path, text + ("\n" if indent is not None else ""), fsync=fsync)
