"""The `blendset gap` commands on small drawn datasets: outputs, bad input, box filtering, suggest, score."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from trainer.cli import cli

from .conftest import draw_dataset


def invoke(*args: str):
    return CliRunner().invoke(cli, ["gap", *args])


@pytest.fixture
def pair(tmp_path, rng):
    syn = draw_dataset(
        str(tmp_path / "syn"), list(rng.uniform(0.1, 0.2, 30)), rng, classes=("cube", "cone"), attributes=True
    )
    real = draw_dataset(str(tmp_path / "real"), list(rng.uniform(0.4, 0.5, 10)), rng, classes=("cube", "cone"))
    return syn, real


def test_analyze_writes_self_contained_report_and_warns_on_few_real(pair, tmp_path):
    syn, real = pair
    out = str(tmp_path / "gap")
    res = invoke("analyze", "-s", syn, "-r", real, "-o", out, "-q")
    assert res.exit_code == 0, res.output
    with open(os.path.join(out, "gap.json")) as f:
        gap = json.load(f)
    assert gap["metadata"][0]["name"] == "box_area"
    assert any("only 10 real images" in w and "unstable" in w for w in gap["warnings"])
    assert gap["extractor"]["random_init"] is True
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    assert "unstable" in html and "random-init" in html
    assert html.count("data:image/png;base64,") >= 10
    assert 'src="http' not in html and "<script" not in html  # nothing external
    rows = list(csv.DictReader(open(os.path.join(out, "synthetic_boxes.csv"))))
    assert len(rows) == 30 and float(rows[0]["distance"]) > 0
    again = invoke("analyze", "-s", syn, "-r", real, "-o", out, "-q")
    assert again.exit_code != 0 and "--overwrite" in again.output


def test_mismatched_classes_are_refused_by_every_command(tmp_path, rng):
    syn = draw_dataset(str(tmp_path / "syn"), [0.2] * 6, rng, classes=("cube",), attributes=True)
    real = draw_dataset(str(tmp_path / "real"), [0.2] * 6, rng, classes=("cube", "bear"))
    cfg = str(tmp_path / "cfg.json")
    with open(cfg, "w") as f:
        json.dump({"classes": [{"name": "cube", "id": 0}]}, f)
    for args in (
        ["analyze", "-o", str(tmp_path / "a")],
        ["filter", "-o", str(tmp_path / "f")],
        ["align", "--config", cfg, "-o", str(tmp_path / "x.json")],
        ["score"],
    ):
        res = invoke(args[0], "-s", syn, "-r", real, *args[1:])
        assert res.exit_code == 2, (args, res.output)  # a GapError: one line, exit status 2
        assert "mismatched classes" in res.output and "'bear'" in res.output, res.output


def test_empty_real_set_is_a_clear_error(tmp_path, rng):
    syn = draw_dataset(str(tmp_path / "syn"), [0.2] * 4, rng, attributes=True)
    real = tmp_path / "real"
    real.mkdir()
    (real / "annotations.json").write_text(
        json.dumps({"images": [], "annotations": [], "categories": [{"id": 0, "name": "cube"}]})
    )
    res = invoke("analyze", "-s", syn, "-r", str(real), "-o", str(tmp_path / "out"))
    assert res.exit_code == 2 and "real dataset" in res.output and "has no images" in res.output


def test_align_with_fewer_real_samples_than_clusters(tmp_path, rng):
    syn = draw_dataset(str(tmp_path / "syn"), list(rng.uniform(0.1, 0.2, 10)), rng, attributes=True)
    real = draw_dataset(str(tmp_path / "real"), [0.3, 0.4, 0.5], rng)
    cfg = str(tmp_path / "cfg.json")
    with open(cfg, "w") as f:
        json.dump({"classes": [{"name": "cube", "id": 0}], "render": {"resolution": [96, 72]}}, f)
    res = invoke("align", "-s", syn, "-r", real, "--config", cfg, "-o", str(tmp_path / "a.json"), "--components", "5")
    assert res.exit_code == 2
    assert "fewer real samples (3) than clusters (5)" in res.output


def test_align_distance_follows_the_pinhole_model(tmp_path, rng):
    """Drawn camera: side_px = 100 px * 1 m / d. Real boxes of 0.5 * 72 = 36 px need d = 100/36 = 2.8 m."""
    syn = draw_dataset(str(tmp_path / "syn"), list(rng.uniform(0.1, 0.2, 60)), rng, attributes=True)
    real = draw_dataset(str(tmp_path / "real"), list(rng.normal(0.5, 0.01, 40)), rng)
    cfg = str(tmp_path / "cfg.json")
    with open(cfg, "w") as f:  # 37.5 mm on a 36 mm sensor over 96 px: fx = 100 px, the drawn camera
        json.dump(
            {
                "classes": [{"name": "cube", "id": 0}],
                "render": {"resolution": [96, 72]},
                "camera": {"focal_length_mm": {"min": 37.5, "max": 37.5}},
            },
            f,
        )
    out = str(tmp_path / "aligned.json")
    res = invoke("align", "-s", syn, "-r", real, "--config", cfg, "-o", out)
    assert res.exit_code == 0, res.output
    from shared.config import load_config

    aligned = load_config(out)
    assert len(aligned.mixture) == 1  # one tight cluster: BIC keeps one Gaussian
    d = aligned.mixture[0].camera.distance
    assert d.distribution == "loguniform"
    # Boxes are drawn with a random aspect 0.8..1.25, so sqrt(area) scatters ~5% around the side.
    assert 2.5 < d.min <= d.max < 3.2, d
    report = json.load(open(str(tmp_path / "aligned.align.json")))
    assert report["object_size_m"] == pytest.approx(1.0, rel=0.1)


def _two_object_dataset(root: str, n: int, rng) -> str:
    """Images with two boxes each (left and right); used for box-level filtering."""
    draw_dataset(root, [0.3] * n, rng)
    with open(os.path.join(root, "annotations.json")) as f:
        coco = json.load(f)
    for im in coco["images"]:
        path = os.path.join(root, "images", im["file_name"])
        arr = np.asarray(Image.open(path)).copy()
        arr[5:20, 70:90] = (40, 200, 60) if im["id"] % 7 == 0 else (200, 60, 40)  # every 7th: odd green box
        Image.fromarray(arr).save(path)
        coco["annotations"].append(
            {
                "id": im["id"] * 10000 + 1,
                "image_id": im["id"],
                "category_id": 0,
                "bbox": [70, 5, 20, 15],
                "area": 300,
                "iscrowd": 0,
            }
        )
    with open(os.path.join(root, "annotations.json"), "w") as f:
        json.dump(coco, f)
    return root


@pytest.mark.parametrize("mode", ["blackout", "ignore"])
def test_box_level_filter_keeps_pixels_consistent(tmp_path, rng, mode):
    syn = _two_object_dataset(str(tmp_path / "syn"), 28, rng)
    real = draw_dataset(str(tmp_path / "real"), [0.3] * 20, rng)
    out = str(tmp_path / "f")
    res = invoke("filter", "-s", syn, "-r", real, "-o", out, "--level", "box", "--box-mode", mode, "-q")
    assert res.exit_code == 0, res.output
    summary = json.load(open(os.path.join(out, "filter.json")))
    dropped = set(summary["boxes_dropped"])
    assert dropped == {i * 10000 + 1 for i in (7, 14, 21, 28)}  # exactly the odd green boxes
    coco = json.load(open(os.path.join(out, "annotations.json")))
    assert len(coco["images"]) == 28 and coco["info"]["blendset_filter"]["box_mode"] == mode
    anns = {a["id"]: a for a in coco["annotations"]}
    for aid in dropped:
        iid = aid // 10000
        pixels = np.asarray(Image.open(os.path.join(out, "images", f"{iid - 1:06d}.png")))[5:20, 70:90]
        source = np.asarray(Image.open(os.path.join(syn, "images", f"{iid - 1:06d}.png")))[5:20, 70:90]
        if mode == "blackout":
            assert aid not in anns and pixels.max() == 0
        else:
            assert anns[aid]["iscrowd"] == 1 and anns[aid]["ignore"] == 1
            np.testing.assert_array_equal(pixels, source)
    assert len(anns) == (56 - 4 if mode == "blackout" else 56)


def _real_for_suggest(tmp_path, rng) -> str:
    sizes = list(rng.uniform(0.08, 0.16, 40)) + list(rng.uniform(0.4, 0.6, 40))
    return draw_dataset(str(tmp_path / "real"), sizes, rng, classes=("cube", "cone"))


def test_suggest_classification_finds_weak_class_and_small_boxes(tmp_path, rng):
    real = _real_for_suggest(tmp_path, rng)
    coco = json.load(open(os.path.join(real, "annotations.json")))
    names = {0: "cube", 1: "cone"}
    run = tmp_path / "run"
    (run / "eval" / "real").mkdir(parents=True)
    with open(run / "eval" / "real" / "predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "image_id", "annotation_id", "true", "pred", "score"])
        for i, a in enumerate(coco["annotations"]):
            true = names[a["category_id"]]
            small = a["bbox"][3] < 0.3 * 72
            wrong = small and (true == "cone" or i % 4 == 0)  # small boxes fail, small cones always
            w.writerow(
                [i, a["image_id"], a["id"], true, ("cube" if true == "cone" else "cone") if wrong else true, 0.9]
            )
    base = str(tmp_path / "base.json")
    with open(base, "w") as f:
        json.dump(
            {
                "classes": [{"name": "cube", "id": 0}, {"name": "cone", "id": 1}],
                "camera": {"distance": {"min": 4.0, "max": 6.0}},
            },
            f,
        )
    out = str(tmp_path / "plan")
    res = invoke("suggest", "--model", str(run), "-r", real, "-o", out, "--base-config", base, "-q")
    assert res.exit_code == 0, res.output
    s = json.load(open(os.path.join(out, "suggest.json")))
    assert s["classes"][0]["class"] == "cone"
    flagged = {(b["metadata"], b["position"]) for b in s["flagged_bins"]}
    assert ("box_area", "lowest") in flagged
    from shared.config import load_config

    plan = load_config(os.path.join(out, "plan.json"))
    assert plan.count == 200
    assert plan.mixture[0].classes == ("cone",)
    assert plan.mixture[0].camera.distance.min > 4.0  # small boxes fail: render farther
    md = open(os.path.join(out, "plan.md")).read()
    assert "cone" in md and "small boxes fail" in md


def test_suggest_detection_counts_missed_boxes(tmp_path, rng):
    real = _real_for_suggest(tmp_path, rng)
    coco = json.load(open(os.path.join(real, "annotations.json")))
    dets = []
    for a in coco["annotations"]:
        missed = a["bbox"][3] < 0.3 * 72 and a["category_id"] == 0  # small cubes are missed
        if not missed:
            dets.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9})
    dets.append({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.8})  # one false positive
    run = tmp_path / "run"
    (run / "eval" / "real").mkdir(parents=True)
    (run / "eval" / "real" / "detections.json").write_text(json.dumps(dets))
    out = str(tmp_path / "plan")
    res = invoke("suggest", "--model", str(run), "-r", real, "-o", out, "-q", "--count", "100")
    assert res.exit_code == 0, res.output
    s = json.load(open(os.path.join(out, "suggest.json")))
    assert s["metric"] == "recall" and s["classes"][0]["class"] == "cube"
    assert s["classes"][0]["errors"] == sum(
        1 for a in coco["annotations"] if a["bbox"][3] < 0.3 * 72 and a["category_id"] == 0
    )
    assert s["false_positives"] == {"cube": 0, "cone": 1}
    assert s["quotas"] == [{"class": "cube", "weight": 1.0, "frames": 100}]


def test_score_is_lower_for_the_closer_dataset(tmp_path, rng):
    real = draw_dataset(str(tmp_path / "real"), list(rng.uniform(0.3, 0.5, 30)), rng)
    close = draw_dataset(str(tmp_path / "close"), list(rng.uniform(0.3, 0.5, 30)), rng)
    far = draw_dataset(str(tmp_path / "far"), list(rng.uniform(0.08, 0.15, 30)), rng, bg=(30, 160, 60))
    scores = {}
    for name, path in (("close", close), ("far", far)):
        out = str(tmp_path / f"{name}.json")
        res = invoke("score", "-s", path, "-r", real, "-q", "--bootstrap", "30", "--json", out)
        assert res.exit_code == 0, res.output
        assert "weak when datasets are close" in res.output
        scores[name] = json.load(open(out))
    lo, hi = scores["close"]["bootstrap"]["ci95"]
    assert lo <= scores["close"]["score"] <= hi or scores["close"]["bootstrap"]["std"] < 0.05
    assert scores["close"]["bootstrap"]["ci95"][1] < scores["far"]["bootstrap"]["ci95"][0]


def test_predict_metadata_learns_depth_and_labels_real_boxes(tmp_path, rng):
    syn = draw_dataset(str(tmp_path / "syn"), list(rng.uniform(0.1, 0.7, 60)), rng, attributes=True)
    real = draw_dataset(str(tmp_path / "real"), list(rng.uniform(0.1, 0.7, 12)), rng)
    out = str(tmp_path / "pm")
    res = invoke("predict-metadata", "-s", syn, "-r", real, "-o", out, "-q")
    assert res.exit_code == 0, res.output
    s = json.load(open(os.path.join(out, "predict_metadata.json")))
    depth = s["extractors"]["random"]["targets"]["depth_median"]
    assert depth["metric"] == "r2" and depth["score"] > 0.3, depth  # texture scale in the crop encodes distance
    assert "constant" in s["extractors"]["random"]["targets"]["occlusion"]["skipped"]
    rows = list(csv.DictReader(open(os.path.join(out, "real_metadata.csv"))))
    assert len(rows) == 12 and all(float(r["predicted_depth_median"]) > 0 for r in rows)


def test_extractors_from_local_weights_and_a_detector_run(tmp_path):
    import torch
    import torchvision

    from trainer.gap import GapError
    from trainer.gap.features import build_extractor

    images = [np.full((40, 50, 3), v, dtype=np.uint8) for v in (30, 200)]
    weights = str(tmp_path / "r18.pth")
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    ext = build_extractor(f"torchvision:resnet18:{weights}", size=64)
    assert not ext.random_init and ext.embed(images).shape == (2, 512)

    det = torchvision.models.get_model(
        "fasterrcnn_mobilenet_v3_large_320_fpn", weights=None, weights_backbone=None, num_classes=3
    )
    run = tmp_path / "run"
    run.mkdir()
    torch.save(
        {
            "task": "detect",
            "model_name": "fasterrcnn_mobilenet_v3_large_320_fpn",
            "categories": [{"id": 0, "name": "cube"}, {"id": 1, "name": "cone"}],
            "model": det.state_dict(),
        },
        run / "best.pth",
    )
    ext = build_extractor(f"detector:{run}", size=64)
    feats = ext.embed(images)
    assert feats.shape[0] == 2 and np.isfinite(feats).all() and "backbone" in ext.label
    torch.save({"task": "detect", "model_name": "fasterrcnn_resnet50_fpn", "model": det.state_dict()}, run / "best.pth")
    with pytest.raises(GapError, match="do not fit fasterrcnn_resnet50_fpn"):
        build_extractor(f"detector:{run}")
    with pytest.raises(GapError, match="unknown extractor"):
        build_extractor("clip")


def test_suggest_evaluates_the_run_when_it_has_no_results(tmp_path, rng):
    """No RUN/eval/<name>/ yet: suggest runs evaluate_run on a real (untrained) classifier."""
    import torch

    from trainer.models.build import get_classification_model

    real = draw_dataset(str(tmp_path / "real"), list(rng.uniform(0.1, 0.6, 24)), rng, classes=("cube", "cone"))
    run = tmp_path / "run"
    run.mkdir()
    model = get_classification_model("resnet18", 2, "none")
    torch.save(
        {
            "task": "classify",
            "model_name": "resnet18",
            "image_size": 32,
            "epoch": 0,
            "categories": [{"id": 0, "name": "cube"}, {"id": 1, "name": "cone"}],
            "model": model.state_dict(),
        },
        run / "best.pth",
    )
    out = str(tmp_path / "plan")
    res = invoke("suggest", "--model", str(run), "-r", real, "-o", out, "--device", "cpu", "-q")
    assert os.path.isfile(run / "eval" / "real" / "predictions.csv"), res.output
    if res.exit_code == 2 and "makes no errors" in res.output:
        pytest.skip("the random classifier happened to be perfect")  # 24 samples, 2 classes: practically never
    assert res.exit_code == 0, res.output
    s = json.load(open(os.path.join(out, "suggest.json")))
    assert s["kind"] == "classify" and s["samples"] == 24
    assert sum(c["n"] for c in s["classes"]) == 24
