"""Score a render-parameter regressor on a dataset: ``evaluate_regression`` (``blendset eval`` on a regress run).

Errors are reported in each target's units and in normalized units, always beside the naive baseline (the
training mean), as the variability study does. Writes ``OUT/metrics.json``, ``OUT/errors.csv``,
``OUT/error_distribution.png``, ``OUT/error_vs_<param>.png`` and ``OUT/saliency/*.png``.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Sequence

import numpy as np
import torch

from shared.atomic import atomic_path, atomic_write, write_json
from trainer.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from trainer.models.build import get_classification_model
from trainer.training.checkpoint import Checkpoint, CheckpointError, find_checkpoint, load_checkpoint, load_model_state
from trainer.training.loop import resolve_device
from trainer.training.regress import (
    ParamRecords,
    RegressError,
    RegressionDataset,
    TargetScaler,
    load_param_records,
    numeric_params,
    predict,
)


def load_regressor(run_or_file: str, device: str = "cpu") -> tuple[torch.nn.Module, Checkpoint]:
    """A trained regressor (``best.pth`` preferred) in eval mode and its checkpoint; CheckpointError for a
    checkpoint of another task or one whose weights do not fit."""
    path = find_checkpoint(run_or_file, prefer_best=True)
    ckpt = load_checkpoint(path)
    if ckpt.task != "regress":
        raise CheckpointError(f"{path} is a {ckpt.task!r} checkpoint, not a regressor")
    for key in ("targets", "target_ranges", "target_mean", "image_size"):
        if key not in ckpt:
            raise RegressError(f"{path}: regression checkpoint lacks {key!r}")
    model = get_classification_model(ckpt["model_name"], len(ckpt["targets"]), weights="none")
    load_model_state(model, ckpt["model"], source=path)
    return model.to(device).eval(), ckpt


def saliency_map(model: torch.nn.Module, image: torch.Tensor, target_index: int) -> np.ndarray:
    """|d output[target] / d input|, max over colour channels: which pixels move the prediction (the variability
    study's fig. 9)."""
    model.eval()
    x = image[None].clone().requires_grad_(True)
    model(x)[0, target_index].backward()
    return x.grad[0].abs().amax(dim=0).cpu().numpy()


def moving_average(x: np.ndarray, y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """y smoothed over ``window`` neighbours in x order (the variability study's fig. 8)."""
    order = np.argsort(x)
    xs, ys = x[order], y[order]
    window = max(1, min(window, len(xs)))
    kernel = np.ones(window) / window
    return np.convolve(xs, kernel, "valid"), np.convolve(ys, kernel, "valid")


def _varying_params(records: ParamRecords) -> list[str]:
    keys = sorted(set().union(*(numeric_params(p) for p in records.params)))
    out = []
    for k in keys:
        vals = [p.get(k) for p in records.params if isinstance(p.get(k), (int, float))]
        if len(vals) == len(records.params) and max(vals) > min(vals):
            out.append(k)
    return out


def evaluate_regression(
    run_dir: str,
    data_path: str,
    out_dir: str,
    by_attribute: Sequence[str] | None = None,
    device: str = "cpu",
    saliency_samples: int = 4,
    batch_size: int = 16,
) -> dict:
    """Score a regressor on a dataset and write metrics.json, errors.csv and plots into ``out_dir``.

    Errors are in each target's units and in normalized units (the training range mapped to [-1, 1]).
    ``by_attribute``: recorded parameters to plot the error against, ``NAME`` or ``NAME:BINS`` (default: every
    parameter that varies in the dataset, at most 8). ``device`` may be ``auto``. Returns the metrics dict: per
    target MAE/RMSE for the model and the naive baseline, and the overall normalized MSE of both.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    device = resolve_device(device)
    model, ckpt = load_regressor(run_dir, device)
    names = list(ckpt["targets"])
    scaler = TargetScaler.from_dict(names, ckpt["target_ranges"])
    naive = np.asarray(ckpt["target_mean"], dtype=np.float64)
    records = load_param_records(data_path)
    true = records.values(names)
    true_norm = scaler.normalize(true)
    dataset = RegressionDataset(records, true_norm, int(ckpt["image_size"]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    t0 = time.perf_counter()
    pred_norm = predict(model, loader, device)
    seconds = time.perf_counter() - t0
    pred = scaler.denormalize(pred_norm)
    naive_pred = scaler.denormalize(np.broadcast_to(naive, true_norm.shape))
    os.makedirs(out_dir, exist_ok=True)

    err_model = np.abs(pred - true)
    err_naive = np.abs(naive_pred - true)
    sq_model = (pred_norm - true_norm) ** 2
    sq_naive = (naive[None, :] - true_norm) ** 2
    per_target = {}
    for j, name in enumerate(names):
        per_target[name] = {
            "mae": float(err_model[:, j].mean()),
            "rmse": float(np.sqrt((err_model[:, j] ** 2).mean())),
            "naive_mae": float(err_naive[:, j].mean()),
            "naive_rmse": float(np.sqrt((err_naive[:, j] ** 2).mean())),
            "mse_normalized": float(sq_model[:, j].mean()),
            "naive_mse_normalized": float(sq_naive[:, j].mean()),
        }
    mse, naive_mse = float(sq_model.mean()), float(sq_naive.mean())
    metrics = {
        "task": "regress",
        "dataset": os.path.basename(os.path.normpath(data_path)),
        "out_dir": os.path.abspath(out_dir),
        "data": os.path.abspath(data_path),
        "checkpoint_epoch": ckpt.get("epoch"),
        "images": len(records.paths),
        "targets": names,
        "target_ranges": scaler.to_dict(),
        "mse_normalized": mse,
        "naive_mse_normalized": naive_mse,
        "skill": 1.0 - mse / naive_mse if naive_mse > 0 else None,
        "better_than_naive": mse < naive_mse,
        "per_target": per_target,
        "img_per_s": round(len(records.paths) / seconds, 2) if seconds > 0 else None,
        "device": device,
    }

    _write_errors_csv(os.path.join(out_dir, "errors.csv"), records, names, true, pred, naive_pred)
    plots = [_plot_distribution(plt, out_dir, names, err_model, err_naive)]
    per_sample = sq_model.mean(axis=1)
    per_sample_naive = sq_naive.mean(axis=1)
    # ``blendset eval --by-attribute`` passes ATTR[:BINS]; the curve is a moving average, so bins are not needed.
    attributes = [a.split(":", 1)[0] for a in by_attribute] if by_attribute else _varying_params(records)[:8]
    for attr in attributes:
        x = records.values([attr])[:, 0]
        plots.append(_plot_vs(plt, out_dir, attr, x, per_sample, per_sample_naive))
    plots += _saliency_images(plt, out_dir, model, dataset, records, names, saliency_samples, device)
    metrics["plots"] = [os.path.relpath(p, out_dir) for p in plots]
    metrics["by_attribute"] = attributes
    write_json(os.path.join(out_dir, "metrics.json"), metrics, sort_keys=True, default=str, allow_nan=True)
    return metrics


def _write_errors_csv(path, records, names, true, pred, naive_pred) -> None:
    with atomic_write(path, newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "file", "target", "true", "predicted", "abs_error", "naive_abs_error"])
        for i, image_id in enumerate(records.image_ids):
            for j, name in enumerate(names):
                w.writerow(
                    [
                        image_id,
                        os.path.basename(records.paths[i]),
                        name,
                        f"{true[i, j]:.6g}",
                        f"{pred[i, j]:.6g}",
                        f"{abs(pred[i, j] - true[i, j]):.6g}",
                        f"{abs(naive_pred[i, j] - true[i, j]):.6g}",
                    ]
                )


def _plot_distribution(plt, out_dir, names, err_model, err_naive) -> str:
    """Violin + box per target, model beside naive (the variability study's fig. 7)."""
    fig, axes = plt.subplots(1, len(names), figsize=(max(4.5, 3.2 * len(names)), 3.6), squeeze=False)
    for j, (ax, name) in enumerate(zip(axes[0], names, strict=True)):
        data = [err_model[:, j], err_naive[:, j]]
        if len(err_model) > 1:
            ax.violinplot(data, showextrema=False)
        ax.boxplot(data, widths=0.15)
        ax.set_xticks([1, 2], ["model", "naive"])
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("absolute error")
    fig.suptitle("Absolute error: model vs naive (training mean)", fontsize=10)
    fig.tight_layout()
    path = os.path.join(out_dir, "error_distribution.png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return path


def _plot_vs(plt, out_dir, attr, x, err, err_naive) -> str:
    fig, ax = plt.subplots(figsize=(5, 3.4))
    window = max(3, len(x) // 10)
    ax.scatter(x, err, s=6, alpha=0.3, color="C0")
    for e, label, c in ((err, "model", "C0"), (err_naive, "naive", "C3")):
        mx, my = moving_average(x, e, window)
        ax.plot(mx, my, color=c, label=f"{label} (moving average, {window})")
    ax.set_xlabel(attr)
    ax.set_ylabel("squared error (normalized)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in attr)
    path = os.path.join(out_dir, f"error_vs_{safe}.png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return path


def _saliency_images(plt, out_dir, model, dataset, records, names, count, device) -> list[str]:
    folder = os.path.join(out_dir, "saliency")
    os.makedirs(folder, exist_ok=True)
    paths = []
    mean = np.array(IMAGENET_MEAN)[:, None, None]
    std = np.array(IMAGENET_STD)[:, None, None]
    for i in range(min(count, len(dataset))):
        image, _ = dataset[i]
        sal = saliency_map(model, image.to(device), 0)
        rgb = np.clip(image.cpu().numpy() * std + mean, 0, 1).transpose(1, 2, 0)
        fig, axes = plt.subplots(1, 2, figsize=(5, 2.6))
        axes[0].imshow(rgb)
        axes[0].set_title(f"image {records.image_ids[i]}", fontsize=8)
        axes[1].imshow(sal / (sal.max() + 1e-12), cmap="inferno")
        axes[1].set_title(f"saliency for {names[0]}", fontsize=8)
        for ax in axes:
            ax.axis("off")
        fig.tight_layout()
        path = os.path.join(folder, f"{records.image_ids[i]:06d}.png")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
