"""``blendset gap predict-metadata``: estimate renderer-only metadata (depth, occlusion, background similarity,
object shape) for real boxes (the gap thesis, 4.6.2 "Computing advanced metadatas for real dataset", table
5.8).

For every extractor: box-crop features of the synthetic set -> a linear model per target (ridge regression for
numbers, logistic regression for shape), scored by k-fold cross-validation (R² or accuracy, next to the
majority-class baseline). Features stay frozen. The best extractor per target is then fitted on all synthetic
boxes and labels the real boxes. The gap thesis's caveat applies: a good synthetic score does not guarantee good
real labels (shape labels rated poorly by humans there), because the extractor itself sees a domain gap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from shared.atomic import write_json
from shared.progress import ProgressFn
from trainer.gap import GapError

REGRESSION_TARGETS = ("depth_median", "occlusion", "background_similarity", "occlusion_ad2", "distance")
CLASSIFICATION_TARGETS = ("shape",)
DEFAULT_TARGETS = ("depth_median", "occlusion", "background_similarity", "shape")
MIN_SAMPLES = 10


def target_table(loaded: Any) -> dict[str, np.ndarray]:
    """Renderer-only values per synthetic box, in annotation order (the order ``embed_dataset`` uses)."""
    from trainer.gap.metadata import _num, shape_name

    images = [int(im["id"]) for im in loaded.data["images"]]
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in loaded.data.get("annotations", []):
        by_image.setdefault(int(a["image_id"]), []).append(a)
    rows = [a for iid in images for a in by_image.get(iid, [])]
    out: dict[str, np.ndarray] = {"annotation_id": np.asarray([int(a["id"]) for a in rows], dtype=np.int64)}
    attrs = [a.get("attributes") or {} for a in rows]
    for key in ("depth_median", "occlusion", "background_similarity", "distance", "visible_pixels"):
        out[key] = np.asarray([_num(t.get(key)) for t in attrs], dtype=np.float64)
    out["occlusion_ad2"] = out["visible_pixels"] * out["depth_median"] ** 2
    out["shape"] = np.asarray([shape_name(t) for t in attrs], dtype=object)
    return out


def cross_validate(x: np.ndarray, y: np.ndarray, kind: str, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Mean and std of the k-fold score of a frozen-feature linear model; ``kind`` is regress or classify."""
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n = len(y)
    if kind == "regress":
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
        cv = KFold(min(folds, n), shuffle=True, random_state=seed)
        scores = cross_val_score(model, x, y, cv=cv, scoring="r2")
        return {
            "metric": "r2",
            "score": float(scores.mean()),
            "std": float(scores.std()),
            "n": n,
            "baseline": 0.0,
            "folds": len(scores),
        }
    _, counts = np.unique(y, return_counts=True)
    k = int(min(folds, counts.min()))
    if len(counts) < 2 or k < 2:
        raise GapError("needs at least two shapes with two boxes each")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    scores = cross_val_score(model, x, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed), scoring="accuracy")
    return {
        "metric": "accuracy",
        "score": float(scores.mean()),
        "std": float(scores.std()),
        "n": n,
        "baseline": float(counts.max() / n),
        "folds": len(scores),
    }


def fit_predict(x: np.ndarray, y: np.ndarray, kind: str, x_new: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "regress":
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    else:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return model.fit(x, y).predict(x_new)


def _valid(y: np.ndarray, kind: str) -> np.ndarray:
    if kind == "regress":
        return np.isfinite(y.astype(np.float64))
    return np.asarray([bool(v) for v in y])


def predict_metadata(
    synthetic: str,
    real: str,
    out: str,
    extractors: Sequence[str] = ("random",),
    targets: Sequence[str] = DEFAULT_TARGETS,
    folds: int = 5,
    size: int = 96,
    device: str = "cpu",
    seed: int = 0,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Benchmark extractors on the synthetic boxes, label the real boxes; writes predict_metadata.json and
    real_metadata.csv into ``out``."""
    from trainer.gap.analyze import prepare_out, write_metadata_csv
    from trainer.gap.features import build_extractor, embed_dataset
    from trainer.gap.metadata import category_names, check_classes, load_dataset

    unknown = [t for t in targets if t not in REGRESSION_TARGETS + CLASSIFICATION_TARGETS]
    if unknown:
        raise GapError(f"unknown targets {unknown}; choose from {list(REGRESSION_TARGETS + CLASSIFICATION_TARGETS)}")
    prepare_out(out, ("predict_metadata.json", "real_metadata.csv"), overwrite)
    syn = load_dataset(synthetic, "synthetic")
    rea = load_dataset(real, "real")
    notes = check_classes(category_names(syn), category_names(rea))
    table = target_table(syn)
    if len(table["annotation_id"]) < MIN_SAMPLES:
        raise GapError(
            f"the synthetic set has {len(table['annotation_id'])} boxes; predict-metadata needs at least {MIN_SAMPLES}"
        )
    results: dict[str, dict[str, Any]] = {}
    features: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for spec in extractors:
        ext = build_extractor(spec, size=size, device=device)
        emb_s = embed_dataset(syn, ext, boxes=True, progress=progress, stage=f"{spec}: synthetic boxes")
        emb_r = embed_dataset(rea, ext, boxes=True, progress=progress, stage=f"{spec}: real boxes")
        if not np.array_equal(emb_s.annotation_ids, table["annotation_id"]):
            raise GapError("internal: box order differs between features and targets")  # pragma: no cover
        features[spec] = (emb_s.boxes, emb_r.boxes, emb_r.annotation_ids)
        row: dict[str, Any] = {"label": ext.label, "random_init": ext.random_init, "targets": {}}
        for target in targets:
            kind = "classify" if target in CLASSIFICATION_TARGETS else "regress"
            y = table[target]
            ok = _valid(y, kind)
            if ok.sum() < MIN_SAMPLES:
                row["targets"][target] = {"skipped": f"only {int(ok.sum())} synthetic boxes carry {target}"}
                continue
            yy = y[ok] if kind == "classify" else y[ok].astype(np.float64)
            if kind == "regress" and np.std(yy) < 1e-12:
                row["targets"][target] = {"skipped": f"{target} is constant on the synthetic set"}
                continue
            try:
                row["targets"][target] = cross_validate(emb_s.boxes[ok], yy, kind, folds, seed)
            except GapError as e:
                row["targets"][target] = {"skipped": str(e)}
        results[spec] = row

    best: dict[str, str] = {}
    predicted: dict[str, np.ndarray] = {}
    real_ids = next(iter(features.values()))[2]
    for target in targets:
        scored = [
            (r["targets"][target]["score"], spec)
            for spec, r in results.items()
            if "score" in r["targets"].get(target, {})
        ]
        if not scored or len(real_ids) == 0:
            continue
        spec = max(scored)[1]
        best[target] = spec
        kind = "classify" if target in CLASSIFICATION_TARGETS else "regress"
        xs, xr, _ = features[spec]
        ok = _valid(table[target], kind)
        y = table[target][ok] if kind == "classify" else table[target][ok].astype(np.float64)
        predicted[target] = fit_predict(xs[ok], y, kind, xr)

    csv_table: dict[str, np.ndarray] = {"annotation_id": real_ids}
    for target, values in predicted.items():
        csv_table[f"predicted_{target}"] = values
    write_metadata_csv(os.path.join(out, "real_metadata.csv"), csv_table)
    summary = {
        "synthetic": synthetic,
        "real": real,
        "synthetic_boxes": int(len(table["annotation_id"])),
        "real_boxes": int(len(real_ids)),
        "folds": folds,
        "extractors": results,
        "best_extractor": best,
        "predicted_columns": [f"predicted_{t}" for t in predicted],
        "notes": notes
        + [
            "scores are cross-validated on synthetic boxes only; real labels inherit the extractor's own "
            "synthetic-to-real gap (in the gap thesis, shape labels were rated poorly on real images)",
        ],
    }
    if any(r["random_init"] for r in results.values()):
        summary["notes"].append(
            "a random-init extractor was used: its scores show what colour/texture statistics alone predict"
        )
    write_json(os.path.join(out, "predict_metadata.json"), summary, indent=2)
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """The layout of the gap thesis's table 5.8: one row per extractor, one column per target."""
    targets: list[str] = []
    for r in summary["extractors"].values():
        targets += [t for t in r["targets"] if t not in targets]
    lines = ["extractor".ljust(44) + "".join(t[:20].rjust(22) for t in targets)]
    for spec, r in summary["extractors"].items():
        cells = []
        for t in targets:
            v = r["targets"].get(t, {})
            if "score" in v:
                metric = "R²" if v["metric"] == "r2" else "acc"
                cells.append(f"{metric} {v['score']:.3f}±{v['std']:.3f}".rjust(22))
            else:
                cells.append("skipped".rjust(22))
        lines.append(spec[:44].ljust(44) + "".join(cells))
    return "\n".join(lines)
