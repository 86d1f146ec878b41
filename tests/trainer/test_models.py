"""Models by name; weights only from the local cache or a file, never from the network."""

import os
import time

import pytest
import torch

from trainer.models.build import WeightsError, get_classification_model, get_detection_model, load_weights_file


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.mark.parametrize(
    "build",
    [
        lambda: get_classification_model("resnet18", 3, "imagenet"),
        lambda: get_detection_model("fasterrcnn_mobilenet_v3_large_320_fpn", 3, "coco"),
        lambda: get_detection_model("fasterrcnn_mobilenet_v3_large_320_fpn", 3, "imagenet"),
    ],
)
def test_uncached_named_weights_fail_fast_saying_how_to_provide_them(empty_cache, build):
    start = time.perf_counter()
    with pytest.raises(WeightsError) as info:
        build()
    assert time.perf_counter() - start < 10  # no network attempt, no hang
    message = str(info.value)
    assert "https://download.pytorch.org/models/" in message and str(empty_cache) in message
    assert "--weights" in message
    assert not os.path.exists(empty_cache)  # nothing downloaded or created


def test_cached_weights_are_used_and_the_head_replaced(empty_cache):
    donor = get_classification_model("resnet18", 1000, "none")
    empty_cache.mkdir(parents=True)
    torch.save(donor.state_dict(), empty_cache / "resnet18-f37072fd.pth")
    model = get_classification_model("resnet18", 3, "imagenet", freeze_backbone=True)
    assert torch.equal(model.conv1.weight, donor.conv1.weight)
    assert model.fc.out_features == 3
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]


def test_weights_file_keeps_fitting_tensors_and_reports_the_rest(tmp_path):
    donor = get_classification_model("resnet18", 5, "none")
    path = tmp_path / "w.pth"
    torch.save({"task": "classify", "model": donor.state_dict()}, path)
    model = get_classification_model("resnet18", 3, "none")
    report = load_weights_file(model, str(path))
    assert report["skipped"] == ["fc.bias", "fc.weight"]
    assert torch.equal(model.layer1[0].conv1.weight, donor.layer1[0].conv1.weight)
    with pytest.raises(WeightsError, match="no such file"):
        get_classification_model("resnet18", 3, str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="cannot read"):
        get_classification_model("resnet18", 3, str(tmp_path / "junk.pth"))


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_b0", "resnet34"])
def test_classifiers_build_and_run(name):
    model = get_classification_model(name, 4, "none").eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 4)


def test_detector_freezing_options():
    frozen = get_detection_model("fasterrcnn_mobilenet_v3_large_320_fpn", 2, "none", freeze_backbone=True)
    assert not any(p.requires_grad for p in frozen.backbone.body.parameters())
    assert all(p.requires_grad for p in frozen.roi_heads.parameters())
    # the same stages torchvision freezes for pretrained backbones
    for name, layers in (
        ("fasterrcnn_mobilenet_v3_large_320_fpn", 0),
        ("fasterrcnn_mobilenet_v3_large_320_fpn", 3),
        ("fasterrcnn_resnet50_fpn", 2),
    ):
        ours = get_detection_model(name, 2, "none", trainable_backbone_layers=layers)
        got = sorted(n for n, p in ours.backbone.body.named_parameters() if p.requires_grad)
        assert got == _reference_body(name, layers), (name, layers)


@pytest.mark.parametrize("name", ["retinanet_resnet50_fpn_v2", "fcos_resnet50_fpn"])
def test_one_stage_heads_are_replaced_for_our_classes(name):
    from torchvision.models import get_model

    from trainer.models.build import replace_detection_head

    model = get_model(name, weights=None, weights_backbone=None, num_classes=91, min_size=64, max_size=64)
    replace_detection_head(model, 3)
    model.train()
    target = {"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]]), "labels": torch.tensor([2])}
    losses = model([torch.rand(3, 64, 64)], [target])
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 64)])[0]
    assert out["labels"].numel() == 0 or int(out["labels"].max()) < 3


def _reference_body(name: str, layers: int) -> list[str]:
    """Trainable backbone parameter names when torchvision itself applies ``trainable_layers``."""
    from torchvision.models import mobilenet_v3_large, resnet50
    from torchvision.models.detection.backbone_utils import _mobilenet_extractor, _resnet_fpn_extractor

    if "mobilenet" in name:
        body = _mobilenet_extractor(mobilenet_v3_large(), True, layers).body
    else:
        body = _resnet_fpn_extractor(resnet50(), layers).body
    return sorted(n for n, p in body.named_parameters() if p.requires_grad)


def test_cached_coco_detector_gets_heads_for_our_classes(empty_cache):
    from torchvision.models import get_model, get_model_weights

    name = "fasterrcnn_mobilenet_v3_large_320_fpn"
    donor = get_model(name, weights=None, weights_backbone=None, num_classes=91)
    empty_cache.mkdir(parents=True)
    torch.save(donor.state_dict(), empty_cache / os.path.basename(get_model_weights(name).DEFAULT.url))
    model = get_detection_model(name, 3, "coco")
    assert model.roi_heads.box_predictor.cls_score.out_features == 4  # 3 classes + background
    assert torch.equal(model.rpn.head.conv[0][0].weight, donor.rpn.head.conv[0][0].weight)
