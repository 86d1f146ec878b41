"""Augmentation with ``torchvision.transforms.v2``: boxes, masks and keypoints move with the pixels.

A policy is a list of steps ``[(op, params), ...]``. It comes from a preset name (``none``, ``hflip``, ``basic``,
``strong``, ``weather``, ``keypoints``), a YAML/JSON recipe file, or an inline YAML list on the command line::

    --augment strong
    --augment recipe.yaml
    --augment "[hflip, {color_jitter: {brightness: 0.4}}, {rain: {p: 0.3, intensity: 0.6}}]"

Recipe file (YAML or JSON): either the list itself or ``{"steps": [...]}``. Operations and their parameters:

\b
  hflip        p=0.5
  vflip        p=0.5
  scale_crop   scale=[0.5, 1.0]  (share of the image kept; detection crops keep boxes that stay visible)
  affine       p=0.5 degrees=10 translate=0.05 scale=[0.9, 1.1] shear=0  (rotation, shift as a share of the
               side, zoom, shear in degrees)
  color_jitter brightness=0.3 contrast=0.3 saturation=0.3 hue=0.02
  grayscale    p=0.1
  blur         p=0.3 sigma=[0.1, 2.0] kernel=5
  noise        p=0.3 std=0.03        (Gaussian, on [0, 1] pixels)
  rain         p=0.2 intensity=0.5   (streak overlay from shared.post, as in the rescue-scenes study)
  snow         p=0.2 intensity=0.5   (flake overlay from shared.post)

Unknown operations or parameters raise ``DataError`` naming them.

Keypoints (``keypoint_transforms``) are an ``N x K x 3`` tensor of ``(x, y, visibility)`` in continuous pixel
coordinates, (0, 0) the top-left corner of the top-left pixel, as COCO and torchvision's boxes use them. v2 does
not move a plain tensor (and ``tv_tensors.KeyPoints`` only exists from torchvision 0.23), so the geometric steps
here (``scale_crop``, ``affine``, flips) are (image, target) transforms that move them with the same mapping as
the pixels; a keypoint that leaves the image gets visibility 0 and (0, 0), COCO's "not labelled". A mirrored
board is not a board: ``hflip``/``vflip`` are refused for keypoints unless the dataset names which keypoint
becomes which (``flip_index``, from the category's ``keypoint_flip_map``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from trainer.data.datasets import DataError

PRESETS: dict[str, list[tuple[str, dict]]] = {
    "none": [],
    "hflip": [("hflip", {})],
    "basic": [("hflip", {}), ("color_jitter", {})],
    "strong": [("hflip", {}), ("scale_crop", {}), ("color_jitter", {}), ("blur", {}), ("noise", {})],
    "weather": [
        ("hflip", {}),
        ("scale_crop", {}),
        ("color_jitter", {}),
        ("blur", {}),
        ("noise", {}),
        ("rain", {}),
        ("snow", {}),
    ],
    # everything that keeps a keypoint's identity: no flips
    "keypoints": [("scale_crop", {"scale": [0.7, 1.0]}), ("affine", {}), ("color_jitter", {}), ("grayscale", {}),
                  ("blur", {}), ("noise", {})],
}  # fmt: skip

DEFAULTS: dict[str, dict[str, Any]] = {
    "hflip": {"p": 0.5},
    "vflip": {"p": 0.5},
    "scale_crop": {"scale": [0.5, 1.0]},
    "affine": {"p": 0.5, "degrees": 10.0, "translate": 0.05, "scale": [0.9, 1.1], "shear": 0.0},
    "color_jitter": {"brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.02},
    "grayscale": {"p": 0.1},
    "blur": {"p": 0.3, "sigma": [0.1, 2.0], "kernel": 5},
    "noise": {"p": 0.3, "std": 0.03},
    "rain": {"p": 0.2, "intensity": 0.5},
    "snow": {"p": 0.2, "intensity": 0.5},
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def parse_policy(spec: str | list | None) -> list[tuple[str, dict]]:
    """Preset name, recipe file path, inline YAML, or an already-parsed list -> checked ``[(op, params)]``."""
    if spec is None or spec == "":
        return []
    if isinstance(spec, str):
        if spec in PRESETS:
            return [(op, dict(DEFAULTS[op], **p)) for op, p in PRESETS[spec]]
        if os.path.isfile(spec):
            spec = _read_recipe(spec)
        else:
            import yaml

            try:
                parsed = yaml.safe_load(spec)
            except yaml.YAMLError as exc:
                raise DataError(f"augmentation {spec!r}: not a preset, a file or valid YAML ({exc})") from exc
            if not isinstance(parsed, (list, dict)):
                raise DataError(
                    f"unknown augmentation preset {spec!r}; presets: {', '.join(PRESETS)}, "
                    "or give a recipe file / inline YAML list"
                )
            spec = parsed
    if isinstance(spec, dict):
        if set(spec) == {"steps"}:
            spec = spec["steps"]
        else:  # {op: params, ...} shorthand
            spec = [{k: v} for k, v in spec.items()]
    return [_parse_step(step) for step in spec]


def _read_recipe(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        return json.loads(text)
    import yaml

    return yaml.safe_load(text)


def _parse_step(step: Any) -> tuple[str, dict]:
    if isinstance(step, str):
        op, params = step, {}
    elif isinstance(step, dict) and len(step) == 1:
        op, params = next(iter(step.items()))
        params = params or {}
    else:
        raise DataError(f"augmentation step {step!r}: write 'op' or {{op: {{param: value}}}}")
    if op not in DEFAULTS:
        raise DataError(f"unknown augmentation {op!r}; known: {', '.join(DEFAULTS)}")
    if not isinstance(params, dict):
        raise DataError(f"augmentation {op!r}: parameters must be a mapping, got {params!r}")
    unknown = set(params) - set(DEFAULTS[op])
    if unknown:
        raise DataError(f"augmentation {op!r}: unknown parameter(s) {sorted(unknown)}; known: {sorted(DEFAULTS[op])}")
    return op, dict(DEFAULTS[op], **params)


# --------------------------------------------------------------------------------------------------------------
# Image-only steps that work on (image, target) or image inputs alike


class ImageOnly:
    """Applies ``fn(float_image, generator) -> float_image`` with probability ``p``; targets pass through.

    Float images in [0, 1] are expected (these steps run after ``ToDtype``).
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], p: float, name: str):
        self.fn, self.p, self.name = fn, float(p), name

    def __call__(self, *inputs):
        from torchvision import tv_tensors

        image, *rest = inputs
        if torch.rand(()) < self.p:
            out = self.fn(image.as_subclass(torch.Tensor)).clamp_(0, 1)
            image = tv_tensors.wrap(out, like=image) if isinstance(image, tv_tensors.Image) else out
        return (image, *rest) if rest else image

    def __repr__(self) -> str:
        return f"{self.name}(p={self.p})"


def _noise(std: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda img: img + torch.randn_like(img) * std


def _weather(kind: str, intensity: float) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        from shared import post
    except ImportError as exc:
        raise DataError(f"augmentation {kind!r} needs shared.post ({exc})") from exc
    overlay = getattr(post, kind, None)
    if overlay is None:
        raise DataError(f"augmentation {kind!r} needs shared.post.{kind}, which this install does not have")

    def apply(img: torch.Tensor) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())  # follows torch's seeding, so workers differ
        rng = np.random.default_rng(seed)
        hwc = img.permute(1, 2, 0).cpu().numpy().astype(np.float32)
        out = np.asarray(overlay(rng, hwc, intensity))
        if out.dtype == np.uint8:
            out = out.astype(np.float32) / 255.0
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).permute(2, 0, 1).to(img.device)

    return apply


def _steps(
    policy: list[tuple[str, dict]], detection: bool, size: int | None, keypoints: bool = False,
    flip_index: list[int] | None = None,
) -> tuple[list, list]:  # fmt: skip
    """Split into steps on uint8 (geometry, colour) and steps on float pixels (blur, noise, weather)."""
    from torchvision.transforms import v2

    before, after = [], []
    for op, p in policy:
        if op in ("hflip", "vflip") and keypoints:
            if flip_index is None:
                raise DataError(
                    f"augmentation {op!r} is refused for keypoints: a mirrored board is not a board, and a flip "
                    "would need to know which keypoint becomes which. Give the category a 'keypoint_flip_map' "
                    "(pairs of keypoint names), or use --augment keypoints or a recipe without flips"
                )
            before.append(KeypointFlip(op == "hflip", flip_index, p["p"]))
        elif op == "hflip":
            before.append(v2.RandomHorizontalFlip(p["p"]))
        elif op == "vflip":
            before.append(v2.RandomVerticalFlip(p["p"]))
        elif op == "affine":
            lo, hi = (float(v) for v in p["scale"])
            if detection:
                before.append(RandomAffine(p["p"], p["degrees"], p["translate"], (lo, hi), p["shear"]))
            else:
                affine = v2.RandomAffine(p["degrees"], (p["translate"],) * 2, (lo, hi), p["shear"] or None)
                before.append(v2.RandomApply([affine], p["p"]))
        elif op == "scale_crop":
            lo, hi = (float(v) for v in p["scale"])
            if detection:
                before.append(ScaleCrop(lo, hi))
            else:
                before.append(v2.RandomResizedCrop(size or 224, scale=(lo, hi), antialias=True))
        elif op == "color_jitter":
            before.append(v2.ColorJitter(p["brightness"], p["contrast"], p["saturation"], p["hue"]))
        elif op == "grayscale":
            before.append(v2.RandomGrayscale(p["p"]))
        elif op == "blur":
            k = int(p["kernel"]) | 1
            blur = v2.GaussianBlur(k, sigma=tuple(float(s) for s in p["sigma"]))
            after.append(ImageOnly(blur, p["p"], "blur"))
        elif op == "noise":
            after.append(ImageOnly(_noise(float(p["std"])), p["p"], "noise"))
        elif op in ("rain", "snow"):
            after.append(ImageOnly(_weather(op, float(p["intensity"])), p["p"], op))
    return before, after


class ScaleCrop:
    """Random crop keeping a share ``[lo, hi]`` of each side, resized back to the input size, for detection.

    Boxes are clipped to the crop by v2; the ones that leave it are removed afterwards by ``DropEmptyBoxes``.
    Keypoints move with the pixels; the ones cut off become "not labelled".
    """

    def __init__(self, lo: float, hi: float):
        if not 0 < lo <= hi <= 1:
            raise DataError(f"scale_crop scale must satisfy 0 < lo <= hi <= 1, got [{lo}, {hi}]")
        self.lo, self.hi = lo, hi

    def __call__(self, image, target):
        h, w = image.shape[-2:]
        s = self.lo + (self.hi - self.lo) * float(torch.rand(()))
        ch, cw = max(1, int(h * s)), max(1, int(w * s))
        top = int(torch.randint(0, h - ch + 1, ()))
        left = int(torch.randint(0, w - cw + 1, ()))
        image, target = _crop_pair(image, target, top, left, ch, cw)
        return _resize_pair(image, target, h, w)


def _crop_pair(image, target, top, left, height, width):
    from torchvision.transforms.v2 import functional as F

    image = F.crop(image, top, left, height, width)
    target = dict(target)
    target["boxes"] = F.clamp_bounding_boxes(F.crop(target["boxes"], top, left, height, width))
    if "masks" in target:
        target["masks"] = F.crop(target["masks"], top, left, height, width)
    if "keypoints" in target:
        shift = torch.tensor([[1.0, 0.0, -left], [0.0, 1.0, -top]])
        target["keypoints"] = move_keypoints(target["keypoints"], shift, height, width)
    return image, target


def _resize_pair(image, target, height, width):
    from torchvision.transforms.v2 import functional as F

    old_h, old_w = image.shape[-2:]
    image = F.resize(image, [height, width], antialias=True)
    target = dict(target)
    target["boxes"] = F.resize(target["boxes"], [height, width])
    if "masks" in target:
        target["masks"] = F.resize(target["masks"], [height, width])
    if "keypoints" in target:
        scale = torch.tensor([[width / old_w, 0.0, 0.0], [0.0, height / old_h, 0.0]])
        target["keypoints"] = move_keypoints(target["keypoints"], scale, height, width)
    return image, target


def move_keypoints(keypoints: torch.Tensor, matrix: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Map ``N x K x 3`` keypoints by a 2 x 3 matrix in continuous pixel coordinates; the ones that land outside
    the ``height`` x ``width`` image (or were not labelled) become ``(0, 0, 0)``."""
    if keypoints.numel() == 0:
        return keypoints
    xy = keypoints[..., :2] @ matrix[:, :2].T.to(keypoints.dtype) + matrix[:, 2].to(keypoints.dtype)
    inside = (xy[..., 0] >= 0) & (xy[..., 0] <= width) & (xy[..., 1] >= 0) & (xy[..., 1] <= height)
    keep = inside & (keypoints[..., 2] > 0)
    out = torch.zeros_like(keypoints)
    out[..., :2] = torch.where(keep[..., None], xy, torch.zeros_like(xy))
    out[..., 2] = torch.where(keep, keypoints[..., 2], torch.zeros_like(keypoints[..., 2]))
    return out


def affine_matrix(
    center: tuple[float, float], angle: float, translate: tuple[float, float], scale: float,
    shear: tuple[float, float],
) -> torch.Tensor:  # fmt: skip
    """The forward 2 x 3 map of ``torchvision.transforms.v2.functional.affine`` for points: ``M = T C RSS C^-1``
    (translation, centre, rotation-scale-shear as its docstring writes them), ``center`` in continuous pixel
    coordinates (the image's is ``(W / 2, H / 2)``)."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    cx, cy = center
    tx, ty = translate
    linear = [[scale * a, scale * b], [scale * c, scale * d]]
    offset_x = cx + tx - linear[0][0] * cx - linear[0][1] * cy
    offset_y = cy + ty - linear[1][0] * cx - linear[1][1] * cy
    return torch.tensor([[linear[0][0], linear[0][1], offset_x], [linear[1][0], linear[1][1], offset_y]])


class RandomAffine:
    """With probability ``p``: rotate by up to ``degrees``, shift by up to ``translate`` of each side, zoom by
    ``scale``, shear by up to ``shear`` degrees; image (bilinear), boxes, masks and keypoints together."""

    def __init__(self, p: float, degrees: float, translate: float, scale: tuple[float, float], shear: float):
        if not 0 < scale[0] <= scale[1]:
            raise DataError(f"affine scale must satisfy 0 < lo <= hi, got {list(scale)}")
        self.p, self.degrees, self.translate = float(p), float(degrees), float(translate)
        self.scale, self.shear = scale, float(shear)

    def __call__(self, image, target):
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        if not torch.rand(()) < self.p:
            return image, target
        h, w = image.shape[-2:]
        u = torch.rand(6).tolist()
        angle = self.degrees * (2 * u[0] - 1)
        shift = [round(self.translate * w * (2 * u[1] - 1)), round(self.translate * h * (2 * u[2] - 1))]
        zoom = self.scale[0] + (self.scale[1] - self.scale[0]) * u[3]
        shear = [self.shear * (2 * u[4] - 1), self.shear * (2 * u[5] - 1)]
        args = {"angle": angle, "translate": shift, "scale": zoom, "shear": shear}
        image = F.affine(image, **args, interpolation=InterpolationMode.BILINEAR)
        target = dict(target)
        target["boxes"] = F.affine(target["boxes"], **args)
        if "masks" in target:
            target["masks"] = F.affine(target["masks"], **args)
        if "keypoints" in target:
            matrix = affine_matrix((w / 2, h / 2), angle, (shift[0], shift[1]), zoom, (shear[0], shear[1]))
            target["keypoints"] = move_keypoints(target["keypoints"], matrix, h, w)
        return image, target

    def __repr__(self) -> str:
        return f"RandomAffine(p={self.p}, degrees={self.degrees}, translate={self.translate}, scale={self.scale})"


class KeypointFlip:
    """Horizontal (or vertical) flip with probability ``p`` that also renames the keypoints: keypoint ``i``
    becomes keypoint ``flip_index[i]`` (a left corner becomes the matching right one)."""

    def __init__(self, horizontal: bool, flip_index: list[int], p: float):
        self.horizontal, self.flip_index, self.p = horizontal, list(flip_index), float(p)

    def __call__(self, image, target):
        from torchvision.transforms.v2 import functional as F

        if not torch.rand(()) < self.p:
            return image, target
        h, w = image.shape[-2:]
        flip = F.horizontal_flip if self.horizontal else F.vertical_flip
        image = flip(image)
        target = dict(target)
        target["boxes"] = flip(target["boxes"])
        if "masks" in target:
            target["masks"] = flip(target["masks"])
        matrix = [[-1.0, 0.0, w], [0.0, 1.0, 0.0]] if self.horizontal else [[1.0, 0.0, 0.0], [0.0, -1.0, h]]
        moved = move_keypoints(target["keypoints"], torch.tensor(matrix), h, w)
        renamed = torch.empty_like(moved)
        renamed[:, self.flip_index] = moved
        target["keypoints"] = renamed
        return image, target


class DropEmptyBoxes:
    """After geometric augmentation, remove boxes under 1 px (cropped away) with their labels, masks and areas.

    This is the only place a box disappears during training, and only because the pixels it named were cut off.
    """

    def __call__(self, image, target):
        boxes = target["boxes"]
        keep = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
        if bool(keep.all()):
            return image, target
        target = dict(target)
        for key in ("boxes", "labels", "area", "iscrowd", "masks", "keypoints"):
            if key in target:
                target[key] = target[key][keep]
        return image, target


def detection_transforms(policy: list[tuple[str, dict]] | str | None = None):
    """Train/eval pipeline for detection: uint8 image in, float [0, 1] image out (models normalise inside)."""
    from torchvision.transforms import v2

    policy = parse_policy(policy) if not isinstance(policy, list) else policy
    before, after = _steps(policy, detection=True, size=None)
    return v2.Compose([*before, DropEmptyBoxes(), v2.ToDtype(torch.float32, scale=True), *after])


def keypoint_transforms(policy: list[tuple[str, dict]] | str | None = None, flip_index: list[int] | None = None):
    """Train/eval pipeline for keypoint detection: as :func:`detection_transforms`, with keypoints moving through
    every geometric step; flips only with a ``flip_index`` (DataError otherwise)."""
    from torchvision.transforms import v2

    policy = parse_policy(policy) if not isinstance(policy, list) else policy
    before, after = _steps(policy, detection=True, size=None, keypoints=True, flip_index=flip_index)
    return v2.Compose([*before, DropEmptyBoxes(), v2.ToDtype(torch.float32, scale=True), *after])


def classification_transforms(
    size: int, policy: list[tuple[str, dict]] | str | None = None, grayscale: bool = False, normalize: bool = True
):
    """Resize to ``size``x``size`` (random crop instead when the policy has ``scale_crop``), then augment and
    normalise with ImageNet statistics (what torchvision's pretrained classifiers expect)."""
    from torchvision.transforms import v2

    policy = parse_policy(policy) if not isinstance(policy, list) else policy
    before, after = _steps(policy, detection=False, size=size)
    has_crop = any(op == "scale_crop" for op, _ in policy)
    steps = [] if has_crop else [v2.Resize((size, size), antialias=True)]
    steps += before
    if grayscale:
        steps.append(v2.Grayscale(num_output_channels=3))
    steps += [v2.ToDtype(torch.float32, scale=True), *after]
    if normalize:
        steps.append(v2.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return v2.Compose(steps)
