"""``blendset gap score``: one number for a synthetic dataset's distance to a real one, without training
(the gap thesis, section 5.5), with a bootstrap uncertainty.

score = mean of
  - the Bhattacharyya distances of the metadata the gap thesis found to matter (box area, box centre x and y,
    background similarity), and
  - the feature term max(0, KNN(real -> synthetic) / KNN(real -> real) - 1): 0 when real images are as close to
    the synthetic set as to each other.
Lower is closer. The bootstrap resamples real and synthetic images (with their boxes) and recomputes everything.

Read it as the gap thesis found it: datasets whose mAP differs a lot get clearly different scores, but between
datasets of similar quality the correlation with mAP is weak and can even invert locally, and the variance is
large. Use it to catch a broken dataset early, not to rank two good ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.progress import ProgressFn
from trainer.gap import GapError
from trainer.gap import distances as dist

SCORE_METADATA = ("box_area", "box_center_y", "box_center_x", "background_similarity")
CAVEAT = (
    "the gap thesis (5.5): the score separates datasets whose mAP differs a lot, but its correlation with mAP is "
    "weak when datasets are close (it can even invert locally) and its variance is large"
)


def _box_groups(meta: Any) -> list[np.ndarray]:
    """Row indices of each image's boxes, in image order (bootstrap resamples whole images)."""
    index: dict[int, list[int]] = {int(i): [] for i in meta.images["image_id"]}
    for row, iid in enumerate(meta.boxes["image_id"]):
        index.setdefault(int(iid), []).append(row)
    return [np.asarray(index[int(i)], dtype=np.int64) for i in meta.images["image_id"]]


def score_components(
    meta_syn: Any, meta_real: Any, d_rs: np.ndarray, d_rr: np.ndarray, k: int, syn_idx: np.ndarray, real_idx: np.ndarray
) -> dict[str, float]:
    """Every score term on the images ``syn_idx`` / ``real_idx`` (indices may repeat: bootstrap)."""
    from trainer.gap.metadata import SPECS

    g_syn, g_real = _box_groups(meta_syn), _box_groups(meta_real)
    rows_syn = np.concatenate([g_syn[i] for i in syn_idx] + [np.zeros(0, np.int64)])
    rows_real = np.concatenate([g_real[i] for i in real_idx] + [np.zeros(0, np.int64)])
    out: dict[str, float] = {}
    for name in SCORE_METADATA:
        a = meta_syn.boxes.get(name, np.zeros(0))[rows_syn] if len(rows_syn) else np.zeros(0)
        b = meta_real.boxes.get(name, np.zeros(0))[rows_real] if len(rows_real) else np.zeros(0)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if SPECS[name].log:
            a, b = a[a > 0], b[b > 0]
        if len(a) and len(b):
            out[name] = dist.compare_1d(a, b, log=SPECS[name].log).distance
    kk = max(1, min(k, len(real_idx) - 1))
    rs = np.sort(d_rs[np.ix_(real_idx, syn_idx)], axis=1)[:, :kk].mean()
    rr = np.sort(d_rr[np.ix_(real_idx, real_idx)], axis=1)[:, :kk]  # self-pairs are +inf, never neighbours
    rr = rr[np.isfinite(rr).all(axis=1)].mean() if np.isfinite(rr).all(axis=1).any() else np.nan
    out["feature_knn"] = float(max(0.0, rs / rr - 1.0)) if np.isfinite(rr) and rr > 0 else float("nan")
    return out


def score(
    synthetic: str,
    real: str,
    extractor: str = "random",
    n_boot: int = 200,
    k: int = 5,
    size: int = 96,
    device: str = "cpu",
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """The score, its bootstrap mean/std/95% interval, and every term."""
    from trainer.gap.analyze import load_pair, stability_warnings
    from trainer.gap.features import build_extractor, embed_dataset

    inputs = load_pair(synthetic, real, progress)
    if inputs.meta_real.n_images < 2:
        raise GapError(f"the real set has {inputs.meta_real.n_images} image(s); a score needs at least 2")
    ext = build_extractor(extractor, size=size, device=device)
    emb_s = embed_dataset(inputs.synthetic, ext, boxes=False, progress=progress, stage="features (synthetic)")
    emb_r = embed_dataset(inputs.real, ext, boxes=False, progress=progress, stage="features (real)")
    r, s = dist.standardize(emb_r.images, emb_s.images)
    d_rs = dist.pairwise(r, s)
    d_rr = dist.pairwise(r, r)
    np.fill_diagonal(d_rr, np.inf)
    n_s, n_r = len(s), len(r)
    full = score_components(inputs.meta_syn, inputs.meta_real, d_rs, d_rr, k, np.arange(n_s), np.arange(n_r))

    def replicate(rng: np.random.Generator) -> float:
        comp = score_components(
            inputs.meta_syn, inputs.meta_real, d_rs, d_rr, k, rng.integers(0, n_s, n_s), rng.integers(0, n_r, n_r)
        )
        vals = [v for v in comp.values() if np.isfinite(v)]
        return float(np.mean(vals)) if vals else float("nan")

    boot = dist.bootstrap(replicate, n=n_boot, seed=seed)
    vals = [v for v in full.values() if np.isfinite(v)]
    if not vals:
        raise GapError("no score term could be computed (no boxes and no features?)")
    return {
        "score": float(np.mean(vals)),
        "bootstrap": boot,
        "terms": full,
        "extractor": ext.label,
        "random_init": ext.random_init,
        "synthetic_images": n_s,
        "real_images": n_r,
        "caveat": CAVEAT,
        "warnings": stability_warnings(inputs.meta_real),
        "notes": inputs.notes,
    }
