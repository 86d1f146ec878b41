"""Dataset folders on fsspec URLs: ``publish`` a finished shard, ``localize`` one for merging.

Object stores have no rename, so a folder cannot appear atomically. Instead ``publish`` uploads every file
first and a completion marker (:data:`MARKER`, listing each file and its size) last. A reader that finds no
marker, or a marker whose files are missing or have the wrong size, knows the upload is partial and says so
with :class:`IncompleteUpload` instead of merging half a shard. Re-publishing first deletes the old marker, so a
crash in the middle of a re-upload is detected the same way.

Plain local paths (no ``scheme://``) pass through unchanged, so callers need not care where data lives.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time

from shared.atomic import is_temp
from shared.errors import BlendsetError

MARKER = "_BLENDSET_COMPLETE.json"
CACHE_ENV = "BLENDSET_CACHE"

__all__ = ["MARKER", "IncompleteUpload", "StorageError", "is_url", "publish", "localize", "read_marker"]


class StorageError(BlendsetError, RuntimeError):
    """A remote dataset location cannot be used (bad URL, unreadable, not a folder)."""


class IncompleteUpload(StorageError):
    """A published folder has no completion marker, or files the marker lists are missing or truncated."""


def is_url(path: str) -> bool:
    """True for ``scheme://...`` strings; plain paths (relative or absolute) are local."""
    return "://" in str(path)


def _fs(url: str):
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:  # unknown protocol, or its package (s3fs, gcsfs) is missing
        raise StorageError(f"cannot open {url!r}: {e}") from e
    return fs, root.rstrip("/")


# Temp names that versions before shared.atomic wrote: ``.tmp*``, ``name.tmp``, ``name.tmp1234`` (with the
# writer's pid), ``name.tmp.png``. A folder rendered by such a version may still hold one after a crash.
_OLD_TEMP = re.compile(r"^\.tmp|\.tmp\d*$|\.tmp\.")


def _is_temp(name: str) -> bool:
    """An atomic writer's in-flight file (:func:`shared.atomic.is_temp`, or an older version's temp name)."""
    return is_temp(name) or _OLD_TEMP.search(name) is not None


def _local_files(local_dir: str) -> dict[str, int]:
    """Relative POSIX path -> size of every regular file under ``local_dir``, marker excluded."""
    files: dict[str, int] = {}
    for dirpath, _dirnames, filenames in os.walk(local_dir):
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, local_dir).replace(os.sep, "/")
            if rel == MARKER or _is_temp(name):
                continue  # in-flight temp files of an atomic writer are not part of the dataset
            files[rel] = os.path.getsize(full)
    return dict(sorted(files.items()))


def publish(local_dir: str, url: str) -> None:
    """Upload the folder ``local_dir`` to the URL prefix ``url``; the completion marker is written last.

    A local destination (no scheme) is a plain copy with the same marker, so a shared file system works like a
    bucket. Files already at the destination with the same size are not re-sent, which makes a re-publish after
    an interrupted one cheap.
    """
    if not os.path.isdir(local_dir):
        raise StorageError(f"cannot publish {local_dir!r}: not a folder")
    target = url if is_url(url) else "file://" + os.path.abspath(url)
    fs, root = _fs(target)
    files = _local_files(local_dir)
    marker_path = f"{root}/{MARKER}"
    try:
        if fs.exists(marker_path):
            fs.rm(marker_path)  # from here on the destination reads as incomplete until we finish
        fs.makedirs(root, exist_ok=True)
        existing = _remote_sizes(fs, root)
        todo = [rel for rel, size in files.items() if existing.get(rel) != size]
        if todo:
            for parent in sorted({rel.rsplit("/", 1)[0] for rel in todo if "/" in rel}):
                fs.makedirs(f"{root}/{parent}", exist_ok=True)
            fs.put([os.path.join(local_dir, *rel.split("/")) for rel in todo], [f"{root}/{rel}" for rel in todo])
        marker = {"files": files, "count": len(files), "published_at": time.time()}
        with fs.open(marker_path, "w") as f:
            f.write(json.dumps(marker, sort_keys=True))
    except OSError as e:
        raise StorageError(f"publishing {local_dir!r} to {url!r} failed: {e}") from e


def _remote_sizes(fs, root: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    if not fs.exists(root):
        return sizes
    for path, info in fs.find(root, detail=True).items():
        if info.get("type", "file") == "file":
            rel = path[len(root) :].lstrip("/") if path.startswith(root) else path.rsplit(root + "/", 1)[-1]
            sizes[rel] = int(info.get("size") or 0)
    return sizes


def read_marker(url: str) -> dict:
    """The completion marker of a published folder; :class:`IncompleteUpload` when it is absent or unreadable."""
    fs, root = _fs(url if is_url(url) else "file://" + os.path.abspath(url))
    marker_path = f"{root}/{MARKER}"
    if not fs.exists(marker_path):
        raise IncompleteUpload(f"{url}: no {MARKER}; the upload did not finish (or this is not a published shard)")
    try:
        with fs.open(marker_path, "r") as f:
            marker = json.loads(f.read())
        files = marker["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not an object")
    except (ValueError, KeyError, TypeError) as e:
        raise IncompleteUpload(f"{url}: unreadable {MARKER}: {e}") from e
    return marker


def _check_complete(fs, root: str, url: str, marker: dict) -> None:
    present = _remote_sizes(fs, root)
    missing = [rel for rel in marker["files"] if rel not in present]
    wrong = [rel for rel, size in marker["files"].items() if rel in present and present[rel] != size]
    if missing or wrong:
        detail = (f"missing {missing[:5]}" if missing else "") + (f" wrong size {wrong[:5]}" if wrong else "")
        raise IncompleteUpload(f"{url}: {len(missing)} missing and {len(wrong)} truncated file(s): {detail.strip()}")


def _cache_root() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(tempfile.gettempdir(), "blendset-cache")


def localize(url: str) -> str:
    """A local folder holding the published folder at ``url``; plain local paths are returned unchanged.

    ``file://`` URLs are checked for completeness and returned as paths (no copy). Other schemes are downloaded
    once into a cache folder (``$BLENDSET_CACHE`` or the temp dir) keyed by URL and marker, so a re-published
    shard is fetched again and an unchanged one is not. The download lands in a temp folder that is renamed into
    place, so an interrupted download never looks complete.
    """
    if not is_url(url):
        return url
    fs, root = _fs(url)
    marker = read_marker(url)
    _check_complete(fs, root, url, marker)
    if fs.protocol == "file" or (isinstance(fs.protocol, tuple) and "file" in fs.protocol):
        return root
    key = hashlib.sha256((url + json.dumps(marker, sort_keys=True)).encode()).hexdigest()[:24]
    dest = os.path.join(_cache_root(), key)
    if os.path.isfile(os.path.join(dest, MARKER)):
        return dest
    os.makedirs(_cache_root(), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=key + ".", suffix=".part", dir=_cache_root())
    try:
        rels = list(marker["files"])
        for parent in sorted({rel.rsplit("/", 1)[0] for rel in rels if "/" in rel}):
            os.makedirs(os.path.join(tmp, *parent.split("/")), exist_ok=True)
        if rels:
            fs.get([f"{root}/{rel}" for rel in rels], [os.path.join(tmp, *rel.split("/")) for rel in rels])
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as f:
            json.dump(marker, f, sort_keys=True)
        try:
            os.replace(tmp, dest)
        except OSError:  # another process finished the same download first
            if not os.path.isfile(os.path.join(dest, MARKER)):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
