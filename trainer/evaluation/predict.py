"""Model outputs as plain records: COCO detection and keypoint results, (true, predicted, score) for classifiers.

Used by validation during training and by ``blendset eval``; scoring them is ``trainer/evaluation/metrics.py``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from trainer.training.epoch import autocast, to_device


def _detector_outputs(model: torch.nn.Module, data_loader: Iterable, device: str, amp: bool):
    """``(output, target)`` for every image, the model in eval mode (torchvision detection models)."""
    model.eval()
    for images, targets in data_loader:
        images = [img.to(device) for img in images]
        with autocast(device, amp):
            outputs = model(images)
        yield from zip(outputs, targets, strict=False)


@torch.inference_mode()
def predict_detection(
    model: torch.nn.Module,
    data_loader: Iterable,
    device: str,
    categories: list[dict],
    amp: bool = False,
    masks: bool = False,
) -> list[dict]:
    """COCO results (``image_id``, ``category_id``, ``bbox`` xywh, ``score`` and, with ``masks``, RLE
    ``segmentation``) for every image in ``data_loader``."""
    cat_ids = [c["id"] for c in categories]
    results = []
    for out, target in _detector_outputs(model, data_loader, device, amp):
        results.extend(_coco_results(out, int(target["image_id"]), cat_ids, masks))
    return results


def _coco_results(out: dict, image_id: int, cat_ids: list[int], masks: bool) -> list[dict]:
    boxes = out["boxes"].float().cpu()
    boxes[:, 2:] -= boxes[:, :2]
    scores = out["scores"].float().cpu().tolist()
    labels = out["labels"].cpu().tolist()
    rles = _encode_masks(out["masks"]) if masks and "masks" in out else None
    results = []
    for i, (box, score, label) in enumerate(zip(boxes.tolist(), scores, labels, strict=False)):
        if not 1 <= label <= len(cat_ids):
            continue  # background (never emitted by torchvision heads)
        record = {
            "image_id": image_id,
            "category_id": cat_ids[label - 1],
            "bbox": [round(v, 2) for v in box],
            "score": round(float(score), 5),
        }
        if rles is not None:
            record["segmentation"] = rles[i]
        results.append(record)
    return results


@torch.inference_mode()
def predict_keypoints(
    model: torch.nn.Module, data_loader: Iterable, device: str, categories: list[dict], amp: bool = False
) -> list[dict]:
    """COCO keypoint results for every image in ``data_loader``: ``image_id``, ``category_id``, ``bbox`` xywh,
    ``score``, ``keypoints`` flat ``[x, y, v] * K`` in COCO's continuous pixel coordinates (the model's own, see
    ``trainer/data/keypoints.py``) and ``keypoint_scores`` (K values).

    ``v`` is torchvision's predicted visibility, 1 for every keypoint: Keypoint R-CNN always places all K.
    ``keypoint_scores`` are torchvision's ``keypoints_scores``, the heatmap logit at each peak; they are spatial
    softmax logits (any constant can be added to a heatmap), so they rank keypoints but are no probability, and
    are kept apart for that reason. COCO's OKS ignores both."""
    cat_ids = [c["id"] for c in categories]
    results = []
    for out, target in _detector_outputs(model, data_loader, device, amp):
        records = _coco_results(out, int(target["image_id"]), cat_ids, masks=False)
        keep = [i for i, label in enumerate(out["labels"].tolist()) if 1 <= label <= len(cat_ids)]
        points = out["keypoints"].float().cpu()[keep]
        scores = out["keypoints_scores"].float().cpu()[keep]
        for record, kps, kp_scores in zip(records, points, scores, strict=True):
            record["keypoints"] = [round(float(v), 3) for v in kps.reshape(-1)]
            record["keypoint_scores"] = [round(float(v), 3) for v in kp_scores]
        results.extend(records)
    return results


def _encode_masks(masks: torch.Tensor) -> list[dict]:
    import numpy as np
    from pycocotools import mask as mask_utils

    binary = (masks[:, 0] > 0.5).cpu().numpy().astype(np.uint8)
    rles = mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


@torch.inference_mode()
def predict_classification(
    model: torch.nn.Module, data_loader: Iterable, device: str, amp: bool = False, channels_last: bool = False
) -> tuple[list[int], list[int], list[float]]:
    """``(true, pred, score)`` per sample, in loader order (use an unshuffled loader)."""
    model.eval()
    true, pred, score = [], [], []
    for images, targets in data_loader:
        images, _ = to_device(images, targets, device, channels_last)
        with autocast(device, amp):
            logits = model(images)
        probs = logits.float().softmax(dim=1)
        s, p = probs.max(dim=1)
        true.extend(int(t) for t in targets)
        pred.extend(p.cpu().tolist())
        score.extend(s.cpu().tolist())
    return true, pred, score
