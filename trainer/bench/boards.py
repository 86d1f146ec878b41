"""The chessboard benchmark (``blendset bench boards``): do boards rendered by Blendset teach a detector and a
keypoint model that work on real photos?

The real set is OpenCV's 26 calibration photos of a hand-held 9 x 6 chessboard (Debian's ``opencv-doc``), with
ground truth computed at run time (``trainer/bench/boards_real.py``). The protocol, in order:

1. the real set: corners, board box and calibrated board pose for each photo;
2. render the synthetic boards (``scenes/boards/build.py``) with the config of :func:`boards_config`;
3. synthetic only: train a detector and a keypoint model on the renders alone, evaluate on all 26 photos;
4. baselines on the same photos: real only, with pair-wise 2-fold cross-validation (both photos of a stereo
   pair on the same side), and real + synthetic on the same folds (the synthetic-only model fine-tuned on
   batches half real, half synthetic); the synthetic-only models are scored on the same test folds, so every
   row of the table is measured on the same photos;
5. the gap loop: ``gap analyze`` renders vs real, ``gap align`` a second config to the real boxes, render it,
   retrain the synthetic-only models and report what changed on the real photos.

Every step writes its outputs atomically and is skipped when they are already there, so a killed run resumes.
``results.json`` holds every number; ``results.md`` the table; ``predictions.png`` the synthetic-only
keypoint model on real photos.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any

from shared.atomic import write_json, write_text
from shared.progress import Note, silent
from trainer.bench.errors import BenchError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENE_SCRIPT = os.path.join(REPO, "scenes", "boards", "build.py")


@dataclass(frozen=True)
class Scale:
    """How big a run is. The real photos are 640 x 480; renders are made at ``resolution`` and every model
    resizes its input to ``min_size`` (the shorter side), so renders and photos meet at the same scale."""

    name: str
    frames: int
    resolution: tuple[int, int]
    samples: int
    min_size: int
    max_size: int
    detect_epochs: int
    keypoint_epochs: int
    real_epochs: int  # real-only runs see 13 photos an epoch: more epochs for a comparable number of steps
    finetune_epochs: int  # real + synthetic: the synthetic-only model fine-tuned on real + synthetic batches
    batch_size: int
    gap_frames: int
    detect_model: str = "fasterrcnn_mobilenet_v3_large_fpn"
    keypoint_model: str = "keypointrcnn_mobilenet_v3_large_fpn"
    workers: int = 2


SCALES = {
    # the wiring only: a few frames and steps (the test of the whole protocol)
    "toy": Scale("toy", 6, (320, 240), 4, 160, 214, 1, 1, 1, 1, 2, 4, workers=0),
    # the 2-core CPU run. The detector needs about 400 steps from random init before it finds real boards: at
    # 160 px a 4-image step took 0.75 to 7 s here (by load), and 12 epochs of 200 renders (600 steps) reached
    # box AP50 1.000 / AP 0.582 on the real photos. Not yet run end to end at this size.
    "small": Scale("small", 200, (320, 240), 8, 160, 214, 12, 8, 30, 6, 4, 60),
    # for a GPU box
    "full": Scale("full", 4000, (640, 480), 32, 480, 640, 24, 40, 200, 24, 8, 2000, workers=8),
}


def boards_config(scale: Scale, seed: int, background_dir: str | None) -> dict[str, Any]:
    """The render config: what the real photos vary that the scene hook does not (lights, backgrounds, clutter,
    sensor effects). Half the frames get Blender's HDRIs behind the board, half photos from ``background_dir``.
    Greyscale and JPEG artefacts come later, in the training augmentation and the JPEG output."""
    from trainer.bench.boards_real import BOARD_KEYPOINTS

    backgrounds = [
        {"weight": 1.0, "name": "hdri", "background": {"mode": "hdri", "strength": {"min": 0.3, "max": 1.4}}}
    ]
    if background_dir:
        backgrounds.append({
            "weight": 1.0, "name": "photos",
            "background": {"mode": "images", "image_dir": background_dir, "image_scale": {"min": 1.0, "max": 2.5},
                           "strength": {"min": 0.4, "max": 1.2}},
        })  # fmt: skip
    return {
        "schema_version": 1,
        "name": f"boards-{scale.name}",
        "seed": seed,
        "count": scale.frames,
        "classes": [
            {
                "name": "board",
                "id": 1,
                "objects": ["blendset_board"],
                "keypoints": {"source": "empties", "names": list(BOARD_KEYPOINTS)},
            },
        ],  # fmt: skip
        "label_properties": False,
        "render": {"resolution": list(scale.resolution), "samples": scale.samples},
        "output": {"image_format": "JPEG", "jpeg_quality": 80},
        "lights": {
            "count": {"min": 1, "max": 2},
            "types": ["POINT", "AREA"],
            "energy_w": {"min": 5.0, "max": 60.0},
            "distance": {"min": 0.8, "max": 2.5},
            "elevation_deg": {"min": -20.0, "max": 70.0},
        },  # fmt: skip
        "background": backgrounds[0]["background"],
        "distractors": {
            "count": {"min": 0, "max": 1},
            "scale": {"min": 0.02, "max": 0.08},
            "region_min": [-0.15, 0.12, -0.12],
            "region_max": [0.15, 0.3, 0.12],
            "on_surface": False,
        },  # fmt: skip
        "post": {
            "blur_share": 0.3,
            "blur_sigma_px": {"min": 0.3, "max": 1.2},
            "noise_share": 0.7,
            "noise_std": {"min": 0.005, "max": 0.03},
        },  # fmt: skip
        "filters": {"min_visible_pixels": 200},
        "mixture": backgrounds if len(backgrounds) > 1 else [],
    }


# The training augmentation: the real photos are greyscale webcam frames. No flip: a mirrored chessboard is not
# a chessboard (its corner order would change handedness).
AUGMENT = [
    {"grayscale": {"p": 1.0}},
    {"color_jitter": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.0, "hue": 0.0}},
    {"blur": {"p": 0.3, "sigma": [0.1, 1.5], "kernel": 5}},
    {"noise": {"p": 0.5, "std": 0.02}},
]
REAL_AUGMENT = [{"grayscale": {"p": 1.0}}, {"color_jitter": {"brightness": 0.3, "contrast": 0.3}}]


@dataclass
class Context:
    out: str
    scale: Scale
    seed: int
    device: str
    note: Note

    def path(self, *parts: str) -> str:
        return os.path.join(self.out, *parts)


def _done(path: str) -> dict[str, Any] | None:
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return None


# ---------------------------------------------------------------------------------------------------------------
# Steps


def real_set(ctx: Context) -> str:
    from trainer.bench.boards_real import build_real_boards

    out = ctx.path("real")
    if not os.path.isfile(os.path.join(out, "annotations.json")):
        ctx.note("building the real set: corners, boxes and calibrated poses of the 26 photos")
        build_real_boards(out, note=ctx.note)
    return out


def background_photos(ctx: Context) -> str | None:
    """Real photos from scikit-image (CC0 / public domain, none of a chessboard) as render backgrounds."""
    out = ctx.path("backgrounds")
    if os.path.isdir(out) and os.listdir(out):
        return out
    try:
        import skimage.data as data
        from PIL import Image
    except ImportError:
        ctx.note("scikit-image is not installed: renders use Blender's HDRIs only")
        return None
    os.makedirs(out, exist_ok=True)
    from shared.atomic import atomic_path

    for name in ("astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "camera", "page", "text"):
        try:
            array = getattr(data, name)()
        except Exception as exc:  # a dataset missing from this scikit-image build is not fatal
            ctx.note(f"background photo {name!r} unavailable ({type(exc).__name__}); skipped")
            continue
        with atomic_path(os.path.join(out, f"{name}.png")) as tmp:
            Image.fromarray(array).convert("RGB").save(tmp)
    return out


def render(ctx: Context, name: str, config: dict[str, Any], count: int) -> str:
    from shared.config import DatasetConfig, save_config
    from trainer.rendering.launcher import RenderError, RenderJob, run_render

    out = ctx.path(name)
    annotations = os.path.join(out, "annotations.json")
    if os.path.isfile(annotations):
        return out
    cfg_path = ctx.path(f"{name}.config.json")
    save_config(DatasetConfig.from_dict({**config, "count": count}), cfg_path)
    ctx.note(f"rendering {count} boards into {out}")
    t0 = time.time()
    try:
        run_render(RenderJob(cfg_path, out, scene_script=SCENE_SCRIPT, count=count, seed=ctx.seed))
    except RenderError as exc:
        raise BenchError(f"rendering {out} failed: {exc}") from None
    ctx.note(f"rendered {count} frames in {time.time() - t0:.0f} s")
    return out


def subset(real: str, out: str, pairs: set[int]) -> str:
    """The photos of ``pairs`` as their own COCO folder (images copied: a dataset never links outside itself)."""
    if os.path.isfile(os.path.join(out, "annotations.json")):
        return out
    with open(os.path.join(real, "annotations.json"), encoding="utf-8") as f:
        coco = json.load(f)
    images = [im for im in coco["images"] if int(im["board"]["pair"]) in pairs]
    ids = {im["id"] for im in images}
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    for im in images:
        shutil.copyfile(os.path.join(real, "images", im["file_name"]), os.path.join(out, "images", im["file_name"]))
    kept = {**coco, "images": images, "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]}
    write_json(os.path.join(out, "annotations.json"), kept)
    return out


def train_and_eval(
    ctx: Context, task: str, run: str, train: list, test: str, epochs: int, augment: list, **extra: Any
) -> dict:
    """Train one model (detect or keypoints) and evaluate it on ``test``; cached in ``RUN/bench_eval.json``.
    ``extra`` are further training settings (``init_from``, ``epoch_size``)."""
    cached = _done(os.path.join(run, "bench_eval.json"))
    if cached is not None:
        return cached
    from trainer.data.transforms import parse_policy
    from trainer.evaluation.evaluate import evaluate_run

    scale = ctx.scale
    settings = dict(
        epochs=epochs, batch_size=scale.batch_size, min_size=scale.min_size, max_size=scale.max_size,
        augment=parse_policy(augment), seed=ctx.seed, device=ctx.device, workers=scale.workers, resume=os.path.isfile(
            os.path.join(run, "checkpoint.pth")), **extra,
    )  # fmt: skip
    ctx.note(f"training {task} {os.path.basename(run)} ({epochs} epochs)")
    t0 = time.time()
    if task == "detect":
        from trainer.training.detect import train_detector

        train_detector(train, run, model=scale.detect_model, optimizer="sgd", lr=0.02, warmup_iters=50, **settings)
    else:
        from trainer.training.keypoints import train_keypoints

        train_keypoints(train, run, model=scale.keypoint_model, **settings)
    seconds = time.time() - t0
    metrics = evaluate_run(run, test, device=ctx.device, name=os.path.basename(os.path.normpath(test)),
                           workers=0)  # fmt: skip
    row = {"task": task, "run": run, "test": test, "train_seconds": round(seconds, 1), **_headline(metrics)}
    write_json(os.path.join(run, "bench_eval.json"), row, allow_nan=True)
    return row


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numbers the table shows, from an evaluation's metrics.json."""
    box = metrics.get("coco") or metrics.get("box") or {}
    keypoints = metrics.get("keypoints") or {}
    errors, pose = keypoints.get("errors") or {}, keypoints.get("pose") or {}
    pck = errors.get("pck") or {}
    return {
        "box_AP": box.get("mAP"),
        "box_AP50": box.get("AP50"),
        "kp_AP": (keypoints.get("oks") or {}).get("AP"),
        "corner_error_median_px": errors.get("median_px"),
        "pck_2px": pck.get("2px"),
        "pck_5px": pck.get("5px"),
        "pose_rotation_median_deg": (pose.get("rotation_deg") or {}).get("median"),
        "pose_translation_median_mm": (pose.get("translation_mm") or {}).get("median"),
    }


def _mean_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k in rows[0] if k not in ("task", "run", "test")]
    out: dict[str, Any] = {"task": rows[0]["task"], "folds": len(rows)}
    for k in keys:
        values = [r[k] for r in rows if isinstance(r.get(k), (int, float))]
        out[k] = sum(values) / len(values) if len(values) == len(rows) else None
    return out


# ---------------------------------------------------------------------------------------------------------------
# The benchmark


def run_boards_benchmark(
    out: str, scale: str = "small", seed: int = 0, device: str = "auto", gap_loop: bool = True, note: Note = silent
) -> dict[str, Any]:
    """Run the protocol of the module docstring into ``out``; returns (and writes) ``results.json``."""
    if scale not in SCALES:
        raise BenchError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
    from trainer.bench.boards_real import folds
    from trainer.training.loop import resolve_device

    ctx = Context(os.path.abspath(out), SCALES[scale], seed, resolve_device(device), note)
    os.makedirs(ctx.out, exist_ok=True)
    t_start = time.time()
    real = real_set(ctx)
    config = boards_config(ctx.scale, seed, background_photos(ctx))
    synthetic = render(ctx, "synthetic", config, ctx.scale.frames)

    results: dict[str, Any] = {"scale": dataclasses.asdict(ctx.scale), "seed": seed, "device": ctx.device}
    tasks = {"detect": ctx.scale.detect_epochs, "keypoints": ctx.scale.keypoint_epochs}
    with open(os.path.join(real, "annotations.json"), encoding="utf-8") as f:
        pairs = sorted({int(im["board"]["pair"]) for im in json.load(f)["images"]})
    fold_pairs = folds(pairs, k=2)
    tests = [subset(real, ctx.path("folds", f"test{k}"), set(p)) for k, p in enumerate(fold_pairs)]
    trains = [subset(real, ctx.path("folds", f"train{k}"), set(pairs) - set(p)) for k, p in enumerate(fold_pairs)]
    for task, epochs in tasks.items():
        runs = ctx.path("runs")
        synthetic_only = train_and_eval(ctx, task, os.path.join(runs, f"{task}_synthetic"), [synthetic], real,
                                        epochs, AUGMENT)  # fmt: skip
        rows: dict[str, list] = {"synthetic only": [], "real only": [], "real + synthetic": []}
        for k, (train_k, test_k) in enumerate(zip(trains, tests, strict=True)):
            rows["synthetic only"].append(_evaluate_on(ctx, synthetic_only["run"], test_k, task))
            rows["real only"].append(train_and_eval(
                ctx, task, os.path.join(runs, f"{task}_real_fold{k}"), [train_k], test_k, ctx.scale.real_epochs,
                REAL_AUGMENT))  # fmt: skip
            # pretrain on synthetic, fine-tune on batches half real, half synthetic
            rows["real + synthetic"].append(train_and_eval(
                ctx, task, os.path.join(runs, f"{task}_real+synthetic_fold{k}"), [(synthetic, None), (train_k, 0.5)],
                test_k, ctx.scale.finetune_epochs, AUGMENT, init_from=synthetic_only["run"],
                epoch_size=8 * ctx.scale.batch_size))  # fmt: skip
        results[task] = {
            "synthetic only, all 26 photos": synthetic_only,
            **{name: _mean_rows(r) for name, r in rows.items()},
        }
    if gap_loop:
        results["gap_loop"] = _gap_loop(ctx, real, synthetic, config)
    results["seconds"] = round(time.time() - t_start, 1)
    write_json(ctx.path("results.json"), results, allow_nan=True, default=str)
    write_text(ctx.path("results.md"), results_markdown(results))
    return results


def _evaluate_on(ctx: Context, run: str, test: str, task: str) -> dict[str, Any]:
    from trainer.evaluation.evaluate import evaluate_run

    name = os.path.basename(os.path.normpath(test))
    cached = _done(os.path.join(run, "eval", name, "metrics.json"))
    metrics = cached if cached is not None else evaluate_run(run, test, device=ctx.device, name=name, workers=0)
    return {"task": task, "run": run, "test": test, **_headline(metrics)}


def _gap_loop(ctx: Context, real: str, synthetic: str, config: dict[str, Any]) -> dict[str, Any]:
    """``gap analyze`` renders vs real; ``gap align`` a new config to the real boxes; render it; retrain the
    synthetic-only detector on it; compare the largest metadata distance and the box AP before and after."""
    from shared.config import DatasetConfig, save_config
    from trainer.gap.align import align
    from trainer.gap.analyze import analyze

    before = _done(ctx.path("gap", "before", "gap.json")) or analyze(
        synthetic, real, ctx.path("gap", "before"), device=ctx.device, overwrite=True
    )
    base = ctx.path("gap", "base.config.json")
    save_config(DatasetConfig.from_dict(config), base)
    aligned_path = ctx.path("gap", "aligned.config.json")
    if not os.path.isfile(aligned_path):
        align(synthetic, real, base, aligned_path, seed=ctx.seed, overwrite=True)
    with open(aligned_path, encoding="utf-8") as f:
        aligned = json.load(f)
    second = render(ctx, "synthetic_aligned", aligned, ctx.scale.gap_frames)
    after = _done(ctx.path("gap", "after", "gap.json")) or analyze(
        second, real, ctx.path("gap", "after"), device=ctx.device, overwrite=True
    )
    # the same number of steps as the synthetic-only detector, on the first render plus the aligned one
    rerun = train_and_eval(ctx, "detect", ctx.path("runs", "detect_synthetic_aligned"), [synthetic, second], real,
                           ctx.scale.detect_epochs, AUGMENT, epoch_size=ctx.scale.frames)  # fmt: skip
    return {
        "largest_distance_before": _largest(before),
        "largest_distance_after": _largest(after),
        "detect_after": rerun,
    }


def _largest(gap: dict[str, Any]) -> dict[str, Any] | None:
    rows = [r for r in gap.get("metadata", []) if isinstance(r.get("bhattacharyya"), (int, float))]
    if not rows:
        return None
    top = max(rows, key=lambda r: r["bhattacharyya"])
    return {"feature": top.get("name"), "bhattacharyya": top["bhattacharyya"]}


def results_markdown(results: dict[str, Any]) -> str:
    """The README table: every row measured on the real photos."""

    def fmt(v: Any, digits: int = 3) -> str:
        return "n/a" if not isinstance(v, (int, float)) else f"{v:.{digits}f}"

    lines = [
        f"Scale `{results['scale']['name']}`, seed {results['seed']}, device {results['device']}, "
        f"{fmt(results.get('seconds', 0) / 60, 1)} min.",
        "",
        "| task | training set | box AP50 | box AP | keypoint AP | median corner error (px) | PCK@2px | PCK@5px "
        "| pose rotation (deg) | pose translation (mm) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task in ("detect", "keypoints"):
        for name, row in (results.get(task) or {}).items():
            cells = [
                fmt(row.get("box_AP50")), fmt(row.get("box_AP")), fmt(row.get("kp_AP")),
                fmt(row.get("corner_error_median_px"), 2), fmt(row.get("pck_2px")), fmt(row.get("pck_5px")),
                fmt(row.get("pose_rotation_median_deg"), 2), fmt(row.get("pose_translation_median_mm"), 1),
            ]  # fmt: skip
            lines.append(f"| {task} | {name} | " + " | ".join(cells) + " |")
    gap = results.get("gap_loop")
    if gap:
        b, a = gap.get("largest_distance_before") or {}, gap.get("largest_distance_after") or {}
        lines += [
            "",
            f"Gap loop: largest metadata Bhattacharyya distance {fmt(b.get('bhattacharyya'))} ({b.get('feature')}) "
            f"before, {fmt(a.get('bhattacharyya'))} ({a.get('feature')}) after the aligned render; synthetic-only "
            f"box AP50 with the aligned frames added: {fmt((gap.get('detect_after') or {}).get('box_AP50'))}.",
        ]
    return "\n".join(lines) + "\n"
