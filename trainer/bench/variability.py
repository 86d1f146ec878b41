"""The variability study's experiment with Blendset's own engine and regressor.

Four training sets differ only in nuisance variability (the engine presets ``none``, ``angle``, ``angle_bg``,
``all``); one test set uses ``all``. The same regressor is trained on each training set to predict the head's
shape parameters (``scenes/variability``: ``scene.shape_width``, ``scene.shape_height``, uniform in [-1, 1]), and
all four are scored on the ``all`` test set beside the naive guess of the training mean.

The study's finding to check: the models trained without background variety (``none``, ``angle``) do worse than
the naive guess on ``all``; ``angle_bg`` is slightly better than naive; ``all`` is best.

Folder ``OUT``: ``data/<preset>/`` and ``data/test_all/`` (datasets), ``runs/<preset>/`` (regressors, each with
``eval/test_all/``), ``results.json``, ``table.md``, ``table.csv``, ``errors_violin.png`` and
``error_vs_azimuth.png``. Every stage is skipped when its output is complete, so a killed run resumes.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from dataclasses import dataclass

import numpy as np

from shared.atomic import atomic_path, atomic_write, write_json, write_text
from shared.config import DatasetConfig, OutputSettings, RenderSettings, apply_preset, save_config
from shared.progress import Note, silent
from trainer.bench.errors import BenchError

PRESETS = ("none", "angle", "angle_bg", "all")
TARGETS = ("scene.shape_width", "scene.shape_height")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENE_SCRIPT = os.path.join(ROOT, "scenes", "variability", "build.py")


@dataclass(frozen=True)
class Scale:
    train_count: int
    test_count: int
    resolution: tuple[int, int]
    samples: int
    epochs: int
    image_size: int
    batch_size: int
    model: str = "resnet18"
    lr: float = 1e-3


SCALES = {
    # Wiring check: minutes on 2 CPU cores, numbers too small to mean anything.
    "toy": Scale(train_count=16, test_count=12, resolution=(64, 64), samples=1, epochs=2, image_size=64, batch_size=8),
    # About 8 minutes on 2 busy CPU cores: big enough for the first part of the study's finding to show.
    "small": Scale(
        train_count=96, test_count=48, resolution=(48, 48), samples=2, epochs=8, image_size=48, batch_size=16
    ),
    "full": Scale(
        train_count=4000, test_count=1000, resolution=(160, 160), samples=16, epochs=20, image_size=128, batch_size=64
    ),
}


def base_config(scale: Scale, seed: int) -> DatasetConfig:
    """The common part of all five datasets: the head is the only class, no pose randomizer (the scene script
    draws the shape), depth off (not needed here)."""
    return DatasetConfig(
        name="variability",
        seed=seed,
        count=scale.train_count,
        render=RenderSettings(engine="CYCLES", resolution=scale.resolution, samples=scale.samples),
        output=OutputSettings(depth_png=False),
    )


def render(config: DatasetConfig, out: str, count: int, seed: int, note: Note) -> str:
    """Render through the engine's headless runner (``blender_addon/headless.py``, one Blender process per
    dataset); a complete dataset is kept, a partial one resumes (the engine skips frames it has)."""
    ann = os.path.join(out, "annotations.json")
    if os.path.exists(ann):
        with open(ann, encoding="utf-8") as f:
            if len(json.load(f).get("images", [])) == count:
                note(f"{out}: already rendered ({count} frames)")
                return out
    os.makedirs(out, exist_ok=True)
    cfg_path = os.path.join(os.path.dirname(os.path.abspath(out)), os.path.basename(out) + ".config.json")
    save_config(dataclasses.replace(config, count=count, seed=seed), cfg_path)
    from trainer.rendering.launcher import RenderError, RenderJob, find_blender, have_bpy_module, run_render

    # The bpy module of this Python first, else a Blender binary ($BLENDER or on PATH).
    blender = None if have_bpy_module() else find_blender()
    if blender is None and not have_bpy_module():
        raise BenchError("no Blender to render with: install the bpy module (pip install bpy==4.5.15) or set BLENDER")
    note(f"rendering {count} frames ({config.preset}) into {out}")
    t0 = time.perf_counter()
    try:
        run_render(RenderJob(cfg_path, out, scene_script=SCENE_SCRIPT, count=count, seed=seed), blender=blender)
    except RenderError as e:
        raise BenchError(f"rendering {out} failed: {e}") from None
    note(f"{out}: {count} frames in {time.perf_counter() - t0:.1f} s")
    return out


# CC0 / public-domain photographs bundled with scikit-image: the variability study's "randomly scaled parts of
# randomly chosen photographs" behind the head.
PHOTOS = (
    "astronaut",
    "brick",
    "chelsea",
    "coffee",
    "grass",
    "gravel",
    "hubble_deep_field",
    "rocket",
    "coins",
    "immunohistochemistry",
)


def prepare_backgrounds(folder: str, size: int = 192) -> str | None:
    """Write the bundled photographs as small JPEGs into ``folder``; None when scikit-image is missing (the
    presets then fall back to the HDRIs Blender ships)."""
    try:
        import skimage.data
    except ImportError:
        return None
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for name in PHOTOS:
        path = os.path.join(folder, name + ".jpg")
        if os.path.exists(path) or not hasattr(skimage.data, name):
            continue
        arr = np.asarray(getattr(skimage.data, name)())
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        image = Image.fromarray(arr[..., :3].astype(np.uint8))
        image.thumbnail((size, size))
        with atomic_path(path) as tmp:
            image.save(tmp, quality=90)
    return folder


def scenario_config(base: DatasetConfig, preset: str, photos: str | None) -> DatasetConfig:
    """``apply_preset`` plus, for the presets with background variety, the photographs instead of HDRIs."""
    config = apply_preset(base, preset)
    if photos and config.background is not None and config.background.mode == "hdri":
        config = dataclasses.replace(
            config, background=dataclasses.replace(config.background, mode="images", image_dir=photos)
        )
    return config


def _train(data: str, run: str, scale: Scale, seed: int, device: str, note: Note) -> dict:
    from trainer.training.regress import train_regression

    summary_path = os.path.join(run, "summary.json")
    if os.path.exists(summary_path):
        with open(summary_path, encoding="utf-8") as f:
            summary = json.load(f)
        if summary.get("epochs") == scale.epochs:
            note(f"{run}: already trained")
            return summary
    resume = os.path.exists(os.path.join(run, "checkpoint.pth"))
    return train_regression(
        data,
        None,
        run,
        list(TARGETS),
        model_name=scale.model,
        epochs=scale.epochs,
        batch_size=scale.batch_size,
        lr=scale.lr,
        image_size=scale.image_size,
        seed=seed,
        device=device,
        resume=resume,
        note=note,
    )


def run_variability(out: str, scale: str = "toy", device: str = "cpu", seed: int = 0, note: Note = silent) -> dict:
    """Render, train, evaluate and compare; returns (and writes to ``out/results.json``) the table rows."""
    from trainer.evaluation.regress import evaluate_regression

    if scale not in SCALES:
        raise BenchError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
    sc = SCALES[scale]
    base = base_config(sc, seed)
    t0 = time.perf_counter()
    photos = prepare_backgrounds(os.path.join(out, "data", "backgrounds"))
    note(f"backgrounds: {'photographs in ' + photos if photos else 'the HDRIs Blender ships (no scikit-image)'}")
    test_dir = render(
        scenario_config(base, "all", photos), os.path.join(out, "data", "test_all"), sc.test_count, seed + 1000, note
    )
    rows = []
    for i, preset in enumerate(PRESETS):
        data = render(
            scenario_config(base, preset, photos), os.path.join(out, "data", preset), sc.train_count, seed + i, note
        )
        run = os.path.join(out, "runs", preset)
        summary = _train(data, run, sc, seed, device, note)
        metrics = evaluate_regression(
            run,
            test_dir,
            os.path.join(run, "eval", "test_all"),
            by_attribute=["camera.azimuth_deg"],
            device=device,
            saliency_samples=2,
        )
        rows.append(
            {
                "train": preset,
                "test": "all",
                "mse": metrics["mse_normalized"],
                "naive_mse": metrics["naive_mse_normalized"],
                "skill": metrics["skill"],
                "better_than_naive": metrics["better_than_naive"],
                "train_img_per_s": summary.get("img_per_s"),
                **{f"mae[{t}]": metrics["per_target"][t]["mae"] for t in TARGETS},
            }
        )
    finding = check_finding(rows)
    results = {
        "scale": scale,
        "settings": dataclasses.asdict(sc),
        "device": device,
        "seed": seed,
        "rows": rows,
        "finding": finding,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    _write_tables(out, rows)
    results["plots"] = [_plot_violin(out), _plot_vs_azimuth(out, test_dir)]
    # allow_nan: a skill of NaN (a constant target) is recorded as before rather than failing the run
    write_json(os.path.join(out, "results.json"), results, indent=2, allow_nan=True)
    return results


def check_finding(rows: list[dict]) -> dict:
    """The variability study's qualitative claims, each true or false on these rows."""
    by = {r["train"]: r for r in rows}
    claims = {
        "none_worse_than_naive": by["none"]["mse"] > by["none"]["naive_mse"],
        "angle_worse_than_naive": by["angle"]["mse"] > by["angle"]["naive_mse"],
        "angle_bg_better_than_naive": by["angle_bg"]["mse"] < by["angle_bg"]["naive_mse"],
        "all_best": min(rows, key=lambda r: r["mse"])["train"] == "all",
    }
    claims["reproduced"] = all(claims.values())
    return claims


def _write_tables(out: str, rows: list[dict]) -> None:
    keys = list(rows[0])
    with atomic_write(os.path.join(out, "table.csv"), newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    write_text(os.path.join(out, "table.md"), "\n".join(lines) + "\n")


def _errors(metrics_dir: str) -> dict[str, np.ndarray]:
    """Per-image squared error (mean over targets, target units = [-1, 1] here) of model and naive."""
    per: dict[str, dict[int, list[float]]] = {"model": {}, "naive": {}}
    with open(os.path.join(metrics_dir, "errors.csv"), encoding="utf-8") as f:
        for row in csv.DictReader(f):
            i = int(row["image_id"])
            per["model"].setdefault(i, []).append(float(row["abs_error"]) ** 2)
            per["naive"].setdefault(i, []).append(float(row["naive_abs_error"]) ** 2)
    ids = sorted(per["model"])
    return {"ids": np.array(ids), **{k: np.array([np.mean(per[k][i]) for i in ids]) for k in per}}


def _plot_violin(out: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    data, labels = [], []
    for preset in PRESETS:
        data.append(_errors(os.path.join(out, "runs", preset, "eval", "test_all"))["model"])
        labels.append(preset)
    data.append(_errors(os.path.join(out, "runs", "all", "eval", "test_all"))["naive"])
    labels.append("naive")
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    if all(len(d) > 1 for d in data):
        ax.violinplot(data, showextrema=False, showmedians=True)
    ax.boxplot(data, widths=0.12)
    ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.set_xlabel("training scenario (test: all)")
    ax.set_ylabel("squared error per image")
    ax.set_title("Shape-parameter error on the 'all' test set (as in the variability study, fig. 7)", fontsize=10)
    fig.tight_layout()
    path = os.path.join(out, "errors_violin.png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return os.path.basename(path)


def _plot_vs_azimuth(out: str, test_dir: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from trainer.evaluation.regress import moving_average
    from trainer.training.regress import load_param_records

    test = load_param_records(test_dir)
    azimuth = dict(zip(test.image_ids, test.values(["camera.azimuth_deg"])[:, 0], strict=True))
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for k, preset in enumerate(PRESETS):
        e = _errors(os.path.join(out, "runs", preset, "eval", "test_all"))
        x = np.array([azimuth[i] for i in e["ids"]])
        mx, my = moving_average(x, e["model"], max(3, len(x) // 8))
        ax.plot(mx, my, color=f"C{k}", label=preset)
    e = _errors(os.path.join(out, "runs", "all", "eval", "test_all"))
    x = np.array([azimuth[i] for i in e["ids"]])
    mx, my = moving_average(x, e["naive"], max(3, len(x) // 8))
    ax.plot(mx, my, color="grey", linestyle="--", label="naive")
    ax.set_xlabel("camera azimuth (degrees, 0 = frontal)")
    ax.set_ylabel("squared error (moving average)")
    ax.set_title("Error vs viewing angle on the 'all' test set (as in the variability study, fig. 8)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, "error_vs_azimuth.png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return os.path.basename(path)
