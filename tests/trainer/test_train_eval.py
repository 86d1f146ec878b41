"""Train tiny real models for a few steps on CPU, reload, resume, fine-tune and evaluate through the CLI."""

import csv
import json
import os
import shutil

import pytest
import torch
from click.testing import CliRunner

from trainer.cli import cli
from trainer.training.checkpoint import CheckpointError, load_checkpoint

DETECT = [
    "--model",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "--min-size",
    "64",
    "--max-size",
    "96",
    "--batch-size",
    "2",
    "--workers",
    "0",
    "--augment",
    "none",
    "--warmup-iters",
    "0",
    "--lr",
    "0.02",
    "--device",
    "cpu",
    "--seed",
    "0",
    "-q",
]
CLASSIFY = [
    "--model",
    "resnet18",
    "--image-size",
    "32",
    "--batch-size",
    "8",
    "--workers",
    "0",
    "--lr",
    "0.05",
    "--augment",
    "hflip",
    "--device",
    "cpu",
    "--seed",
    "0",
    "-q",
]


def invoke(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def ok(*args):
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def records(run, kind):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["kind"] == kind]


def test_detect_on_engine_render_train_resume_finetune_eval(basic_dataset, tmp_path):
    run = str(tmp_path / "synth")
    ok("train", "detect", "--train", basic_dataset, "--val", basic_dataset, "--out", run, "--epochs", "4", *DETECT)
    epochs = records(run, "epoch")
    assert [e["epoch"] for e in epochs] == [0, 1, 2, 3]
    assert epochs[-1]["train"]["loss"] < epochs[0]["train"]["loss"]  # loss goes down
    steps = records(run, "step")
    assert len(steps) == 12 and {"lr", "img_s", "data_wait", "eta_s", "loss_objectness"} <= set(steps[0])
    for name in ("checkpoint.pth", "best.pth", "args.json"):
        assert os.path.isfile(os.path.join(run, name))

    # the checkpoint is plain data and rebuilds the same model
    ckpt = load_checkpoint(run)
    assert ckpt["task"] == "detect" and [c["name"] for c in ckpt["categories"]] == ["cube", "sphere", "cone"]
    assert ckpt["epoch"] == 3 and isinstance(ckpt["args"], dict)
    from trainer.training.detect import build_detector_from_checkpoint

    model = build_detector_from_checkpoint(ckpt)
    assert torch.equal(
        model.state_dict()["roi_heads.box_predictor.cls_score.weight"],
        ckpt["model"]["roi_heads.box_predictor.cls_score.weight"],
    )

    # resume continues after the last epoch without repeating one; an existing run is never overwritten
    assert invoke("train", "detect", "--train", basic_dataset, "--out", run, *DETECT).exit_code == 2
    ok(
        "train",
        "detect",
        "--train",
        basic_dataset,
        "--val",
        basic_dataset,
        "--out",
        run,
        "--epochs",
        "5",
        "--resume",
        *DETECT,
    )
    assert [e["epoch"] for e in records(run, "epoch")] == [0, 1, 2, 3, 4]
    # resuming with another model or task is refused with a clear message
    bad = invoke(
        "train",
        "detect",
        "--train",
        basic_dataset,
        "--out",
        run,
        "--epochs",
        "6",
        "--resume",
        *DETECT[2:],
        "--model",
        "fasterrcnn_mobilenet_v3_large_fpn",
    )
    assert bad.exit_code == 2 and "holds model" in bad.output

    # stage two: fine-tune from the synthetic run, with a second source mixed in at a fixed share
    tuned = str(tmp_path / "tuned")
    ok(
        "train",
        "detect",
        "--train",
        basic_dataset,
        "--train",
        f"{basic_dataset}:0.5",
        "--out",
        tuned,
        "--epochs",
        "1",
        "--init-from",
        run,
        "--balanced",
        *DETECT,
    )
    assert load_checkpoint(tuned)["epoch"] == 0

    result = ok(
        "eval",
        "--model",
        run,
        "--data",
        basic_dataset,
        "--by-attribute",
        "occlusion:3",
        "--by-attribute",
        "camera.elevation_deg:2",
        "--device",
        "cpu",
        "-q",
    )
    out = os.path.join(run, "eval", os.path.basename(basic_dataset))
    assert "mAP" in result.output
    for name in (
        "metrics.json",
        "per_class.csv",
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "pr_curves.png",
        "detections.json",
        "by_occlusion.csv",
        "by_occlusion.png",
        "by_camera.elevation_deg.csv",
        "by_camera.elevation_deg.png",
    ):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert set(metrics["coco"]) >= {"mAP", "AP50", "AP75", "APs", "APm", "APl"}
    assert len(metrics["per_class"]) == 3 and metrics["by_attribute"][1]["level"] == "image"
    gt = json.load(open(os.path.join(basic_dataset, "annotations.json")))
    dets = json.load(open(os.path.join(out, "detections.json")))
    assert {d["image_id"] for d in dets} <= {im["id"] for im in gt["images"]}
    assert {d["category_id"] for d in dets} <= {c["id"] for c in gt["categories"]}
    objects = sum(b["objects"] for b in metrics["by_attribute"][0]["bins"])
    assert objects == len(gt["annotations"])  # every object lands in one occlusion bin


def test_classify_crops_loss_down_eval_and_mismatch_errors(shapes_dataset, shapes_val_dataset, tmp_path):
    run = str(tmp_path / "cls")
    ok(
        "train",
        "classify",
        "--train",
        shapes_dataset,
        "--val",
        shapes_val_dataset,
        "--out",
        run,
        "--epochs",
        "4",
        "--balanced",
        *CLASSIFY,
    )
    epochs = records(run, "epoch")
    assert epochs[-1]["train"]["loss"] < epochs[0]["train"]["loss"]
    assert 0 <= epochs[-1]["val"]["accuracy"] <= 1

    result = ok(
        "eval",
        "--model",
        run,
        "--data",
        shapes_val_dataset,
        "--name",
        "real",
        "--by-attribute",
        "occlusion:2",
        "--resample-size",
        "20",
        "--device",
        "cpu",
        "-q",
    )
    out = os.path.join(run, "eval", "real")
    assert "accuracy" in result.output
    for name in (
        "metrics.json",
        "per_class.csv",
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "per_class_accuracy.png",
        "predictions.csv",
        "by_occlusion.csv",
        "by_occlusion.png",
    ):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    rows = list(csv.DictReader(open(os.path.join(out, "predictions.csv"))))
    assert list(rows[0]) == ["index", "image_id", "annotation_id", "true", "pred", "score"]
    gt = json.load(open(os.path.join(shapes_val_dataset, "annotations.json")))
    names = {c["id"]: c["name"] for c in gt["categories"]}
    truth = {a["id"]: names[a["category_id"]] for a in gt["annotations"]}
    assert all(truth[int(r["annotation_id"])] == r["true"] for r in rows)
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    accuracy = sum(r["true"] == r["pred"] for r in rows) / len(rows)
    assert metrics["accuracy"] == pytest.approx(accuracy)
    per_class = metrics["per_class"]
    assert per_class[0]["accuracy"] <= per_class[-1]["accuracy"]  # worst first
    assert all(r["ci_low"] <= r["accuracy"] <= r["ci_high"] for r in per_class)

    # a val set with other classes is refused before any training
    other = shutil.copytree(shapes_val_dataset, str(tmp_path / "other"))
    data = json.load(open(os.path.join(other, "annotations.json")))
    data["categories"][0]["name"] = "cube"
    json.dump(data, open(os.path.join(other, "annotations.json"), "w"))
    bad = invoke(
        "train", "classify", "--train", shapes_dataset, "--val", other, "--out", str(tmp_path / "x"), *CLASSIFY
    )
    assert bad.exit_code == 2 and "class lists differ" in bad.output
    bad = invoke("eval", "--model", run, "--data", other, "-q")
    assert bad.exit_code == 2 and "trained on" in bad.output
    # resuming a classification run as a detector is refused
    bad = invoke("train", "detect", "--train", shapes_dataset, "--out", run, "--resume", *DETECT)
    assert bad.exit_code == 2 and "task 'classify'" in bad.output


def test_corrupt_and_foreign_checkpoints_are_clear_errors(tmp_path):
    path = tmp_path / "checkpoint.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(str(path))
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not a Blendset checkpoint"):
        load_checkpoint(str(path))
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(str(tmp_path / "missing_run"))
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint.pth"):
        load_checkpoint(str(tmp_path / "empty_run"))


def test_mask_rcnn_trains_and_reports_mask_ap(shapes_dataset, tmp_path):
    from trainer.evaluation.evaluate import evaluate_run
    from trainer.training.detect import train_detector

    run = str(tmp_path / "mask")
    summary = train_detector(
        [shapes_dataset],
        run,
        model="maskrcnn_resnet50_fpn",
        epochs=1,
        batch_size=2,
        min_size=64,
        max_size=64,
        augment="hflip",
        workers=0,
        device="cpu",
        warmup_iters=0,
        max_steps_per_epoch=2,
        lr=0.005,
    )
    assert "loss_mask" in summary["history"][0]["train"]
    metrics = evaluate_run(run, shapes_dataset, device="cpu", score_threshold=0.0)
    assert set(metrics["coco_segm"]) >= {"mAP", "AP50"}
    dets = json.load(open(os.path.join(metrics["out_dir"], "detections.json")))
    assert all("segmentation" in d for d in dets)
