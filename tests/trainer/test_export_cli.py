"""`blendset export` and the skip listing of the training commands."""

import json
import os

from click.testing import CliRunner
from PIL import Image

from trainer.cli import cli


def test_export_imagefolder_and_yolo(shapes_val_dataset, tmp_path):
    runner = CliRunner()
    out = str(tmp_path / "crops")
    result = runner.invoke(cli, ["export", "imagefolder", "--data", shapes_val_dataset, "-o", out, "--padding", "0"])
    assert result.exit_code == 0, result.output
    gt = json.load(open(os.path.join(shapes_val_dataset, "annotations.json")))
    names = {c["id"]: c["name"] for c in gt["categories"]}
    for ann in gt["annotations"]:
        path = os.path.join(out, names[ann["category_id"]], f"{ann['image_id']}_{ann['id']}.png")
        assert Image.open(path).size == (ann["bbox"][2], ann["bbox"][3])
    again = runner.invoke(cli, ["export", "imagefolder", "--data", shapes_val_dataset, "-o", out])
    assert again.exit_code == 2 and "--overwrite" in again.output

    yolo = str(tmp_path / "yolo")
    result = runner.invoke(cli, ["export", "yolo", "--data", shapes_val_dataset, "-o", yolo, "--boxes"])
    assert result.exit_code == 0, result.output
    first = gt["annotations"][0]
    stem = os.path.splitext(gt["images"][0]["file_name"])[0]
    lines = open(os.path.join(yolo, "labels", stem + ".txt")).read().split("\n")
    cls, cx, cy, w, h = lines[0].split()
    x, y, bw, bh = first["bbox"]
    assert abs(float(cx) - (x + bw / 2) / 96) < 1e-3 and abs(float(w) - bw / 96) < 1e-3


def test_training_lists_skipped_items_with_reasons(make_shapes, tmp_path):
    root = make_shapes(n_images=4)
    path = os.path.join(root, "annotations.json")
    data = json.load(open(path))
    data["annotations"][0]["bbox"] = [3, 3, 0, 5]
    data["annotations"][1]["category_id"] = 42
    json.dump(data, open(path, "w"))
    args = [
        "train",
        "classify",
        "--train",
        root,
        "--out",
        str(tmp_path / "run"),
        "--model",
        "resnet18",
        "--image-size",
        "16",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "bad_bbox" in result.output and "unknown_category" in result.output
    result = CliRunner().invoke(cli, [*args, "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert "skipped 2 (1 x bad_bbox, 1 x unknown_category)" in result.output


def test_classify_mixes_imagefolder_and_coco_and_evaluates_imagefolder(shapes_val_dataset, tmp_path):
    runner = CliRunner()
    crops = str(tmp_path / "crops")
    assert runner.invoke(cli, ["export", "imagefolder", "--data", shapes_val_dataset, "-o", crops]).exit_code == 0
    run = str(tmp_path / "run")
    result = runner.invoke(
        cli,
        [
            "train",
            "classify",
            "--train",
            crops,
            "--train",
            f"{shapes_val_dataset}:0.5",
            "--val",
            crops,
            "--out",
            run,
            "--model",
            "mobilenet_v3_small",
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--device",
            "cpu",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["eval", "--model", run, "--data", crops, "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    rows = open(os.path.join(run, "eval", "crops", "predictions.csv")).read().splitlines()
    assert rows[0] == "index,image_id,annotation_id,true,pred,score" and len(rows) == 1 + 13
    assert rows[1].split(",")[2] == ""  # ImageFolder samples have no annotation id
