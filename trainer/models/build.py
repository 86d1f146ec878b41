"""torchvision models by name, with weights that never come from the network.

``weights`` is ``none`` (random init), ``imagenet`` (a pretrained backbone/classifier), ``coco`` (a detector
trained on COCO, heads replaced for our classes) or a file path (a state_dict or a Blendset checkpoint).
Named weights are read from torchvision's cache (``$TORCH_HOME/hub/checkpoints``, default
``~/.cache/torch/hub/checkpoints``). When the file is not there we stop with ``WeightsError`` saying which file to
fetch and where to put it: this machine has no network, and a download must never hang or land in the repo.
"""

from __future__ import annotations

import os
import typing

import torch
from torch import nn

from shared.errors import BlendsetError

DETECTION_MODELS = (
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "maskrcnn_resnet50_fpn",
    "maskrcnn_resnet50_fpn_v2",
    "retinanet_resnet50_fpn",
    "retinanet_resnet50_fpn_v2",
    "fcos_resnet50_fpn",
)
KEYPOINT_MODELS = (
    "keypointrcnn_mobilenet_v3_large_fpn",  # CPU-sized: MobileNetV3-Large FPN, a 4 x 128 keypoint head
    "keypointrcnn_resnet50_fpn",  # torchvision's (ResNet-50 FPN, 8 x 512 head)
)
CLASSIFICATION_MODELS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "vgg16",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "small_cnn",  # no BatchNorm/Dropout: DDP follows the 1-process trajectory (trainer/models/small_cnn.py)
)


class ModelError(BlendsetError, ValueError):
    """An unknown model name or a setting the model cannot take."""


class WeightsError(BlendsetError, RuntimeError):
    """Weights that cannot be provided offline, or a weights file that does not fit the model."""


def is_mask_model(name: str) -> bool:
    return name.startswith("maskrcnn")


def cached_weights_file(weights) -> str:
    """Path of a torchvision weights enum in the local cache, or WeightsError explaining how to get it there."""
    filename = os.path.basename(weights.url)
    path = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
    if not os.path.isfile(path):
        raise WeightsError(
            f"{weights} is not in torchvision's cache and this machine is offline.\n"
            f"Download {weights.url} on a connected machine and copy it to {path} "
            "(or set TORCH_HOME to a folder holding hub/checkpoints/" + filename + "), "
            "or pass --weights /path/to/file.pth, or --weights none to start from random weights."
        )
    return path


def _enum(builder, param: str):
    import inspect

    annotation = inspect.signature(builder).parameters[param].annotation
    for arg in typing.get_args(annotation) or (annotation,):
        if isinstance(arg, type) and hasattr(arg, "DEFAULT"):
            return arg
    raise WeightsError(f"{builder.__name__} has no {param} enum")  # pragma: no cover - torchvision change


def get_detection_model(
    name: str,
    num_classes: int,
    weights: str = "none",
    trainable_backbone_layers: int | None = None,
    freeze_backbone: bool = False,
    min_size: int = 800,
    max_size: int = 1333,
) -> nn.Module:
    """A torchvision detector for ``num_classes`` object classes (background is added here)."""
    from torchvision.models import get_model, get_model_builder, get_model_weights

    if name not in DETECTION_MODELS:
        raise ModelError(f"unknown detection model {name!r}; choose from {', '.join(DETECTION_MODELS)}")
    builder = get_model_builder(name)
    kwargs = {"min_size": min_size, "max_size": max_size}
    if name.endswith("320_fpn") and (min_size, max_size) == (800, 1333):
        kwargs = {}  # the 320 model has its own low-resolution defaults
    if weights == "coco":
        enum = get_model_weights(name).DEFAULT
        cached_weights_file(enum)
        model = get_model(name, weights=enum, trainable_backbone_layers=trainable_backbone_layers, **kwargs)
        replace_detection_head(model, num_classes + 1)
    elif weights == "imagenet":
        enum = _enum(builder, "weights_backbone").DEFAULT
        cached_weights_file(enum)
        model = get_model(
            name,
            weights=None,
            weights_backbone=enum,
            num_classes=num_classes + 1,
            trainable_backbone_layers=trainable_backbone_layers,
            **kwargs,
        )
    else:
        model = get_model(name, weights=None, weights_backbone=None, num_classes=num_classes + 1, **kwargs)
        if weights not in ("none", None):
            load_weights_file(model, weights)
    _freeze(model, weights, freeze_backbone, trainable_backbone_layers)
    return model


def _freeze(model: nn.Module, weights: str | None, freeze_backbone: bool, trainable: int | None) -> None:
    """``--freeze-backbone``, else ``--trainable-backbone-layers`` for weights torchvision did not already freeze
    (its builders apply the count themselves for ``coco`` and ``imagenet``)."""
    if freeze_backbone:
        for p in model.backbone.body.parameters():
            p.requires_grad_(False)
    elif trainable is not None and weights not in ("coco", "imagenet"):
        _freeze_early_layers(model, trainable)


def _freeze_early_layers(model: nn.Module, trainable: int) -> None:
    """Honour ``--trainable-backbone-layers`` also for random or file weights (torchvision ignores it then),
    counting stages the way torchvision does: ResNet layer4..conv1, MobileNetV3 stages split at the blocks that
    reduce resolution."""
    body = model.backbone.body
    children = list(body.named_children())
    names = [n for n, _ in children]
    if names and names[0] == "conv1":  # ResNet: conv1 bn1 layer1..layer4
        stages = ["layer4", "layer3", "layer2", "layer1", "conv1"]
        if not 0 <= trainable <= len(stages):
            raise ModelError(f"--trainable-backbone-layers must be in 0..{len(stages)}, got {trainable}")
        keep = set(stages[:trainable]) | ({"bn1"} if "conv1" in stages[:trainable] else set())
        frozen = [child for n, child in children if n not in keep]
    else:  # MobileNetV3 features
        blocks = [child for _, child in children]
        starts = [0] + [i for i, b in enumerate(blocks) if getattr(b, "_is_cn", False)] + [len(blocks) - 1]
        if not 0 <= trainable <= len(starts):
            raise ModelError(f"--trainable-backbone-layers must be in 0..{len(starts)}, got {trainable}")
        first_trained = len(blocks) if trainable == 0 else starts[len(starts) - trainable]
        frozen = blocks[:first_trained]
    for child in frozen:
        for p in child.parameters():
            p.requires_grad_(False)


def replace_detection_head(model: nn.Module, num_classes: int) -> None:
    """Swap the class-specific output layers of a COCO detector for ``num_classes`` (background included)."""
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    if hasattr(model, "roi_heads"):
        in_features = model.roi_heads.box_predictor.cls_score.in_features
        model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes)
        if getattr(model.roi_heads, "mask_predictor", None) is not None:
            in_channels = model.roi_heads.mask_predictor.conv5_mask.in_channels
            model.roi_heads.mask_predictor = MaskRCNNPredictor(in_channels, 256, num_classes)
        return
    head = model.head.classification_head  # RetinaNet / FCOS: only the logits layer is class-specific
    old = head.cls_logits
    num_anchors = old.out_channels // head.num_classes
    new = nn.Conv2d(old.in_channels, num_anchors * num_classes, 3, 1, 1)
    nn.init.normal_(new.weight, std=0.01)
    nn.init.constant_(new.bias, float(old.bias.detach().mean()))
    head.cls_logits = new
    head.num_classes = num_classes


def get_keypoint_model(
    name: str,
    num_classes: int,
    num_keypoints: int,
    weights: str = "none",
    trainable_backbone_layers: int | None = None,
    min_size: int = 320,
    max_size: int = 512,
    freeze_backbone: bool = False,
) -> nn.Module:
    """A Keypoint R-CNN for ``num_classes`` object classes (background is added here) with ``num_keypoints``
    keypoints per object.

    ``keypointrcnn_mobilenet_v3_large_fpn`` is Keypoint R-CNN on torchvision's MobileNetV3-Large FPN backbone
    (as ``fasterrcnn_mobilenet_v3_large_fpn``: two feature levels plus pooling, 15 anchors per place) with a
    lighter keypoint head, 4 convolutions of 128 channels instead of 8 of 512, and 128 sampled RoIs per image
    instead of 512, so at most 32 positive boxes per image reach the keypoint head: it trains from random
    weights on a laptop CPU. ``keypointrcnn_resnet50_fpn`` is torchvision's model unchanged.

    ``weights``: ``none``, ``imagenet`` (the backbone, from torchvision's local cache), ``coco`` (the person
    keypoint model, resnet50 only; box and keypoint predictors replaced when classes or keypoints differ) or a
    file (a state_dict or a Blendset checkpoint).
    """
    from torchvision.models import get_model, get_model_weights
    from torchvision.models.detection.keypoint_rcnn import KeypointRCNNPredictor

    if name not in KEYPOINT_MODELS:
        raise ModelError(f"unknown keypoint model {name!r}; choose from {', '.join(KEYPOINT_MODELS)}")
    if num_keypoints < 1:
        raise ModelError(f"a keypoint model needs at least one keypoint, got {num_keypoints}")
    kwargs = {"min_size": min_size, "max_size": max_size}
    if name == "keypointrcnn_mobilenet_v3_large_fpn":
        if weights == "coco":
            raise WeightsError(f"{name} has no COCO weights; use --weights imagenet, none or a file")
        model = _keypointrcnn_mobilenet(num_classes + 1, num_keypoints, weights, trainable_backbone_layers, kwargs)
    elif weights == "coco":
        enum = get_model_weights(name).DEFAULT
        cached_weights_file(enum)
        model = get_model(name, weights=enum, trainable_backbone_layers=trainable_backbone_layers, **kwargs)
        if num_classes + 1 != model.roi_heads.box_predictor.cls_score.out_features:
            replace_detection_head(model, num_classes + 1)
        if num_keypoints != model.roi_heads.keypoint_predictor.kps_score_lowres.out_channels:
            in_channels = model.roi_heads.keypoint_predictor.kps_score_lowres.in_channels
            model.roi_heads.keypoint_predictor = KeypointRCNNPredictor(in_channels, num_keypoints)
    else:
        backbone = None
        if weights == "imagenet":
            from torchvision.models import ResNet50_Weights

            backbone = ResNet50_Weights.IMAGENET1K_V1
            cached_weights_file(backbone)
        model = get_model(
            name, weights=None, weights_backbone=backbone, num_classes=num_classes + 1, num_keypoints=num_keypoints,
            trainable_backbone_layers=trainable_backbone_layers if backbone is not None else None, **kwargs,
        )  # fmt: skip
    if weights not in ("none", None, "coco", "imagenet"):
        load_weights_file(model, weights)
    _freeze(model, weights, freeze_backbone, trainable_backbone_layers)
    return model


def _keypointrcnn_mobilenet(num_classes: int, num_keypoints: int, weights: str, trainable_layers, kwargs) -> nn.Module:
    from torchvision.models import MobileNet_V3_Large_Weights
    from torchvision.models.detection import KeypointRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import mobilenet_backbone
    from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor
    from torchvision.ops.misc import FrozenBatchNorm2d

    backbone_weights = None
    if weights == "imagenet":
        backbone_weights = MobileNet_V3_Large_Weights.IMAGENET1K_V1
        cached_weights_file(backbone_weights)
    # as torchvision's fasterrcnn_mobilenet_v3_large_fpn: from random weights all 6 stages train with ordinary
    # BatchNorm (frozen statistics of 0 and 1 would be no normalisation at all); from ImageNet 3 stages train
    # and BatchNorm keeps the pretrained statistics
    pretrained = backbone_weights is not None
    trainable = (3 if trainable_layers is None else trainable_layers) if pretrained else 6
    backbone = mobilenet_backbone(
        backbone_name="mobilenet_v3_large", weights=backbone_weights, fpn=True, trainable_layers=trainable,
        norm_layer=FrozenBatchNorm2d if pretrained else nn.BatchNorm2d,
    )  # fmt: skip
    anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    head_channels = (128, 128, 128, 128)
    return KeypointRCNN(
        backbone, num_classes=num_classes, rpn_anchor_generator=anchors, box_batch_size_per_image=128,
        keypoint_head=KeypointRCNNHeads(backbone.out_channels, head_channels),
        keypoint_predictor=KeypointRCNNPredictor(head_channels[-1], num_keypoints), **kwargs,
    )  # fmt: skip


def get_classification_model(
    name: str, num_classes: int, weights: str = "none", freeze_backbone: bool = False
) -> nn.Module:
    """A torchvision classifier with a ``num_classes`` head; ``freeze_backbone`` trains only that head."""
    from torchvision.models import get_model, get_model_weights

    if name not in CLASSIFICATION_MODELS:
        raise ModelError(f"unknown classification model {name!r}; choose from {', '.join(CLASSIFICATION_MODELS)}")
    if name == "small_cnn":
        if weights in ("imagenet", "coco"):
            raise WeightsError("small_cnn has no pretrained weights; use --weights none or a file")
        from trainer.models.small_cnn import SmallCNN

        model = SmallCNN(num_classes)
        if weights not in ("none", None):
            load_weights_file(model, weights)
    elif weights == "imagenet":
        enum = get_model_weights(name).DEFAULT
        cached_weights_file(enum)
        model = get_model(name, weights=enum)
        replace_classifier_head(model, num_classes)
    elif weights == "coco":
        raise WeightsError("--weights coco is for detectors; classifiers take imagenet, none or a file")
    else:
        model = get_model(name, weights=None, num_classes=num_classes)
        if weights not in ("none", None):
            load_weights_file(model, weights)
    if freeze_backbone:
        head = set(id(p) for p in classifier_head(model).parameters())
        for p in model.parameters():
            if id(p) not in head:
                p.requires_grad_(False)
    return model


def classifier_head(model: nn.Module) -> nn.Linear:
    if hasattr(model, "fc"):
        return model.fc
    return model.classifier[-1]


def replace_classifier_head(model: nn.Module, num_classes: int) -> None:
    old = classifier_head(model)
    new = nn.Linear(old.in_features, num_classes)
    if hasattr(model, "fc"):
        model.fc = new
    else:
        model.classifier[-1] = new


def load_weights_file(model: nn.Module, path: str) -> dict:
    """Load a state_dict (or a checkpoint's ``"model"``) into ``model``, keeping layers whose shapes differ
    (e.g. a head for other classes) at their fresh values. Returns ``{"loaded", "skipped", "missing"}`` names;
    a file that fits nothing is an error."""
    if not os.path.isfile(path):
        raise WeightsError(f"--weights {path!r}: no such file (use imagenet, coco, none or a .pth path)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read weights file {path} ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds no state_dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    fit = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not fit:
        raise WeightsError(f"{path}: none of its {len(state)} tensors fit {type(model).__name__}")
    model.load_state_dict(fit, strict=False)
    return {
        "loaded": sorted(fit),
        "skipped": sorted(k for k in state if k not in fit),
        "missing": sorted(k for k in own if k not in fit),
    }
