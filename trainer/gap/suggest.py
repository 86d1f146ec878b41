"""``blendset gap suggest``: a trained model's errors on real data, turned into a rendering plan.

The bias-fix study rendered ~200 more images of its weakest classes and raised bear accuracy 0.535 -> 0.648;
its conclusion asks for a tool that says *what* to render. This module

1. reads the run's real-set results (``RUN/eval/<name>/predictions.csv`` for classifiers, ``detections.json``
   for detectors, as written by
   ``trainer.evaluation.evaluate.evaluate_run``; it runs that evaluation when they are missing),
2. marks every real sample as right or wrong (classification: true == pred; detection: the ground-truth box was
   matched at IoU >= 0.5 by a detection of its class scoring >= the threshold, i.e. recall),
3. ranks classes by error rate (95% Wilson intervals) and finds metadata bins (quartiles of box area, vertical
   position, brightness, ...; camera parameters too when the real set is itself a render) whose error rate is
   significantly above the overall rate (one-sided binomial z >= 2 and the bin's Wilson interval above it),
4. writes a plan: a config whose ``mixture`` has one component per weak class (``classes`` = that class,
   weight = its share of the errors, so frame quotas follow the errors), with the ranges shifted towards the
   failing bins, plus ``plan.md`` explaining every choice in words.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from typing import Any

import numpy as np

from shared.atomic import write_json, write_text
from shared.progress import Note, ProgressFn, silent
from trainer.gap import GapError
from trainer.gap.distances import wilson_interval

BIN_METADATA = (
    ("box_area", "box area (share of image)"),
    ("box_center_y", "box centre y"),
    ("box_center_x", "box centre x"),
    ("box_aspect", "box aspect"),
    ("background_similarity", "background similarity"),
    ("box_brightness", "box brightness"),
    ("box_contrast", "box contrast"),
    ("box_sharpness", "box sharpness"),
    ("image_brightness", "image brightness"),
    ("image_contrast", "image contrast"),
    ("image_blur", "image blur"),
)
PARAM_METADATA = ("camera.elevation_deg", "camera.distance", "camera.azimuth_deg", "lights.energy_w")
Z_MIN = 2.0


# ---------------------------------------------------------------------------------------------------------------
# Reading results


def find_results(run: str, real: str, device: str = "cpu", note: Note = silent) -> tuple[str, str]:
    """``(kind, path)`` of the run's results on ``real``; evaluates the run first when there are none."""
    from trainer.data.datasets import dataset_name

    name = dataset_name(real)
    folder = os.path.join(run, "eval", name)
    for kind, file in (("classify", "predictions.csv"), ("detect", "detections.json")):
        if os.path.isfile(os.path.join(folder, file)):
            return kind, os.path.join(folder, file)
    note(f"no results in {folder}: evaluating the run on {real} first")
    from trainer.evaluation.evaluate import evaluate_run

    try:
        evaluate_run(run, real, out_dir=folder, device=device)
    except (ValueError, OSError, RuntimeError, KeyError) as e:
        raise GapError(f"could not evaluate {run!r} on {real!r}: {e}") from e
    for kind, file in (("classify", "predictions.csv"), ("detect", "detections.json")):
        if os.path.isfile(os.path.join(folder, file)):
            return kind, os.path.join(folder, file)
    raise GapError(f"evaluating {run!r} wrote neither predictions.csv nor detections.json into {folder}")


def outcomes_classification(path: str, coco: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per prediction: class, right/wrong, and the ids to join metadata on."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"image_id", "annotation_id", "true", "pred"} - set(reader.fieldnames or [])
        if missing:
            raise GapError(f"{path}: missing columns {sorted(missing)}")
        for r in reader:
            rows.append(
                {
                    "image_id": int(r["image_id"]),
                    "annotation_id": int(r["annotation_id"]) if r["annotation_id"] not in ("", None) else None,
                    "class": r["true"],
                    "error": r["true"] != r["pred"],
                    "pred": r["pred"],
                }
            )
    if not rows:
        raise GapError(f"{path} holds no predictions")
    return rows


def outcomes_detection(
    path: str, coco: dict[str, Any], score_threshold: float = 0.5, iou_threshold: float = 0.5
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One row per real ground-truth box (missed = error), plus false positives per class."""
    from trainer.evaluation.metrics import match_detections

    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    if not isinstance(results, list):
        raise GapError(f"{path} is not a COCO results list")
    m = match_detections(coco, results, iou_threshold=iou_threshold, score_threshold=score_threshold)
    names = {int(c["id"]): str(c["name"]) for c in coco["categories"]}
    rows = []
    for a in coco["annotations"]:
        if a.get("iscrowd", 0):
            continue
        hit = bool(m["matched"].get(a["id"], False))
        rows.append(
            {
                "image_id": int(a["image_id"]),
                "annotation_id": int(a["id"]),
                "class": names[int(a["category_id"])],
                "error": not hit,
            }
        )
    cats = sorted(names)
    fp = {names[c]: int(v) for c, v in zip(cats, m["fp"], strict=True)}
    return rows, fp


# ---------------------------------------------------------------------------------------------------------------
# Analysis


def class_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per class: n, errors, accuracy/recall with a Wilson interval; worst first."""
    out = []
    for cls in sorted({r["class"] for r in rows}):
        sub = [r for r in rows if r["class"] == cls]
        right = sum(not r["error"] for r in sub)
        lo, hi = wilson_interval(right, len(sub))
        out.append(
            {
                "class": cls,
                "n": len(sub),
                "errors": len(sub) - right,
                "rate": right / len(sub),
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    return sorted(out, key=lambda r: r["rate"])


def error_bins(values: np.ndarray, errors: np.ndarray, name: str, label: str, n_bins: int = 4) -> list[dict]:
    """Quantile bins of ``values``; each with its error rate, Wilson interval and z against the overall rate."""
    ok = np.isfinite(values)
    v, e = values[ok], errors[ok]
    if len(v) < 2 * n_bins or np.unique(v).size < 2:
        return []
    p0 = float(e.mean())
    edges = np.unique(np.quantile(v, np.linspace(0, 1, n_bins + 1)))
    out = []
    for i in range(len(edges) - 1):
        last = i == len(edges) - 2
        sel = (v >= edges[i]) & ((v <= edges[i + 1]) if last else (v < edges[i + 1]))
        n = int(sel.sum())
        if n == 0:
            continue
        k = int(e[sel].sum())
        lo, hi = wilson_interval(k, n)
        z = (k - n * p0) / math.sqrt(n * p0 * (1 - p0)) if 0 < p0 < 1 else 0.0
        out.append(
            {
                "metadata": name,
                "label": label,
                "low": float(edges[i]),
                "high": float(edges[i + 1]),
                "position": "lowest" if i == 0 else ("highest" if last else "middle"),
                "n": n,
                "errors": k,
                "error_rate": k / n,
                "ci_low": lo,
                "ci_high": hi,
                "overall_error_rate": p0,
                "z": float(z),
                "flagged": bool(z >= Z_MIN and lo > p0),
            }
        )
    return out


def _join_metadata(rows: list[dict[str, Any]], meta: Any, coco: dict[str, Any]) -> dict[str, np.ndarray]:
    """Metadata columns aligned with ``rows`` (box columns by annotation id, image columns by image id)."""
    box_index = {int(a): i for i, a in enumerate(meta.boxes["annotation_id"])}
    img_index = {int(a): i for i, a in enumerate(meta.images["image_id"])}
    params = {int(im["id"]): ((im.get("blendset") or {}).get("params") or {}) for im in coco["images"]}
    cols: dict[str, np.ndarray] = {}
    for name, _ in BIN_METADATA:
        table, key, index = (
            (meta.images, "image_id", img_index)
            if name.startswith("image_")
            else (meta.boxes, "annotation_id", box_index)
        )
        if name not in table:
            continue
        vals = []
        for r in rows:
            i = index.get(r[key]) if r.get(key) is not None else None
            vals.append(float(table[name][i]) if i is not None else math.nan)
        cols[name] = np.asarray(vals)
    for p in PARAM_METADATA:
        vals = [params.get(r["image_id"], {}).get(p) for r in rows]
        if any(isinstance(v, (int, float)) for v in vals):
            cols[p] = np.asarray([float(v) if isinstance(v, (int, float)) else math.nan for v in vals])
    return cols


# ---------------------------------------------------------------------------------------------------------------
# The plan


def _rules(bin_: dict[str, Any], base: Any) -> tuple[dict[str, Any], str] | None:
    """Section changes for one flagged bin, and the sentence that explains them; None if no rule applies."""
    from shared.config import CameraRandomizer, LightRandomizer, PostRandomizer, Range

    name, pos = bin_["metadata"], bin_["position"]
    cam = base.camera or CameraRandomizer()
    lights = base.lights or LightRandomizer()
    d = cam.distance
    if name == "box_area" and pos == "lowest":
        new = Range(d.min * 1.3, d.max * 1.6, d.distribution)
        return (
            {"camera": dataclasses.replace(cam, distance=new)},
            f"small boxes fail: camera distance {d.min:g}-{d.max:g} m -> {new.min:.3g}-{new.max:.3g} m "
            "(farther cameras give smaller objects)",
        )
    if name == "box_area" and pos == "highest":
        return (
            {"camera": dataclasses.replace(cam, closeup_share=max(cam.closeup_share, 0.3))},
            "large boxes (close-ups) fail: 30% close-up frames (the gap thesis, 5.3.3: close-ups cut "
            "overlapping predictions 307 -> 75)",
        )
    if name in ("camera.distance",):
        new = Range(max(bin_["low"], 1e-3), max(bin_["high"], bin_["low"] + 1e-3), d.distribution)
        return (
            {"camera": dataclasses.replace(cam, distance=new)},
            f"frames at camera distance {bin_['low']:.3g}-{bin_['high']:.3g} m fail: render that range",
        )
    if name == "camera.elevation_deg":
        lo, hi = max(-90.0, bin_["low"]), min(90.0, bin_["high"])
        return (
            {"camera": dataclasses.replace(cam, elevation_deg=Range(lo, max(hi, lo)))},
            f"frames at elevation {lo:.3g}-{hi:.3g} deg fail: render that range",
        )
    if name in ("image_brightness", "box_brightness", "lights.energy_w") and pos == "lowest":
        e = lights.energy_w
        new = Range(e.min * 0.2, max(e.min * 0.6, e.min * 0.2), e.distribution)
        return (
            {"lights": dataclasses.replace(lights, energy_w=new)},
            f"dark images fail: light energy {e.min:g}-{e.max:g} W -> {new.min:.3g}-{new.max:.3g} W",
        )
    if name in ("image_brightness", "box_brightness", "lights.energy_w") and pos == "highest":
        e = lights.energy_w
        new = Range(e.max, e.max * 2.0, e.distribution)
        return (
            {"lights": dataclasses.replace(lights, energy_w=new)},
            f"bright images fail: light energy {e.min:g}-{e.max:g} W -> {new.min:.3g}-{new.max:.3g} W",
        )
    if (name == "image_blur" and pos == "highest") or (name == "box_sharpness" and pos == "lowest"):
        post = base.post or PostRandomizer()
        return (
            {"post": dataclasses.replace(post, blur_share=max(post.blur_share, 0.4))},
            "blurred images fail: 40% of frames get a post blur",
        )
    return None


def build_plan(
    base: Any, classes: list[dict[str, Any]], bins: list[dict[str, Any]], count: int
) -> tuple[Any, list[str], list[dict[str, Any]]]:
    """The plan config: one component per weak class, every component with the shifted sections."""
    from shared.config import DatasetConfig, MixtureComponent

    overall = sum(c["n"] - c["errors"] for c in classes) / max(1, sum(c["n"] for c in classes))
    weak = [c for c in classes if c["errors"] > 0 and c["rate"] < overall] or [c for c in classes[:1] if c["errors"]]
    if not weak:
        raise GapError("the model makes no errors on the real set: nothing to plan")
    changes: dict[str, Any] = {}
    reasons: list[str] = []
    for b in sorted((b for b in bins if b["flagged"]), key=lambda b: -b["z"]):
        rule = _rules(b, base)
        if rule is None:
            reasons.append(
                f"{b['label']} {b['position']} bin fails ({b['error_rate']:.0%} errors) but has no "
                "automatic rule: consider it by hand"
            )
            continue
        section_changes, why = rule
        taken = [s for s in section_changes if s in changes]
        if taken:
            reasons.append(f"not applied ({', '.join(taken)} already changed for a stronger bin): {why}")
            continue
        changes.update(section_changes)
        reasons.append(why)
    total_err = sum(c["errors"] for c in weak)
    components, quotas = [], []
    for c in weak:
        w = c["errors"] / total_err
        comp = MixtureComponent(weight=round(w, 6), name=f"more {c['class']}", classes=(c["class"],), **changes)
        components.append(comp)
        quotas.append({"class": c["class"], "weight": w, "frames": int(round(count * w))})
    plan = dataclasses.replace(base, count=count, mixture=tuple(components))
    return DatasetConfig.from_dict(plan.to_dict()), reasons, quotas


def suggest(
    run: str,
    real: str,
    out: str,
    base_config: str | None = None,
    count: int = 200,
    score_threshold: float = 0.5,
    device: str = "cpu",
    overwrite: bool = False,
    note: Note = silent,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Error analysis + rendering plan; writes OUT/plan.json, OUT/plan.md and OUT/suggest.json."""
    from shared.config import DatasetConfig, load_config, save_config
    from trainer.gap.analyze import prepare_out
    from trainer.gap.metadata import compute_metadata, load_dataset

    prepare_out(out, ("plan.json", "plan.md", "suggest.json"), overwrite)
    loaded = load_dataset(real, "real")
    kind, path = find_results(run, real, device, note)
    if kind == "classify":
        rows, fp = outcomes_classification(path, loaded.data), {}
    else:
        rows, fp = outcomes_detection(path, loaded.data, score_threshold)
    if not rows:
        raise GapError(f"the real set {real!r} has no labelled samples to analyse")
    meta = compute_metadata(loaded, "real", progress)
    classes = class_table(rows)
    errors = np.asarray([r["error"] for r in rows])
    cols = _join_metadata(rows, meta, loaded.data)
    labels = dict(BIN_METADATA)
    bins = [b for name, v in cols.items() for b in error_bins(v, errors, name, labels.get(name, name))]
    if base_config:
        base = load_config(base_config)
        base_note = f"base config: {base_config}"
    else:
        base = DatasetConfig()
        base_note = "no --base-config: the plan starts from DatasetConfig() defaults; copy its mixture into yours"
    plan, reasons, quotas = build_plan(base, classes, bins, count)
    save_config(plan, os.path.join(out, "plan.json"))
    summary = {
        "run": run,
        "real": real,
        "results": path,
        "kind": kind,
        "samples": len(rows),
        "overall_rate": float(1 - errors.mean()),
        "metric": "accuracy" if kind == "classify" else "recall",
        "classes": classes,
        "false_positives": fp,
        "bins": bins,
        "flagged_bins": [b for b in bins if b["flagged"]],
        "quotas": quotas,
        "changes": reasons,
        "base": base_note,
        "count": count,
    }
    write_json(os.path.join(out, "suggest.json"), summary, indent=2)
    write_text(os.path.join(out, "plan.md"), plan_markdown(summary))
    return summary


def plan_markdown(s: dict[str, Any]) -> str:
    metric = s["metric"]
    lines = [
        "# Rendering plan",
        "",
        f"Model run `{s['run']}` on real set `{s['real']}`: {s['samples']} samples, overall {metric} "
        f"{s['overall_rate']:.3f}. Results read from `{s['results']}`.",
        "",
        f"## Classes, worst {metric} first (95% Wilson interval)",
        "",
        f"| class | n | errors | {metric} | 95% CI |",
        "|---|---|---|---|---|",
    ]
    for c in s["classes"]:
        lines.append(
            f"| {c['class']} | {c['n']} | {c['errors']} | {c['rate']:.3f} | {c['ci_low']:.3f}-{c['ci_high']:.3f} |"
        )
    if s["false_positives"]:
        lines += [
            "",
            "False positives per class (detections matching nothing): "
            + ", ".join(f"{k} {v}" for k, v in s["false_positives"].items()),
        ]
    lines += ["", "## Where errors concentrate", ""]
    flagged = sorted(s["flagged_bins"], key=lambda b: -b["z"])
    if flagged:
        lines += ["| metadata | bin | n | error rate | overall | z |", "|---|---|---|---|---|---|"]
        for b in flagged:
            lines.append(
                f"| {b['label']} | {b['position']} quartile [{b['low']:.3g}, {b['high']:.3g}] | {b['n']} | "
                f"{b['error_rate']:.2f} ({b['ci_low']:.2f}-{b['ci_high']:.2f}) | "
                f"{b['overall_error_rate']:.2f} | {b['z']:.1f} |"
            )
    else:
        lines.append(
            "No metadata bin has a significantly higher error rate (z >= 2 with its interval above the "
            "overall rate); the plan only adds frames of the weak classes."
        )
    lines += ["", f"## The plan: {s['count']} frames", ""]
    for q in s["quotas"]:
        lines.append(f"- **{q['class']}**: {q['frames']} frames (weight {q['weight']:.2f}, its share of the errors)")
    lines += [""] + [f"- {r}" for r in s["changes"]]
    lines += [
        "",
        f"{s['base']}.",
        "",
        "Render it with `blendset render --config plan.json --out more/` plus the `--scene`/`--scene-script` "
        "that rendered the training set, and train on the union. The bias-fix study did "
        "this by hand (about 200 renders of its weakest class raised bear accuracy 0.535 -> 0.648); "
        "check the gain with `blendset eval` on the same real set.",
        "",
    ]
    return "\n".join(lines)
