"""`blendset train keypoints` and keypoint evaluation: the coordinate convention, augmentation that moves keypoints
with the pixels, the checked dataset, and a real tiny Keypoint R-CNN trained, resumed and evaluated through the CLI.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageDraw

from trainer.cli import cli

NAMES = ["top_left", "top_right", "bottom_right", "bottom_left", "centre"]
SKELETON = [[1, 2], [2, 3], [3, 4], [4, 1]]


def draw_quads_dataset(
    root: str, n_images: int = 8, size: tuple[int, int] = (96, 128), seed: int = 0, grey: bool = False
) -> str:
    """Bright quadrilaterals on a dark noisy background, 1-2 per image, keypoints at their corners and centre.

    The centre is hidden (v=1) under a dark patch in every third quad; quads pushed over the right edge have
    their outside corners at v=0, (0, 0). Coordinates are continuous (pixel centres at i + 0.5).
    """
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    height, width = size
    images, anns = [], []
    for i in range(n_images):
        img = Image.fromarray(rng.normal(50, 8, (height, width, 3)).clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for k in range(int(rng.integers(1, 3))):
            cx = rng.uniform(0.3, 1.0 if k == 1 else 0.7) * width
            cy = rng.uniform(0.35, 0.65) * height
            hw, hh = rng.uniform(16, 28), rng.uniform(14, 22)
            corners = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]]) + rng.uniform(-4, 4, (4, 2)) + [cx, cy]
            draw.polygon([tuple(p) for p in corners], fill=(235, 235, 235))
            points = [*corners, corners.mean(0)]
            hidden = len(anns) % 3 == 0
            if hidden:
                x, y = points[4]
                draw.rectangle([x - 3, y - 3, x + 3, y + 3], fill=(40, 40, 40))
            kps = []
            for j, (x, y) in enumerate(points):
                if not (0 <= x <= width and 0 <= y <= height):
                    kps += [0, 0, 0]
                else:
                    kps += [round(float(x), 2), round(float(y), 2), 1 if (hidden and j == 4) else 2]
            x0, y0 = np.clip(corners.min(0), 0, None)
            x1, y1 = np.minimum(corners.max(0), [width, height])
            anns.append({
                "id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], "area": float((x1 - x0) * (y1 - y0)),
                "keypoints": kps, "num_keypoints": sum(1 for v in kps[2::3] if v > 0),
            })  # fmt: skip
        name = f"{i:04d}.jpg" if grey else f"{i:04d}.png"
        (img.convert("L") if grey else img).save(os.path.join(root, "images", name))
        images.append({"id": i + 1, "file_name": name, "width": width, "height": height})
    cats = [{"id": 1, "name": "quad", "supercategory": "shape", "keypoints": NAMES, "skeleton": SKELETON}]
    with open(os.path.join(root, "annotations.json"), "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": cats}, f)
    return root


@pytest.fixture(scope="module")
def quads(tmp_path_factory) -> str:
    return draw_quads_dataset(str(tmp_path_factory.mktemp("quads")), n_images=8, seed=0)


@pytest.fixture(scope="module")
def quads_val(tmp_path_factory) -> str:
    return draw_quads_dataset(str(tmp_path_factory.mktemp("quads_val")), n_images=4, seed=1, grey=True)


KEYPOINTS = [
    "--min-size", "96", "--max-size", "128", "--batch-size", "2", "--workers", "0", "--warmup-iters", "0",
    "--augment", "none", "--device", "cpu", "--seed", "0", "-q",
]  # fmt: skip


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# --------------------------------------------------------------------------------------------------------------
# Coordinates


def test_torchvision_keypoint_head_uses_continuous_coordinates():
    """torchvision encodes a keypoint into heatmap cell floor((x - x1) * 56 / w) and decodes a cell to its centre
    ((d + 0.5) * w / W + x1): continuous coordinates, COCO's, so the dataset passes them on unchanged. A heatmap
    peaked at the true point decodes to it within half a pixel and without bias."""
    from torchvision.models.detection.roi_heads import heatmaps_to_keypoints, keypoints_to_heatmap

    gen = torch.Generator().manual_seed(0)
    size = 56
    for w in (40.0, 56.0, 90.0):
        rois = torch.tensor([[10.0, 20.0, 10.0 + w, 20.0 + w]])
        xy = torch.rand(1, 400, 2, generator=gen) * (w - 2) + torch.tensor([11.0, 21.0])
        kps = torch.cat([xy, torch.full((1, 400, 1), 2.0)], dim=2)
        cells, valid = keypoints_to_heatmap(kps, rois, size)
        assert bool(valid.all())
        cx, cy = cells % size, cells // size
        ux, uy = (xy[..., 0] - 10.0) * size / w, (xy[..., 1] - 20.0) * size / w  # heatmap units, continuous
        assert bool(((ux >= cx) & (ux < cx + 1) & (uy >= cy) & (uy < cy + 1)).all())  # cell d spans [d, d + 1)
        # an ideal heatmap: a narrow Gaussian at the true point, cell centres at d + 0.5
        grid = torch.arange(size, dtype=torch.float32) + 0.5
        ux, uy = ux[0], uy[0]
        maps = -((grid[None, None, :] - ux[:, None, None]) ** 2 + (grid[None, :, None] - uy[:, None, None]) ** 2)
        pred, _ = heatmaps_to_keypoints(maps[None], rois)
        err = pred[0, :, :2] - xy[0]
        assert err.abs().max() <= 0.5 * max(1.0, w / size) + 0.05
        assert err.mean(0).abs().max() < 0.1  # no half-pixel bias


def test_dataset_targets_are_the_files_coordinates(quads, quads_val):
    from trainer.data.keypoints import CocoKeypoints

    ds = CocoKeypoints(quads)
    with open(os.path.join(quads, "annotations.json")) as f:
        data = json.load(f)
    image, target = ds[0]
    assert image.shape[0] == 3 and target["keypoints"].shape == (len(target["boxes"]), 5, 3)
    first = torch.tensor([a["keypoints"] for a in data["annotations"] if a["image_id"] == 1]).reshape(-1, 5, 3)
    assert torch.equal(target["keypoints"], first)
    assert ds.keypoint_names == NAMES and ds.skeleton == SKELETON and ds.flip_index is None
    visibility = torch.cat([ds.target(i, 96, 128)["keypoints"][..., 2].flatten() for i in range(len(ds))])
    assert {0.0, 1.0, 2.0} <= set(visibility.tolist())  # the fixture has all three
    grey_image, _ = CocoKeypoints(quads_val)[0]
    assert grey_image.shape[0] == 3  # greyscale JPEGs come as 3 channels


def test_dataset_checks_keypoints_outside_image(make_quads):
    from trainer.data.datasets import DataError, describe_skips
    from trainer.data.keypoints import CocoKeypoints

    root = make_quads()
    path = os.path.join(root, "annotations.json")
    with open(path) as f:
        data = json.load(f)
    data["annotations"][0]["keypoints"][0:3] = [500.0, 10.0, 2]
    with open(path, "w") as f:
        json.dump(data, f)
    with pytest.raises(DataError, match="outside the 128x96 image"):
        CocoKeypoints(root)
    ds = CocoKeypoints(root, on_problem="skip")
    assert describe_skips("q", ds.skipped) == "q: skipped 1 (1 x bad_keypoints)"
    kept = {a["id"] for a in ds.coco_ground_truth()["annotations"]}
    assert data["annotations"][0]["id"] not in kept and len(kept) == len(data["annotations"]) - 1


@pytest.fixture
def make_quads(tmp_path):
    counter = iter(range(1000))
    return lambda **kw: draw_quads_dataset(str(tmp_path / f"q{next(counter)}"), **kw)


# --------------------------------------------------------------------------------------------------------------
# Augmentation


def _dots(height: int, width: int, points: list[tuple[float, float]]):
    """A black image with a 3x3 white dot centred on each point (points at pixel centres)."""
    from torchvision import tv_tensors

    img = torch.zeros(3, height, width, dtype=torch.uint8)
    for x, y in points:
        i, j = int(y), int(x)
        img[:, i - 1 : i + 2, j - 1 : j + 2] = 255
    kps = torch.tensor([[x, y, 2.0] for x, y in points]).reshape(1, -1, 3)
    box = torch.tensor([[0.0, 0.0, width, height]])
    box = tv_tensors.BoundingBoxes(box, format="XYXY", canvas_size=(height, width))
    target = {"boxes": box, "labels": torch.tensor([1]), "keypoints": kps}
    return tv_tensors.Image(img), target


def _centroid(image: torch.Tensor, x: float, y: float, radius: int = 4) -> tuple[float, float]:
    """Brightness-weighted centre, in continuous coordinates, of the pixels within ``radius`` of (x, y)."""
    gray = image.float().mean(0)
    i0, j0 = max(0, int(y) - radius), max(0, int(x) - radius)
    patch = gray[i0 : int(y) + radius + 1, j0 : int(x) + radius + 1]
    rows, cols = torch.meshgrid(torch.arange(patch.shape[0]), torch.arange(patch.shape[1]), indexing="ij")
    total = patch.sum()
    return float((patch * (cols + 0.5)).sum() / total) + j0, float((patch * (rows + 0.5)).sum() / total) + i0


@pytest.mark.parametrize("seed", range(6))
def test_geometric_augmentation_moves_keypoints_with_the_pixels(seed):
    from trainer.data.transforms import keypoint_transforms

    torch.manual_seed(seed)
    points = [(12.5 + 20 * i, 10.5 + 18 * j) for i in range(6) for j in range(5)]  # 30 dots, 20 px apart
    image, target = _dots(96, 128, points)
    policy = [("scale_crop", {"scale": [0.6, 0.95]}),
              ("affine", {"p": 1.0, "degrees": 25.0, "translate": 0.1, "scale": [0.8, 1.2], "shear": 5.0})]  # fmt: skip
    out_image, out = keypoint_transforms(policy)(image, target)
    assert out_image.dtype == torch.float32 and out_image.shape == (3, 96, 128)
    kps = out["keypoints"][0]
    moved = 0
    for x, y, v in kps.tolist():
        if v == 0:
            assert x == 0 and y == 0  # cut off: COCO's "not labelled"
            continue
        if not (5 <= x <= 123 and 5 <= y <= 91):
            continue  # a dot half cut by the border has a shifted centroid
        cx, cy = _centroid(out_image, x, y)
        assert abs(cx - x) <= 1.0 and abs(cy - y) <= 1.0, (seed, (x, y), (cx, cy))
        moved += 1
    assert moved >= 5


def test_flip_needs_a_flip_map_and_renames_keypoints():
    from trainer.data.datasets import DataError
    from trainer.data.transforms import keypoint_transforms

    with pytest.raises(DataError, match="refused for keypoints"):
        keypoint_transforms("strong")
    image, target = _dots(40, 60, [(10.5, 20.5), (50.5, 20.5), (30.5, 5.5)])
    flip = keypoint_transforms([("hflip", {"p": 1.0})], flip_index=[1, 0, 2])
    out_image, out = flip(image, target)
    # the left dot's mirror image (x = 60 - 10.5) is now keypoint 1 (its partner), and vice versa
    assert out["keypoints"][0].tolist() == [[9.5, 20.5, 2.0], [49.5, 20.5, 2.0], [29.5, 5.5, 2.0]]
    for x, y, _ in out["keypoints"][0].tolist():
        cx, cy = _centroid(out_image, x, y)
        assert abs(cx - x) < 0.01 and abs(cy - y) < 0.01


# --------------------------------------------------------------------------------------------------------------
# Model, training and evaluation through the CLI


def test_keypoint_model_builder():
    from trainer.models.build import ModelError, get_keypoint_model

    model = get_keypoint_model("keypointrcnn_mobilenet_v3_large_fpn", 1, 54, min_size=64, max_size=96).eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 80)])[0]
    assert out["keypoints"].shape[1:] == (54, 3)
    assert model.roi_heads.keypoint_predictor.kps_score_lowres.out_channels == 54
    assert len(model.roi_heads.keypoint_head) == 8  # 4 convolutions with their ReLUs
    # from random weights the backbone normalises with trained BatchNorm, not frozen identity statistics
    norms = {type(m).__name__ for m in model.backbone.body.modules() if type(m).__name__.endswith("Norm2d")}
    assert norms == {"BatchNorm2d"}
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ModelError, match="unknown keypoint model"):
        get_keypoint_model("keypointrcnn_tiny", 1, 4)


def test_keypoint_model_weights_offline(tmp_path, monkeypatch):
    """``imagenet`` reads the backbone from torchvision's local cache (frozen BatchNorm, as torchvision does for
    pretrained backbones); a weights file fills every tensor that fits and leaves a head for other keypoints
    fresh."""
    import torchvision

    from trainer.models.build import WeightsError, get_keypoint_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsError, match="not in torchvision's cache"):
        get_keypoint_model("keypointrcnn_mobilenet_v3_large_fpn", 1, 4, "imagenet")
    os.makedirs(tmp_path / "torch" / "hub" / "checkpoints")
    cached = torchvision.models.mobilenet_v3_large().state_dict()  # stands in for the ImageNet file
    torch.save(cached, tmp_path / "torch" / "hub" / "checkpoints" / "mobilenet_v3_large-8738ca79.pth")
    model = get_keypoint_model("keypointrcnn_mobilenet_v3_large_fpn", 1, 4, "imagenet")
    assert torch.equal(model.backbone.body["0"][0].weight, cached["features.0.0.weight"])
    assert not model.backbone.body["0"][0].weight.requires_grad  # early stages stay frozen (3 trainable)

    source = get_keypoint_model("keypointrcnn_mobilenet_v3_large_fpn", 1, 5)
    torch.save({"model": source.state_dict()}, tmp_path / "five.pth")
    model = get_keypoint_model("keypointrcnn_mobilenet_v3_large_fpn", 1, 54, str(tmp_path / "five.pth"))
    assert torch.equal(model.roi_heads.keypoint_head[0].weight, source.roi_heads.keypoint_head[0].weight)
    assert model.roi_heads.keypoint_predictor.kps_score_lowres.out_channels == 54


def test_train_keypoints_resume_and_eval(quads, quads_val, tmp_path):
    run = str(tmp_path / "run")
    result = invoke("train", "keypoints", "--train", quads, "--val", quads_val, "--out", run, "--epochs", "2",
                    "--lr", "0.01", *KEYPOINTS)  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["metric_name"] == "kp_AP" and summary["epochs"] == 2
    with open(os.path.join(run, "metrics.jsonl")) as f:
        epochs = [r for r in map(json.loads, f) if r["kind"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert "loss_keypoint" in epochs[0]["train"] and 0.0 <= epochs[0]["val"]["kp_AP"] <= 1.0

    from trainer.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(os.path.join(run, "checkpoint.pth"))
    assert ckpt.task == "keypoints" and ckpt["num_keypoints"] == 5 and ckpt["keypoint_names"] == NAMES
    assert ckpt["skeleton"] == SKELETON and ckpt["min_size"] == 96 and ckpt["oks_sigma"] > 0

    # resume continues after the last epoch
    result = invoke("train", "keypoints", "--train", quads, "--val", quads_val, "--out", run, "--epochs", "3",
                    "--resume", *KEYPOINTS)  # fmt: skip
    assert result.exit_code == 0, result.output
    with open(os.path.join(run, "metrics.jsonl")) as f:
        assert [r["epoch"] for r in map(json.loads, f) if r["kind"] == "epoch"] == [0, 1, 2]

    result = invoke("eval", "--model", run, "--data", quads_val, "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    out_dir = os.path.join(run, "eval", os.path.basename(quads_val))
    with open(os.path.join(out_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["task"] == "keypoints" and metrics["images"] == 4
    keypoints = metrics["keypoints"]
    for key in ("AP", "AP50", "AP75"):
        assert 0.0 <= keypoints["oks"][key] <= 1.0
    assert set(metrics["box"]) >= {"mAP", "AP50"} and metrics["oks_sigma"] > 0
    errors = keypoints["errors"]
    assert errors["mean_px"] is None or errors["mean_px"] >= 0
    assert set(errors["pck"]) == {"2px", "5px"} and all(0 <= v <= 1 for v in errors["pck"].values())
    assert [row["name"] for row in keypoints["per_keypoint"]] == NAMES
    assert keypoints["pose"] is None  # no board calibration records in this data
    for name in ("keypoints.json", "per_keypoint.csv", "keypoints_overlay.png"):
        assert os.path.getsize(os.path.join(out_dir, name)) > 0
    with open(os.path.join(out_dir, "keypoints.json")) as f:
        results = json.load(f)
    assert results and all(len(r["keypoints"]) == 15 and len(r["bbox"]) == 4 for r in results)
    assert "keypoints on" in result.output and "OKS AP" in result.output


def test_keypoint_cli_errors(quads, tmp_path):
    result = CliRunner().invoke(cli, ["train", "keypoints", "--train", quads, "--out", str(tmp_path / "a"),
                                      *KEYPOINTS, "--augment", "hflip"])  # fmt: skip
    assert result.exit_code == 2 and "refused for keypoints" in result.output
    result = CliRunner().invoke(cli, ["train", "keypoints", "--train", quads, "--out", str(tmp_path / "b"),
                                      *KEYPOINTS, "--model", "keypointrcnn_tiny"])  # fmt: skip
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: unknown keypoint model 'keypointrcnn_tiny'; choose from keypointrcnn_mobilenet_v3_large_fpn, "
        "keypointrcnn_resnet50_fpn"
    ]


def test_keypoint_run_spec_defaults(tmp_path):
    from trainer.training.spec import KeypointOptions, RunError, RunSpec

    spec = RunSpec.build("keypoints", train=["boards/"], out=str(tmp_path / "r"))
    assert spec.model == "keypointrcnn_mobilenet_v3_large_fpn" and spec.augment == "keypoints"
    assert isinstance(spec.options, KeypointOptions) and spec.options.oks_sigma is None
    assert spec.to_args()["min_size"] == 320
    with pytest.raises(RunError, match="unknown setting"):
        RunSpec.build("keypoints", train=["boards/"], out="r", masks=True)


def draw_board_dataset(root: str, n_images: int = 2, cols: int = 4, rows: int = 3, square_mm: float = 20.0) -> str:
    """A grid of ``cols`` x ``rows`` white dots, the inner corners of a board seen by a known camera, with the
    ``board`` calibration record of each image (OpenCV's K, rvec, tvec; COCO coordinates are OpenCV's + 0.5)."""
    import cv2

    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    height, width = 96, 128
    K = np.array([[120.0, 0, 64], [0, 120.0, 48], [0, 0, 1]])
    idx = np.arange(cols * rows)
    board = np.stack([idx % cols, idx // cols, np.zeros(len(idx))], axis=1) * square_mm
    images, anns = [], []
    for i in range(n_images):
        rvec, tvec = np.array([0.1 * i, -0.1, 0.05]), np.array([-30.0 + 5 * i, -20.0, 300.0])
        pix, _ = cv2.projectPoints(board, rvec, tvec, K, np.zeros(5))
        pts = pix.reshape(-1, 2) + 0.5
        img = np.full((height, width, 3), 30, np.uint8)
        for x, y in pts:
            img[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2] = 255
        Image.fromarray(img).save(os.path.join(root, "images", f"{i}.png"))
        (x0, y0), (x1, y1) = pts.min(0) - 4, pts.max(0) + 4
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": width, "height": height, "board": {
            "K": K.tolist(), "dist": [0.0] * 5, "rvec": rvec.tolist(), "tvec_mm": tvec.tolist(),
            "square_mm": square_mm}})  # fmt: skip
        anns.append({
            "id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "area": float((x1 - x0) * (y1 - y0)),
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], "num_keypoints": len(pts),
            "keypoints": [round(float(v), 3) for x, y in pts for v in (x, y, 2)],
        })  # fmt: skip
    names = [f"corner_{k}" for k in range(cols * rows)]
    category = {"id": 1, "name": "board", "keypoints": names, "skeleton": []}
    info = {"board": {"inner_corners": [cols, rows], "square_mm": square_mm}}
    data = {"info": info, "images": images, "annotations": anns, "categories": [category]}
    with open(os.path.join(root, "annotations.json"), "w") as f:
        json.dump(data, f)
    return root


def test_eval_reports_board_pose_when_images_carry_calibration(tmp_path):
    boards = draw_board_dataset(str(tmp_path / "boards"))
    run = str(tmp_path / "run")
    result = invoke("train", "keypoints", "--train", boards, "--out", run, "--epochs", "1", *KEYPOINTS,
                    "--augment", "keypoints")  # the default preset, every step on  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke("eval", "--model", run, "--data", boards, "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    with open(os.path.join(run, "eval", "boards", "metrics.json")) as f:
        pose = json.load(f)["keypoints"]["pose"]
    assert pose["images"] == 2 and pose["solved"] + pose["not_solved"] == 2
    assert len(pose["rows"]) + len(pose["failed"]) == 2
    for row in pose["rows"]:
        assert row["rotation_deg"] >= 0 and row["translation_mm"] >= 0
    with open(os.path.join(run, "eval", "boards", "board_pose.csv")) as f:
        assert len(f.read().strip().splitlines()) == 3  # header and one row per image
