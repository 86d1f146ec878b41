"""The pure layer gives the same results in Blender's own Python (Blender 5: numpy 2.x) as in the test
interpreter (numpy 1.26): identical RLE strings, boxes, silhouettes and random draws."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from blendset_testing import run_blender

HERE = os.path.dirname(os.path.abspath(__file__))


def _close(a, b, path="") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-6), path  # float32 sums may differ in the last bits
    else:
        assert a == b, path


@pytest.mark.blender
def test_blender_python_gives_the_same_results(tmp_path):
    import shared_probe  # noqa: PLC0415 - pytest puts this test folder on sys.path

    out = tmp_path / "probe.json"
    proc = run_blender("binary", os.path.join(HERE, "shared_probe.py"), [str(out)])
    assert "PROBE_DONE" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    theirs = json.loads(out.read_text())
    ours = json.loads(json.dumps(shared_probe.probe()))
    assert ours.pop("numpy") == np.__version__
    theirs_numpy = theirs.pop("numpy")
    _close(ours, theirs)
    assert theirs_numpy
