"""shared.atomic, the one atomic writer: a reader sees the old file or the whole new one, never a part, and an
interrupted writer leaves no temp file behind."""

from __future__ import annotations

import json
import os

import pytest

from shared import atomic
from shared.atomic import atomic_path, atomic_write, is_temp, write_bytes, write_json, write_text


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_write_text_replaces_the_file_and_leaves_nothing_else(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("old")
    write_text(str(p), "new ü\n")
    assert p.read_bytes() == "new ü\n".encode()
    assert os.listdir(tmp_path) == ["a.txt"]
    assert p.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_write_bytes_and_pathlike(tmp_path):
    p = tmp_path / "sub" / "b.bin"  # the folder is created
    write_bytes(p, b"\x00\x01\xff")
    assert p.read_bytes() == b"\x00\x01\xff"


def test_a_writer_that_raises_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("old\n")
    with pytest.raises(RuntimeError, match="half way"), atomic_write(str(p), newline="") as f:
        f.write("new,half\n")
        raise RuntimeError("half way")
    assert p.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["a.csv"]


def test_the_target_is_untouched_until_the_block_ends(tmp_path):
    p = tmp_path / "a.json"
    p.write_text("{}")
    with atomic_write(str(p)) as f:
        f.write('{"a": 1}')
        f.flush()
        assert p.read_text() == "{}"  # readers still see the old content
        (tmp,) = [n for n in os.listdir(tmp_path) if n != "a.json"]
        assert is_temp(tmp)
    assert json.loads(p.read_text()) == {"a": 1}


def test_atomic_path_temp_name_keeps_the_extension_and_is_recognised(tmp_path):
    target = tmp_path / "plot.png"
    with atomic_path(str(target)) as tmp:
        name = os.path.basename(tmp)
        assert os.path.dirname(tmp) == str(tmp_path)  # beside the target: the rename stays on one file system
        assert name.startswith(atomic.TEMP_PREFIX) and name.endswith("-plot.png")
        assert os.path.splitext(tmp)[1] == ".png"  # PIL, matplotlib and numpy pick the format from it
        assert is_temp(name) and not is_temp("plot.png")
        with open(tmp, "wb") as f:
            f.write(b"\x89PNG")
    assert target.read_bytes() == b"\x89PNG"
    assert os.listdir(tmp_path) == ["plot.png"]


def test_atomic_path_raises_when_the_writer_made_no_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="created no file"), atomic_path(str(tmp_path / "x.npy")):
        pass
    assert os.listdir(tmp_path) == []


def test_atomic_path_removes_the_temp_file_on_error(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_path(str(tmp_path / "x.bin")) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt  # BaseException too: an interrupted run leaves nothing behind
    assert os.listdir(tmp_path) == []


def test_fsync_path_syncs_before_the_rename(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    p = tmp_path / "done.json"
    write_json(str(p), {"done": True}, fsync=True)
    assert len(synced) == 1 and json.loads(p.read_text()) == {"done": True}
    write_json(str(p), {"done": False})
    assert len(synced) == 1  # no fsync unless asked


def test_write_json_formats(tmp_path):
    p = tmp_path / "a.json"
    write_json(str(p), {"b": [1, 2], "a": "x"})
    assert p.read_text() == '{\n  "b": [\n    1,\n    2\n  ],\n  "a": "x"\n}\n'
    write_json(str(p), {"b": 1, "a": 2}, indent=None, sort_keys=True)
    assert p.read_text() == '{"a":2,"b":1}'  # compact: no spaces, no newline
    write_json(str(p), {"path": tmp_path}, default=str)
    assert json.loads(p.read_text()) == {"path": str(tmp_path)}


def test_nan_is_refused_unless_allowed(tmp_path):
    p = tmp_path / "a.json"
    write_json(str(p), {"a": 1})
    with pytest.raises(ValueError):
        write_json(str(p), {"a": float("nan")})
    assert json.loads(p.read_text()) == {"a": 1} and os.listdir(tmp_path) == ["a.json"]
    write_json(str(p), {"a": float("inf")}, allow_nan=True)
    assert p.read_text() == '{\n  "a": Infinity\n}\n'


def test_binary_mode_and_bad_mode(tmp_path):
    p = tmp_path / "a.bin"
    with atomic_write(str(p), "wb") as f:
        f.write(b"\r\n")
    assert p.read_bytes() == b"\r\n"
    with atomic_write(str(tmp_path / "a.csv"), newline="") as f:
        f.write("a\r\n")
    assert (tmp_path / "a.csv").read_bytes() == b"a\r\n"  # newline="" writes line ends as given (csv)
    for mode in ("a", "r", "w+", "x"):
        with pytest.raises(ValueError, match="mode"), atomic_write(str(p), mode):
            pass
    assert p.read_bytes() == b"\r\n"


def test_is_temp_names():
    assert is_temp(".tmp-0123abcd-000001.png") and is_temp(".write-test-x")
    assert not is_temp("000001.png") and not is_temp("annotations.json") and not is_temp("tmp.json")
