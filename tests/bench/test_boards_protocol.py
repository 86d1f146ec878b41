"""The whole chessboard protocol at toy scale: real renders of the boards scene through the engine, real (tiny)
detector and keypoint training, evaluation on the 26 real photos, the 2-fold baselines and the gap loop. The
numbers at this scale are meaningless; their bookkeeping is not, and neither is the wiring."""

from __future__ import annotations

import json
import os
import time

import pytest

pytestmark = [pytest.mark.blender, pytest.mark.slow]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    pytest.importorskip("bpy")
    from trainer.bench.boards_real import find_real_photos

    try:
        find_real_photos()
    except Exception as exc:  # the photos come from Debian's opencv-doc (installed by .ci/run)
        pytest.skip(str(exc))
    import torch

    from trainer.bench.boards import run_boards_benchmark

    torch.set_num_threads(2)
    out = str(tmp_path_factory.mktemp("boards") / "bench")
    notes: list[str] = []
    results = run_boards_benchmark(out, scale="toy", seed=0, device="cpu", note=notes.append)
    return out, results, notes


def test_every_row_is_measured_on_the_real_photos(toy_run):
    out, results, _ = toy_run
    for task in ("detect", "keypoints"):
        rows = results[task]
        assert set(rows) == {"synthetic only, all 26 photos", "synthetic only", "real only", "real + synthetic"}
        for name, row in rows.items():
            ap50 = row["box_AP50"]
            assert ap50 is None or 0.0 <= ap50 <= 1.0, (task, name, row)
        for name in ("synthetic only", "real only", "real + synthetic"):
            assert rows[name]["folds"] == 2
    kp = results["keypoints"]["synthetic only, all 26 photos"]
    for key in ("kp_AP", "corner_error_median_px", "pck_2px", "pck_5px"):
        assert key in kp
    for name in ("pck_2px", "pck_5px"):
        assert kp[name] is None or 0.0 <= kp[name] <= 1.0
    with open(os.path.join(out, "real", "annotations.json")) as f:
        assert len(json.load(f)["images"]) == 26
    for k in (0, 1):  # the folds split the stereo pairs, never a pair
        with open(os.path.join(out, "folds", f"test{k}", "annotations.json")) as f:
            test = {im["board"]["pair"] for im in json.load(f)["images"]}
        with open(os.path.join(out, "folds", f"train{k}", "annotations.json")) as f:
            train = {im["board"]["pair"] for im in json.load(f)["images"]}
        assert test and train and not (test & train)
    with open(os.path.join(out, "synthetic", "annotations.json")) as f:
        synthetic = json.load(f)
    assert synthetic["categories"][0]["keypoints"][0] == "r0c0" and len(synthetic["categories"][0]["keypoints"]) == 54
    assert os.path.isfile(os.path.join(out, "results.md"))


def test_the_gap_loop_reports_both_distances(toy_run):
    _, results, _ = toy_run
    gap = results["gap_loop"]
    assert gap["largest_distance_before"]["bhattacharyya"] >= 0
    assert gap["largest_distance_after"]["bhattacharyya"] >= 0
    assert gap["detect_after"]["task"] == "detect"


def test_a_rerun_resumes_from_what_is_done(toy_run):
    out, results, _ = toy_run
    from trainer.bench.boards import run_boards_benchmark

    t0 = time.time()
    again = run_boards_benchmark(out, scale="toy", seed=0, device="cpu")
    assert time.time() - t0 < 60  # nothing is rendered or trained again
    assert again["detect"] == results["detect"] and again["keypoints"] == results["keypoints"]
