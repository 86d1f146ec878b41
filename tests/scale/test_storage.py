"""publish/localize on real fsspec file systems (memory:// and file://): round trip and half-upload detection."""

from __future__ import annotations

import json
import os
import uuid

import fsspec
import pytest

from trainer.rendering import storage


def _make_dataset(root, frames=3):
    os.makedirs(root / "frames")
    os.makedirs(root / "images")
    for i in range(frames):
        (root / "frames" / f"{i:06d}.json").write_text(json.dumps({"frame": i}))
        (root / "images" / f"{i:06d}.png").write_bytes(bytes(range(256)) * (i + 1))
    (root / "config.json").write_text("{}")
    (root / "frames" / "000099.json.tmp").write_text("half-written")  # in-flight temp files are not published
    (root / "images" / ".tmp-123-000099.png").write_bytes(b"half")
    return root


def _tree(root) -> dict[str, bytes]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root)] = open(full, "rb").read()
    return out


@pytest.fixture
def memory_url():
    url = f"memory://bucket-{uuid.uuid4().hex}/run/shard-0"
    yield url
    fs = fsspec.filesystem("memory")
    root = url.split("://", 1)[1].split("/", 1)[0]
    if fs.exists("/" + root):
        fs.rm("/" + root, recursive=True)


def test_local_path_is_returned_unchanged(tmp_path):
    assert storage.localize(str(tmp_path)) == str(tmp_path)
    assert storage.localize("relative/dir") == "relative/dir"


def test_memory_round_trip_downloads_same_files(tmp_path, memory_url, monkeypatch):
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "cache"))
    src = _make_dataset(tmp_path / "src")
    storage.publish(str(src), memory_url)
    local = storage.localize(memory_url)
    assert local.startswith(str(tmp_path / "cache"))
    got = _tree(local)
    want = {k: v for k, v in _tree(src).items() if "tmp" not in k}
    assert got.pop(storage.MARKER)
    assert got == want
    assert storage.localize(memory_url) == local  # cached: same folder, no second download


def test_file_url_is_checked_and_not_copied(tmp_path):
    src = _make_dataset(tmp_path / "src")
    dest = tmp_path / "published"
    storage.publish(str(src), "file://" + str(dest))
    assert storage.localize("file://" + str(dest)) == str(dest)
    marker = json.loads((dest / storage.MARKER).read_text())
    assert marker["count"] == 7 and "frames/000002.json" in marker["files"]


def test_missing_marker_is_an_incomplete_upload(tmp_path, memory_url):
    src = _make_dataset(tmp_path / "src")
    storage.publish(str(src), memory_url)
    fsspec.filesystem("memory").rm(memory_url.split("://", 1)[1] + "/" + storage.MARKER)
    with pytest.raises(storage.IncompleteUpload, match="did not finish"):
        storage.localize(memory_url)


def test_missing_and_truncated_files_are_named(tmp_path, memory_url):
    src = _make_dataset(tmp_path / "src")
    storage.publish(str(src), memory_url)
    fs = fsspec.filesystem("memory")
    root = memory_url.split("://", 1)[1]
    fs.rm(root + "/images/000001.png")
    with pytest.raises(storage.IncompleteUpload, match=r"1 missing .*images/000001.png"):
        storage.localize(memory_url)
    fs.pipe(root + "/images/000001.png", b"short")
    with pytest.raises(storage.IncompleteUpload, match="1 truncated"):
        storage.localize(memory_url)


def test_republish_sends_only_changed_files_and_rewrites_marker(tmp_path, memory_url, monkeypatch):
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "cache"))
    src = _make_dataset(tmp_path / "src")
    storage.publish(str(src), memory_url)
    first = storage.localize(memory_url)
    (src / "frames" / "000003.json").write_text(json.dumps({"frame": 3}))
    storage.publish(str(src), memory_url)
    second = storage.localize(memory_url)
    assert second != first  # a new marker means a new cache entry
    assert os.path.exists(os.path.join(second, "frames", "000003.json"))


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(storage.StorageError, match="not a folder"):
        storage.publish(str(tmp_path / "nope"), "memory://x/y")
    with pytest.raises(storage.StorageError, match="cannot open"):
        storage.localize("nosuchproto://bucket/x")
