"""Datasets: bad input is an error or a listed skip; augmentation moves boxes and masks with the pixels."""

import json
import os

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from trainer.data.datasets import (
    CocoCrops,
    CocoDetection,
    DataError,
    ImageFolderDataset,
    align_categories,
    classification_dataset,
    describe_skips,
)
from trainer.data.transforms import classification_transforms, detection_transforms, parse_policy


def _edit(root, fn):
    path = os.path.join(root, "annotations.json")
    with open(path) as f:
        data = json.load(f)
    fn(data)
    with open(path, "w") as f:
        json.dump(data, f)


def test_detection_sample_matches_the_drawing(shapes_dataset):
    ds = CocoDetection(shapes_dataset, masks=True)
    assert len(ds) == 12 and ds.skipped == []
    image, target = ds[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 96, 96)
    ann = ds.anns[0][0]
    x, y, w, h = ann["bbox"]
    assert target["boxes"][0].tolist() == [x, y, x + w, y + h]
    assert target["labels"][0] == ds.label_of[ann["category_id"]]
    # the mask covers the drawn colour
    mask = target["masks"][0].bool()
    colour = (220, 40, 40) if ann["category_id"] == 1 else (40, 200, 60)
    drawn = (image.permute(1, 2, 0) == torch.tensor(colour, dtype=torch.uint8)).all(-1)
    assert (mask & drawn).sum() >= 0.85 * drawn[y : y + h, x : x + w].sum()


def test_empty_images_are_kept(shapes_dataset):
    ds = CocoDetection(shapes_dataset)
    empty = [i for i in range(len(ds)) if not ds.anns[i]]
    assert empty  # every 6th image was drawn without objects
    _, target = ds[empty[0]]
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)


@pytest.mark.parametrize(
    "breakage, kind",
    [
        (lambda d: d["annotations"][0].update(bbox=[5, 5, 0, 10]), "bad_bbox"),
        (lambda d: d["annotations"][0].update(bbox=[80, 80, 40, 40]), "bbox_outside_image"),
        (lambda d: d["annotations"][0].update(category_id=99), "unknown_category"),
        (lambda d: d["images"][0].update(file_name="nope.png"), "missing_file"),
    ],
)
def test_bad_annotations_raise_or_are_listed(make_shapes, breakage, kind):
    root = make_shapes(n_images=3)
    _edit(root, breakage)
    with pytest.raises(DataError, match=kind):
        CocoDetection(root)
    ds = CocoDetection(root, on_problem="skip")
    assert [p.kind for p in ds.skipped if p.kind != "dropped_with_image"] == [kind]
    assert kind in describe_skips("x", ds.skipped)


def test_corrupt_image_file_is_reported(make_shapes):
    root = make_shapes(n_images=3)
    path = os.path.join(root, "images", "000001.png")
    with open(path, "r+b") as f:
        f.truncate(200)
    with pytest.raises(DataError, match="truncated"):
        CocoDetection(root)
    ds = CocoDetection(root, on_problem="skip")
    assert len(ds) == 2 and any(p.kind == "bad_file" for p in ds.skipped)
    # a file that passes the cheap check but cannot be decoded fails when read, naming the file
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10 + b"IEND\xaeB`\x82")
    ds = CocoDetection(root)
    with pytest.raises(DataError, match="000001.png"):
        ds[1]


def test_mismatched_class_lists_are_an_error(make_shapes):
    a, b = make_shapes(n_images=2), make_shapes(n_images=2)
    _edit(b, lambda d: d["categories"][1].update(name="ball"))
    with pytest.raises(DataError, match="class lists differ"):
        align_categories(CocoDetection(a).categories, CocoDetection(b), a, b)


def test_crops_and_imagefolder_share_labels(shapes_dataset, tmp_path):
    crops = CocoCrops(shapes_dataset, padding=0.0)
    image, label = crops[0]
    _, ann = crops.annotation(0)
    assert image.shape[-2:] == (ann["bbox"][3], ann["bbox"][2])
    assert crops.meta[0] == (ann["image_id"], ann["id"])
    # an ImageFolder with the same names in another order is renumbered to the COCO order
    from PIL import Image

    for name in ("disc", "square"):
        os.makedirs(tmp_path / name)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name / "a.png")
    folder = classification_dataset(str(tmp_path))
    assert isinstance(folder, ImageFolderDataset) and folder.targets == [0, 1]
    align_categories(crops.categories, folder, "coco", "folder")
    assert folder.targets == [1, 0] and folder.categories == crops.categories
    (tmp_path / "disc" / "b.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="unreadable"):
        ImageFolderDataset(str(tmp_path))
    assert len(ImageFolderDataset(str(tmp_path), on_problem="skip").skipped) == 1


def test_flip_and_crop_move_boxes_and_masks_with_pixels():
    image = torch.zeros(3, 40, 60, dtype=torch.uint8)
    image[:, 10:20, 5:15] = 255
    mask = torch.zeros(1, 40, 60, dtype=torch.uint8)
    mask[:, 10:20, 5:15] = 1
    target = {
        "boxes": tv_tensors.BoundingBoxes([[5, 10, 15, 20]], format="XYXY", canvas_size=(40, 60)),
        "labels": torch.tensor([1]),
        "masks": tv_tensors.Mask(mask),
        "area": torch.tensor([100.0]),
        "iscrowd": torch.tensor([0]),
    }
    flip = detection_transforms([("hflip", {"p": 1.0})])
    out, t = flip(tv_tensors.Image(image), target)
    assert t["boxes"].tolist() == [[45, 10, 55, 20]]
    assert out[0, 15, 50] == 1.0 and out[0, 15, 10] == 0.0
    assert t["masks"][0, 15, 50] == 1 and t["masks"][0, 15, 10] == 0
    for seed in range(5):  # random crops: the box always frames the bright pixels it kept
        torch.manual_seed(seed)
        crop = detection_transforms([("scale_crop", {"scale": [0.5, 0.9]})])
        out, t = crop(tv_tensors.Image(image), target)
        assert out.shape[-2:] == (40, 60)
        for (x1, y1, x2, y2), m in zip(t["boxes"].tolist(), t["masks"], strict=True):
            ys, xs = torch.nonzero(m, as_tuple=True)
            assert abs(xs.min() - x1) <= 2 and abs(xs.max() + 1 - x2) <= 2
            assert abs(ys.min() - y1) <= 2 and abs(ys.max() + 1 - y2) <= 2


def test_recipes_presets_and_weather():
    assert [op for op, _ in parse_policy("strong")] == ["hflip", "scale_crop", "color_jitter", "blur", "noise"]
    steps = parse_policy("[hflip, {noise: {std: 0.1}}]")
    assert steps[1] == ("noise", {"p": 0.3, "std": 0.1})
    with pytest.raises(ValueError, match="unknown augmentation"):
        parse_policy("[sharpen]")
    with pytest.raises(ValueError, match="unknown parameter"):
        parse_policy("{blur: {radius: 3}}")
    tf = detection_transforms([("rain", {"p": 1.0, "intensity": 0.8}), ("snow", {"p": 1.0, "intensity": 0.8})])
    image = tv_tensors.Image(torch.full((3, 48, 64), 60, dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes([[1, 1, 9, 9]], format="XYXY", canvas_size=(48, 64))
    out, t = tf(image, {"boxes": boxes, "labels": torch.tensor([1])})
    assert out.dtype == torch.float32 and out.mean() > 60 / 255 + 0.01  # streaks and flakes are light
    assert t["boxes"].tolist() == [[1, 1, 9, 9]]
    source = tv_tensors.Image(torch.randint(0, 255, (3, 50, 40), dtype=torch.uint8))
    assert classification_transforms(32, "weather")(source).shape == (3, 32, 32)
    x = classification_transforms(32, "basic", grayscale=True)(source)
    assert x.shape == (3, 32, 32) and torch.allclose(x[0] * 0.229 + 0.485, x[1] * 0.224 + 0.456, atol=1e-4)
