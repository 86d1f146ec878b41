"""Pluggable feature extractors for the feature-space gap (the gap thesis, section 4.7).

``--extractor`` takes one of:

- ``random``: a ResNet-18 with random weights (seeded), every stage average-pooled and concatenated. Always
  available, needs no download; its features follow low-level colour and texture statistics only, and every
  report says so.
- ``torchvision:NAME[:WEIGHTS_PATH]``: any torchvision classification model (``resnet50``, ``efficientnet_b0``,
  ...) with a local weights file (a state dict, or a checkpoint dict holding one under ``"model"``). Without a
  path the model is random-init and labelled so. Weights never download here.
- ``detector:RUN``: the backbone of a Blendset training run (``RUN/best.pth``, else ``RUN/checkpoint.pth``, or a
  ``.pth`` path), a plain checkpoint dict with ``model_name`` and ``model``. Detection backbones return feature
  pyramids; each level is average-pooled and the levels concatenated.

Images are squashed to ``size`` x ``size`` (small: the gap needs statistics, not detail) and batched.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.progress import ProgressFn, Step
from trainer.gap import GapError

BOX_CONTEXT = 0.1  # box crops grow by this share of their size on each side


@dataclass
class Extractor:
    spec: str
    label: str
    random_init: bool
    model: Any  # torch.nn.Module mapping a normalised batch to features
    size: int = 96
    batch_size: int = 32
    device: str = "cpu"

    def embed(self, images: Iterable[np.ndarray]) -> np.ndarray:
        """Features of HxWx3 uint8 images, one row each."""
        batch: list[np.ndarray] = []
        out: list[np.ndarray] = []
        for rgb in images:
            batch.append(_resize(rgb, self.size))
            if len(batch) == self.batch_size:
                out.append(self._forward(batch))
                batch = []
        if batch:
            out.append(self._forward(batch))
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(out)

    def _forward(self, batch: list[np.ndarray]) -> np.ndarray:
        import torch

        from trainer.data.transforms import IMAGENET_MEAN, IMAGENET_STD

        x = torch.from_numpy(np.stack(batch)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        with torch.inference_mode():
            y = self.model((x - mean) / std)
        return _pool(y).cpu().numpy().astype(np.float32)


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        rgb = np.zeros((1, 1, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))


def _pool(y: Any) -> Any:
    """Backbone output to one vector per image: pool feature maps, concatenate pyramid levels."""
    import torch

    if isinstance(y, dict):
        return torch.cat([_pool(v) for v in y.values()], dim=1)
    if isinstance(y, (list, tuple)):
        return torch.cat([_pool(v) for v in y], dim=1)
    if y.dim() == 4:
        return y.mean(dim=(2, 3))
    return y.flatten(1)


# ---------------------------------------------------------------------------------------------------------------
# Building extractors


def build_extractor(spec: str, size: int = 96, device: str = "cpu", batch_size: int = 32) -> Extractor:
    """Parse ``--extractor`` (see module docstring). Raises GapError for an unknown spec or a bad file."""
    kind, _, rest = spec.partition(":")
    if kind == "random" and not rest:
        model, random_init = _random_resnet(), True
        label = "random-init ResNet-18, all stages pooled (no trained weights)"
    elif kind == "torchvision" and rest:
        model, label, random_init = _torchvision(rest)
    elif kind == "detector" and rest:
        model, label, random_init = _detector(rest)
    else:
        raise GapError(f"unknown extractor {spec!r}; use 'random', 'torchvision:NAME[:WEIGHTS_PATH]' or 'detector:RUN'")
    model.eval().to(device)
    return Extractor(spec, label, random_init, model, size=size, batch_size=batch_size, device=device)


def _random_resnet() -> Any:
    """Random weights carry no object knowledge, so every stage is pooled (64+128+256+512 values): the early
    stages keep the colour and texture statistics that are all such features can tell apart."""
    import torch
    import torchvision
    from torchvision.models.feature_extraction import create_feature_extractor

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torchvision.models.resnet18(weights=None)
    return create_feature_extractor(model, {f"layer{i}": f"layer{i}" for i in range(1, 5)})


def _strip_head(model: Any) -> Any:
    """Replace the classification head so the model returns its pooled features."""
    import torch

    for attr in ("fc", "classifier", "head", "heads"):
        if hasattr(model, attr) and isinstance(getattr(model, attr), torch.nn.Module):
            setattr(model, attr, torch.nn.Identity())
            return model
    raise GapError(f"do not know how to take the head off {type(model).__name__}")


def _load_state(path: str) -> dict[str, Any]:
    import torch

    if not os.path.isfile(path):
        raise GapError(f"weights file {path!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file; name the file instead
        raise GapError(f"cannot read weights {path!r}: {e}") from e
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        return obj
    if isinstance(obj, dict):
        return {"model": obj}
    raise GapError(f"{path!r} holds a {type(obj).__name__}, not a state dict")


def _torchvision(rest: str) -> tuple[Any, str, bool]:
    import torchvision

    name, _, weights = rest.partition(":")
    try:
        model = torchvision.models.get_model(name, weights=None)
    except (ValueError, KeyError) as e:
        raise GapError(f"torchvision has no model {name!r}: {e}") from e
    if weights:
        state = _load_state(weights)["model"]
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise GapError(f"{weights!r} does not fit torchvision's {name}: {str(e)[:300]}") from e
        label, random_init = f"torchvision {name} with weights {os.path.basename(weights)}", False
    else:
        label, random_init = f"torchvision {name}, random-init (no weights path given)", True
    return _strip_head(model), label, random_init


def find_checkpoint(run: str) -> str:
    if os.path.isfile(run):
        return run
    for name in ("best.pth", "checkpoint.pth"):
        path = os.path.join(run, name)
        if os.path.isfile(path):
            return path
    raise GapError(f"no checkpoint in run {run!r} (looked for best.pth and checkpoint.pth)")


def _detector(run: str) -> tuple[Any, str, bool]:
    """Build the run's model with torchvision and keep its backbone (detection) or headless body (classify)."""
    import torchvision

    path = find_checkpoint(run)
    ckpt = _load_state(path)
    name = ckpt.get("model_name")
    if not isinstance(name, str):
        raise GapError(f"checkpoint {path!r} has no 'model_name'")
    state = ckpt["model"]
    task = ckpt.get("task", "detect")
    n_classes = len(ckpt.get("categories") or []) + 1
    try:
        if task == "detect":
            model = torchvision.models.get_model(name, weights=None, weights_backbone=None, num_classes=n_classes)
        else:
            model = torchvision.models.get_model(name, weights=None, num_classes=n_classes - 1)
    except (ValueError, KeyError, TypeError) as e:
        raise GapError(f"cannot build model {name!r} from {path!r}: {e}") from e
    if hasattr(model, "backbone"):
        sub = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
        if not sub:
            raise GapError(f"checkpoint {path!r} has no backbone.* weights")
        try:
            model.backbone.load_state_dict(sub)
        except RuntimeError as e:
            raise GapError(f"backbone weights in {path!r} do not fit {name}: {str(e)[:300]}") from e
        body = model.backbone
    else:
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise GapError(f"weights in {path!r} do not fit {name}: {str(e)[:300]}") from e
        body = _strip_head(model)
    return body, f"backbone of trained {name} ({path})", False


# ---------------------------------------------------------------------------------------------------------------
# Datasets to features


@dataclass
class Embeddings:
    image_ids: np.ndarray
    images: np.ndarray  # (n_images, d)
    annotation_ids: np.ndarray
    boxes: np.ndarray  # (n_boxes, d)


def box_crop(rgb: np.ndarray, bbox: list[float], context: float = BOX_CONTEXT) -> np.ndarray:
    h, w = rgb.shape[:2]
    x, y, bw, bh = (float(v) for v in bbox)
    mx, my = bw * context, bh * context
    x0, y0 = max(0, int(math.floor(x - mx))), max(0, int(math.floor(y - my)))
    x1, y1 = min(w, int(math.ceil(x + bw + mx))), min(h, int(math.ceil(y + bh + my)))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((1, 1, 3), dtype=np.uint8)
    return rgb[y0:y1, x0:x1]


def embed_dataset(
    loaded: Any,
    extractor: Extractor,
    boxes: bool = True,
    progress: ProgressFn | None = None,
    stage: str = "features",
) -> Embeddings:
    """Whole-image features and (``boxes``) box-crop features; each image is read once. ``progress`` gets one
    :class:`~shared.progress.Step` of ``stage`` per image read."""
    from trainer.gap.metadata import iter_images

    data = loaded.data
    anns_by_image: dict[int, list[dict[str, Any]]] = {}
    for a in data.get("annotations", []):
        anns_by_image.setdefault(int(a["image_id"]), []).append(a)
    total = len(data["images"])
    image_ids: list[int] = []
    ann_ids: list[int] = []
    crops: list[np.ndarray] = []
    small: list[np.ndarray] = []
    for i, (image, rgb) in enumerate(iter_images(loaded)):
        image_ids.append(int(image["id"]))
        small.append(_resize(rgb, extractor.size))
        if boxes:
            for a in anns_by_image.get(int(image["id"]), []):
                ann_ids.append(int(a["id"]))
                crops.append(_resize(box_crop(rgb, a["bbox"]), extractor.size))
        if progress:
            progress(Step(stage, i + 1, total))
    img_feats = extractor.embed(small)
    box_feats = extractor.embed(crops) if crops else np.zeros((0, img_feats.shape[1]), dtype=np.float32)
    return Embeddings(np.asarray(image_ids), img_feats, np.asarray(ann_ids, dtype=np.int64), box_feats)
