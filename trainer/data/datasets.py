"""Datasets in torchvision's shape, read from Blendset exports, users' real COCO datasets and ImageFolder trees.

A *dataset path* is either a folder holding ``annotations.json`` plus its images (a Blendset export or any COCO
set laid out that way), a path to a COCO ``.json`` file directly, or an ImageFolder root (one sub-folder per class).

Every problem in the input is either an error (``on_problem="raise"``) or a listed skip (``on_problem="skip"``):
the skipped items are kept in ``dataset.skipped`` with their reason, so the commands can print and count them.
Nothing is dropped silently; images without annotations are valid detection samples and are kept.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from shared.atomic import is_temp
from shared.errors import BlendsetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class DataError(BlendsetError, ValueError):
    """A dataset that cannot be used as given; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class Skip:
    """One item left out of a dataset, and why."""

    kind: str  # "image" or "annotation"
    id: Any
    reason: str

    def __str__(self) -> str:
        return f"{self.kind} {self.id}: {self.reason}"


# --------------------------------------------------------------------------------------------------------------
# Reading COCO


@dataclasses.dataclass
class CocoSource:
    """A COCO file after checking: only usable images and annotations remain, every removal is in ``skipped``."""

    path: str
    images_root: str
    data: dict
    skipped: list

    @property
    def categories(self) -> list[dict]:
        return [{"id": int(c["id"]), "name": str(c["name"])} for c in sorted(self.data["categories"], key=_cat_key)]


def _cat_key(c: dict) -> int:
    return int(c["id"])


def dataset_kind(path: str) -> str:
    """``"coco"`` for a folder with annotations.json or a .json file, ``"imagefolder"`` for class sub-folders."""
    if os.path.isfile(path) and path.endswith(".json"):
        return "coco"
    if not os.path.isdir(path):
        raise DataError(f"dataset {path!r} does not exist")
    if os.path.isfile(os.path.join(path, "annotations.json")):
        return "coco"
    subdirs = [d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and not d.startswith(".")]
    if subdirs and any(_has_images(os.path.join(path, d)) for d in subdirs):
        return "imagefolder"
    raise DataError(
        f"dataset {path!r} is neither a COCO folder (no annotations.json) nor an ImageFolder (no class sub-folders "
        "with images)"
    )


def _has_images(folder: str) -> bool:
    return any(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(folder))


def dataset_name(path: str) -> str:
    """A short name for reports: the folder name (``real/`` -> ``real``)."""
    path = os.path.normpath(path)
    if os.path.isfile(path):
        parent = os.path.basename(os.path.dirname(path))
        stem = os.path.splitext(os.path.basename(path))[0]
        return parent if stem == "annotations" and parent else stem
    return os.path.basename(path) or "dataset"


def load_coco_source(path: str, on_problem: str = "raise", check_files: bool = True) -> CocoSource:
    """Read and check a COCO dataset through ``shared.coco.load_coco`` (the one COCO reader of the project)."""
    from shared.coco import CocoError, load_coco

    json_path = path if os.path.isfile(path) else os.path.join(path, "annotations.json")
    try:
        loaded = load_coco(json_path, on_problem=on_problem, check_files=check_files)
    except CocoError as exc:
        hint = "" if on_problem == "skip" else "\n(pass --skip-bad to leave these out and list them)"
        raise DataError(f"{exc}{hint}") from exc
    root = loaded.images_root or os.path.dirname(os.path.abspath(json_path))
    return CocoSource(json_path, root, loaded.data, list(loaded.skipped))


def resolve_image_path(root: str, file_name: str) -> str:
    """``file_name`` relative to the images root (``shared.coco`` picks ``<folder>/images`` when it exists), or to
    its parent; never outside it."""
    from shared.layout import safe_join

    for base in (root, os.path.dirname(root)):
        try:
            candidate = safe_join(base, file_name)
        except ValueError as exc:
            raise DataError(str(exc)) from exc
        if os.path.isfile(candidate):
            return candidate
    raise DataError(f"missing image file {file_name!r} (looked in {root})")


def check_same_categories(named: Sequence[tuple[str, list[dict]]]) -> list[dict]:
    """All sources must use one class list (same ids and names); the first one is returned."""
    first_name, first = named[0]
    for name, cats in named[1:]:
        if [(c["id"], c["name"]) for c in cats] != [(c["id"], c["name"]) for c in first]:
            a = ", ".join(f"{c['id']}:{c['name']}" for c in first)
            b = ", ".join(f"{c['id']}:{c['name']}" for c in cats)
            raise DataError(f"class lists differ: {first_name} has [{a}] but {name} has [{b}]")
    return first


def align_categories(reference: list[dict], dataset, reference_name: str, name: str) -> None:
    """Make ``dataset`` use ``reference``'s class list, or raise DataError when the classes differ.

    COCO sources must match exactly (ids and names). An ImageFolder only knows names, so its labels are renumbered
    to the reference's order when it holds the same set of names.
    """
    if isinstance(dataset, ImageFolderDataset) and sorted(c["name"] for c in dataset.categories) == sorted(
        c["name"] for c in reference
    ):
        index = {c["name"]: i for i, c in enumerate(reference)}
        old = [c["name"] for c in dataset.categories]
        dataset.targets = [index[old[t]] for t in dataset.targets]
        dataset.categories = [dict(c) for c in reference]
        return
    check_same_categories([(reference_name, reference), (name, dataset.categories)])


def read_image(path: str) -> torch.Tensor:
    """RGB uint8 CHW tensor; a broken file is a DataError naming it."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise DataError(f"cannot read image {path} ({type(exc).__name__}: {exc})") from exc
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


# --------------------------------------------------------------------------------------------------------------
# Detection


class CocoDetection(torch.utils.data.Dataset):
    """``(image, target)`` pairs: uint8 ``tv_tensors.Image`` and a dict with ``boxes`` (XYXY ``BoundingBoxes``),
    ``labels`` (1..K, 0 is background), ``image_id``, ``area``, ``iscrowd`` and, with ``masks=True``, ``masks``.

    Labels are positions in the id-sorted category list, so a checkpoint's ``categories`` maps them back.
    """

    def __init__(
        self, path: str, transforms=None, masks: bool = False, on_problem: str = "raise", check_files: bool = True
    ):
        self.source = load_coco_source(path, on_problem=on_problem, check_files=check_files)
        self.path = path
        self.transforms = transforms
        self.masks = masks
        self.categories = self.source.categories
        self.label_of = {c["id"]: i + 1 for i, c in enumerate(self.categories)}
        self.images = sorted(self.source.data["images"], key=lambda im: im["id"])
        by_image: dict[Any, list] = {im["id"]: [] for im in self.images}
        for ann in self.source.data["annotations"]:
            by_image[ann["image_id"]].append(ann)
        self.anns = [sorted(by_image[im["id"]], key=lambda a: a.get("id", 0)) for im in self.images]

    @property
    def skipped(self) -> list:
        return self.source.skipped

    def __len__(self) -> int:
        return len(self.images)

    def image_labels(self, index: int) -> list[int]:
        """Class labels present in an image (for class-balanced sampling), without reading the image."""
        return [self.label_of[a["category_id"]] for a in self.anns[index]]

    def __getitem__(self, index: int):
        from torchvision import tv_tensors

        info = self.images[index]
        image = read_image(resolve_image_path(self.source.images_root, info["file_name"]))
        height, width = image.shape[-2:]
        target = self.target(index, height, width)
        image = tv_tensors.Image(image)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def target(self, index: int, height: int, width: int) -> dict:
        from torchvision import tv_tensors

        anns = self.anns[index]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
            "labels": torch.tensor([self.label_of[a["category_id"]] for a in anns], dtype=torch.int64),
            "image_id": int(self.images[index]["id"]),
            "area": torch.tensor([float(a.get("area", a["bbox"][2] * a["bbox"][3])) for a in anns]),
            "iscrowd": torch.tensor([int(a.get("iscrowd", 0)) for a in anns], dtype=torch.int64),
        }
        if self.masks:
            target["masks"] = tv_tensors.Mask(self._masks(anns, height, width))
        return target

    def _masks(self, anns: list, height: int, width: int) -> torch.Tensor:
        from pycocotools import mask as mask_utils

        out = torch.zeros((len(anns), height, width), dtype=torch.uint8)
        for i, ann in enumerate(anns):
            seg = ann.get("segmentation")
            if not seg:
                x, y, w, h = ann["bbox"]  # no mask given: the box is the best mask we have
                out[i, int(y) : int(np.ceil(y + h)), int(x) : int(np.ceil(x + w))] = 1
                continue
            if isinstance(seg, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
            elif isinstance(seg.get("counts"), list):
                rle = mask_utils.frPyObjects(seg, height, width)
            else:
                rle = seg
            out[i] = torch.from_numpy(mask_utils.decode(rle).astype(np.uint8))
        return out

    def coco_ground_truth(self) -> dict:
        """The checked COCO dict (kept images and annotations), for pycocotools."""
        return self.source.data


def detection_collate(batch):
    """Variable-size targets stay as tuples (torchvision's detection convention)."""
    return tuple(zip(*batch, strict=False))


# --------------------------------------------------------------------------------------------------------------
# Classification


class CocoCrops(torch.utils.data.Dataset):
    """One sample per (non-crowd) annotation: the box crop, grown by ``padding`` of its size, and its class index.

    ``meta[i]`` is ``(image_id, annotation_id)`` so predictions can be traced back to the COCO file.
    """

    def __init__(
        self,
        path: str,
        transforms=None,
        padding: float = 0.1,
        on_problem: str = "raise",
        check_files: bool = True,
        min_size: float = 2.0,
    ):
        self.source = load_coco_source(path, on_problem=on_problem, check_files=check_files)
        self.path = path
        self.transforms = transforms
        self.padding = padding
        self.categories = self.source.categories
        index_of = {c["id"]: i for i, c in enumerate(self.categories)}
        images = {im["id"]: im for im in self.source.data["images"]}
        self.items = []
        self.extra_skipped: list[Skip] = []
        for ann in sorted(self.source.data["annotations"], key=lambda a: a.get("id", 0)):
            if ann.get("iscrowd", 0):
                self.extra_skipped.append(Skip("annotation", ann.get("id"), "crowd region is not one object"))
                continue
            if min(ann["bbox"][2], ann["bbox"][3]) < min_size:
                self.extra_skipped.append(Skip("annotation", ann.get("id"), f"box smaller than {min_size} px"))
                continue
            self.items.append((images[ann["image_id"]], ann))
        if self.extra_skipped and on_problem == "raise":
            listing = "\n  ".join(str(s) for s in self.extra_skipped[:20])
            raise DataError(f"{path}: {len(self.extra_skipped)} annotation(s) cannot be cropped:\n  {listing}")
        self.targets = [index_of[ann["category_id"]] for _, ann in self.items]
        self.meta = [(int(img["id"]), int(ann["id"])) for img, ann in self.items]

    @property
    def skipped(self) -> list:
        return list(self.source.skipped) + self.extra_skipped

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        from torchvision import tv_tensors

        img, ann = self.items[index]
        image = read_image(resolve_image_path(self.source.images_root, img["file_name"]))
        image = tv_tensors.Image(crop_box(image, ann["bbox"], self.padding))
        if self.transforms is not None:
            image = self.transforms(image)
        return image, self.targets[index]

    def annotation(self, index: int) -> tuple[dict, dict]:
        return self.items[index]


def crop_box(image: torch.Tensor, bbox: Sequence[float], padding: float) -> torch.Tensor:
    """Crop ``[x, y, w, h]`` grown by ``padding`` * size on each side, clipped to the image."""
    height, width = image.shape[-2:]
    x, y, w, h = (float(v) for v in bbox)
    x0 = max(0, int(np.floor(x - padding * w)))
    y0 = max(0, int(np.floor(y - padding * h)))
    x1 = min(width, int(np.ceil(x + w + padding * w)))
    y1 = min(height, int(np.ceil(y + h + padding * h)))
    return image[:, y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]


class ImageFolderDataset(torch.utils.data.Dataset):
    """An ImageFolder tree (``root/<class>/<image>``); classes sorted by name get ids 0..K-1.

    Unreadable files are errors or listed skips, as for COCO.
    """

    def __init__(self, root: str, transforms=None, on_problem: str = "raise", check_files: bool = True):
        self.path = root
        self.transforms = transforms
        classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
        self.categories = [{"id": i, "name": name} for i, name in enumerate(classes)]
        self.files, self.targets, self.skipped = [], [], []
        for label, name in enumerate(classes):
            for fname in sorted(os.listdir(os.path.join(root, name))):
                file = os.path.join(root, name, fname)
                if is_temp(fname):
                    self.skipped.append(Skip("image", os.path.join(name, fname), "an unfinished write (temp file)"))
                    continue
                if not fname.lower().endswith(IMAGE_EXTENSIONS):
                    self.skipped.append(Skip("image", os.path.join(name, fname), "not an image file extension"))
                    continue
                if check_files:
                    try:
                        with Image.open(file) as im:
                            im.verify()
                    except Exception as exc:
                        self.skipped.append(Skip("image", os.path.join(name, fname), f"corrupt image ({exc})"))
                        continue
                self.files.append(file)
                self.targets.append(label)
        bad = [s for s in self.skipped if s.reason != "not an image file extension"]
        if bad and on_problem == "raise":
            raise DataError(f"{root}: {len(bad)} unreadable image(s):\n  " + "\n  ".join(str(s) for s in bad[:20]))
        self.meta = [(i, None) for i in range(len(self.files))]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        from torchvision import tv_tensors

        image = tv_tensors.Image(read_image(self.files[index]))
        if self.transforms is not None:
            image = self.transforms(image)
        return image, self.targets[index]


def classification_dataset(
    path: str, transforms=None, on_problem: str = "raise", padding: float = 0.1, check_files: bool = True
):
    """COCO crops or ImageFolder, by what ``path`` holds."""
    if dataset_kind(path) == "coco":
        return CocoCrops(path, transforms, padding=padding, on_problem=on_problem, check_files=check_files)
    return ImageFolderDataset(path, transforms, on_problem=on_problem, check_files=check_files)


def sample_labels(dataset) -> list[list[int]]:
    """Per sample, the class labels it holds (one for classification, zero or more for detection)."""
    if hasattr(dataset, "image_labels"):
        return [dataset.image_labels(i) for i in range(len(dataset))]
    return [[int(t)] for t in dataset.targets]


def class_balanced_weights(labels: Sequence[Sequence[int]]) -> list[float]:
    """Sampling weight per sample: the mean inverse frequency of its classes, so rare classes are drawn as often
    as common ones. Empty samples (detection background images) get the mean weight of the labelled ones."""
    counts = Counter(label for sample in labels for label in sample)
    weights = [float(np.mean([1.0 / counts[label] for label in sample])) if sample else None for sample in labels]
    known = [w for w in weights if w is not None]
    fill = float(np.mean(known)) if known else 1.0
    return [fill if w is None else w for w in weights]


def describe_skips(name: str, skipped: Sequence) -> str:
    """One summary line per reason, e.g. ``real: skipped 3 (2 x zero-area box, 1 x missing image file)``."""
    if not skipped:
        return f"{name}: nothing skipped"
    reasons = Counter(_reason_kind(s) for s in skipped)
    parts = ", ".join(f"{n} x {r}" for r, n in reasons.most_common())
    return f"{name}: skipped {len(skipped)} ({parts})"


def _reason_kind(skip) -> str:
    if getattr(skip, "kind", None) not in (None, "image", "annotation"):
        return skip.kind  # shared.coco.Problem: kind is already a reason class
    reason = getattr(skip, "reason", None) or str(skip)
    for prefix in (
        "zero-area box",
        "unknown category id",
        "missing image file",
        "corrupt image",
        "box ",
        "refers to unknown image",
    ):
        if reason.startswith(prefix):
            return "box out of bounds" if prefix == "box " else prefix
    return reason
