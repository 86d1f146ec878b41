"""``blendset gap align``: fit real box metadata with a Gaussian mixture and write one weighted generator
component per Gaussian (the gap thesis, 4.6.3; bag mAP 0.196 -> 0.454 after aligning box area).

1. Real boxes -> (log10 box area share, box centre y), standardised. GaussianMixture for K = 2..max, K chosen
   by the silhouette score of its labels; K = 1 when BIC prefers one Gaussian over the best K (no structure).
2. Object size from the synthetic set's records, through the pinhole model: a box side of ``sqrt(area_px)``
   pixels seen at distance ``d`` by a camera with focal length ``fx`` pixels means an object of effective size
   ``s = sqrt(area_px) * d / fx`` metres. Median over unoccluded, untruncated boxes; the spread of ``log s``
   (viewpoint and shape) is the part of the real spread a camera distance cannot and need not explain.
3. Each component's mean box share gives the camera distance ``d = fx_t * s / (sqrt(share) * sqrt(W*H))`` for
   the base config's focal length and resolution; its remaining spread becomes a log-uniform distance range
   with the same log-variance. Its mean vertical position moves the look-at point up or down
   (``dz = (cy_real - cy_synthetic) * H * d / (fy * cos(elevation))``) when it differs from the synthetic set's
   by more than 5% of the image height, unless the synthetic frames looked at scattered points (targets that move
   between frames: a fixed look-at point would lose them; the report says so). Elevation stays the base
   config's: box position alone cannot tell a higher camera from a lower look-at point.
4. The output is the base config with ``mixture`` set (weights = GMM weights), checked with
   ``DatasetConfig.from_dict``; the engine renders it directly.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import numpy as np

from shared.atomic import write_json
from trainer.gap import GapError

MIN_CY_SHIFT = 0.05
DEFAULT_SENSOR_MM = 36.0  # Blender's default sensor width


@dataclasses.dataclass
class MixtureFit:
    k: int
    weights: np.ndarray  # (k,)
    means: np.ndarray  # (k, d), original units
    covariances: np.ndarray  # (k, d, d), original units
    silhouettes: dict[int, float]
    bic: dict[int, float]
    labels: np.ndarray
    rule: str


def fit_mixture(x: np.ndarray, components: int | None = None, max_components: int = 6, seed: int = 0) -> MixtureFit:
    """GMM on the rows of ``x`` (standardised internally); K by silhouette unless ``components`` is given."""
    from sklearn.metrics import silhouette_score
    from sklearn.mixture import GaussianMixture

    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        raise GapError("no real samples to fit a mixture to")
    if components is not None:
        if components < 1:
            raise GapError(f"--components must be >= 1, got {components}")
        if n < components:
            raise GapError(
                f"fewer real samples ({n}) than clusters ({components}): lower --components or add real images"
            )
    centre, scale = x.mean(0), x.std(0)
    scale[scale < 1e-12] = 1.0
    z = (x - centre) / scale

    def fit(k: int) -> Any:
        return GaussianMixture(k, covariance_type="full", n_init=3, random_state=seed, reg_covar=1e-4).fit(z)

    silhouettes: dict[int, float] = {}
    bic: dict[int, float] = {}
    models: dict[int, Any] = {}
    if components is not None:
        k, rule = components, f"fixed K={components}"
        models[k] = fit(k)
    else:
        top = min(max_components, n - 1)
        for kk in range(2, top + 1):
            m = fit(kk)
            labels = m.predict(z)
            if len(set(labels)) < 2 or len(set(labels)) >= n:
                continue
            models[kk] = m
            silhouettes[kk] = float(silhouette_score(z, labels))
            bic[kk] = float(m.bic(z))
        models[1] = fit(1)
        bic[1] = float(models[1].bic(z))
        if silhouettes:
            best = max(silhouettes, key=lambda kk: silhouettes[kk])
            if bic[1] <= bic[best]:
                k, rule = 1, f"K=1: BIC prefers one Gaussian over the best silhouette K={best}"
            else:
                k, rule = best, f"K={best}: best silhouette ({silhouettes[best]:.3f})"
        else:
            k, rule = 1, f"K=1: too few real samples ({n}) to compare cluster counts"
    m = models[k]
    means = m.means_ * scale + centre
    covs = m.covariances_ * np.outer(scale, scale)[None]
    return MixtureFit(k, m.weights_.copy(), means, covs, silhouettes, bic, m.predict(z), rule)


# ---------------------------------------------------------------------------------------------------------------
# Pinhole bookkeeping


@dataclasses.dataclass
class SizeModel:
    """Effective object size (m) seen in the synthetic set, and the look-at point it was rendered around."""

    size_m: float
    log10_spread: float  # std of log10(size) over boxes: viewpoint and shape, not distance
    per_class: dict[str, float]
    n_boxes: int
    fx: float
    cy_mean: float
    look_at: tuple[float, float, float] | None
    look_at_spread: float = 0.0  # median distance (m) of the per-frame look-at points from their median


def estimate_size(syn_geo: dict[str, np.ndarray], syn_images: list[dict[str, Any]]) -> SizeModel:
    d = syn_geo.get("distance")
    fx = syn_geo.get("fx")
    if d is None or fx is None or not np.isfinite(d).any() or not np.isfinite(fx).any():
        raise GapError(
            "the synthetic set has no camera K / distance records (images[*].blendset.camera.K, "
            "annotations[*].attributes.distance): align needs a dataset rendered by Blendset"
        )
    ok = np.isfinite(d) & np.isfinite(fx) & (syn_geo["box_area_px"] > 0)
    for key, limit in (("occlusion", 0.1), ("truncation", 0.05)):
        v = syn_geo.get(key)
        if v is not None:
            clean = ok & ~(np.isfinite(v) & (v > limit))
            if clean.sum() >= max(3, 0.2 * ok.sum()):
                ok = clean
    if ok.sum() == 0:
        raise GapError("no synthetic box has both a distance and a camera focal length")
    size = np.sqrt(syn_geo["box_area_px"][ok]) * d[ok] / fx[ok]
    cats = syn_geo["category"][ok]
    per_class = {str(c): float(np.median(size[cats == c])) for c in np.unique(cats)}
    look_at, spread = _look_at(syn_images)
    return SizeModel(
        size_m=float(np.median(size)),
        log10_spread=float(np.std(np.log10(size))),
        per_class=per_class,
        n_boxes=int(ok.sum()),
        fx=float(np.median(fx[ok])),
        cy_mean=float(np.mean(syn_geo["box_center_y"])),
        look_at=look_at,
        look_at_spread=spread,
    )


def _look_at(images: list[dict[str, Any]]) -> tuple[tuple[float, float, float] | None, float]:
    """Median of camera position + forward * camera.distance over frames (where the synthetic cameras looked),
    and how far the per-frame points scatter around it (targets that move between frames scatter it)."""
    points = []
    for im in images:
        bs = im.get("blendset") or {}
        m = (bs.get("camera") or {}).get("world_from_camera")
        dist = (bs.get("params") or {}).get("camera.distance")
        if not (isinstance(m, list) and len(m) >= 3 and isinstance(dist, (int, float))):
            continue
        mat = np.asarray(m, dtype=np.float64)
        points.append(mat[:3, 3] - mat[:3, 2] * float(dist))  # Blender cameras look down their -Z axis
    if not points:
        return None, 0.0
    pts = np.asarray(points)
    p = np.median(pts, axis=0)
    spread = float(np.median(np.linalg.norm(pts - p, axis=1)))
    return (float(p[0]), float(p[1]), float(p[2])), spread


# ---------------------------------------------------------------------------------------------------------------
# Config writing


def component_camera(
    base_cam: Any,
    size: SizeModel,
    mean_log_area: float,
    var_log_area: float,
    cy: float,
    resolution: tuple[int, int],
    sensor_mm: float,
) -> tuple[Any, dict[str, float]]:
    """The camera section for one Gaussian component (see module docstring, step 3)."""
    from shared.config import Range

    w, h = resolution
    focal = (base_cam.focal_length_mm.min + base_cam.focal_length_mm.max) / 2
    fx_t = focal / sensor_mm * max(w, h)  # Blender's AUTO sensor fit: the sensor spans the larger side
    side_share = 10 ** (mean_log_area / 2)  # sqrt(area share)
    d_c = fx_t * size.size_m / (side_share * math.sqrt(w * h))
    d_c = max(d_c, 0.6 * size.size_m)  # closer than that the camera would sit inside the object
    log_sd = math.sqrt(max(var_log_area / 4 - size.log10_spread**2, 0.0))  # log10 of side = half log10 of area
    half = math.sqrt(3.0) * log_sd  # a log-uniform range with that log-variance
    lo, hi = d_c * 10**-half, d_c * 10**half
    lo = max(lo, 0.6 * size.size_m, 1e-3)
    hi = max(hi, lo)
    cam = dataclasses.replace(base_cam, distance=Range(round(lo, 4), round(hi, 4), "loguniform"), closeup_share=0.0)
    info = {"distance_centre_m": d_c, "distance_min_m": lo, "distance_max_m": hi, "fx_target_px": fx_t}
    if abs(cy - size.cy_mean) > MIN_CY_SHIFT and size.look_at is not None and size.look_at_spread > 0.1 * d_c:
        info["look_at_kept"] = (
            f"look-at points scatter {size.look_at_spread:.2f} m between synthetic frames "
            "(the targets move): a fixed look-at point would lose them, vertical position "
            "is not aligned"
        )
    elif abs(cy - size.cy_mean) > MIN_CY_SHIFT and size.look_at is not None:
        elev = math.radians((base_cam.elevation_deg.min + base_cam.elevation_deg.max) / 2)
        dz = (cy - size.cy_mean) * h * d_c / (fx_t * max(math.cos(elev), 0.2))
        x, y, z = size.look_at
        cam = dataclasses.replace(cam, look_at=(round(x, 4), round(y, 4), round(z + dz, 4)))
        info["look_at_dz_m"] = dz
    return cam, info


def align(
    synthetic: str,
    real: str,
    config: str,
    out: str,
    components: int | None = None,
    max_components: int = 6,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the aligned config to ``out`` and a report next to it (``<out stem>.align.json``)."""
    from shared.config import CameraRandomizer, DatasetConfig, MixtureComponent, load_config, save_config
    from trainer.gap.metadata import category_names, check_classes, geometry_table, load_dataset

    if os.path.exists(out) and not overwrite:
        raise GapError(f"{out!r} exists; pass --overwrite to replace")
    base = load_config(config)
    syn = load_dataset(synthetic, "synthetic")
    rea = load_dataset(real, "real")
    notes = check_classes(category_names(syn), category_names(rea))
    syn_geo, real_geo = geometry_table(syn), geometry_table(rea)
    if len(real_geo["annotation_id"]) == 0:
        raise GapError(f"the real set {real!r} has no boxes: nothing to align to")
    size = estimate_size(syn_geo, syn.data["images"])
    x = np.stack([np.log10(np.clip(real_geo["box_area"], 1e-9, None)), real_geo["box_center_y"]], axis=1)
    fit = fit_mixture(x, components, max_components, seed)

    base_cam = base.camera
    if base_cam is None:
        base_cam = CameraRandomizer()
        notes.append("the base config has no camera randomizer: components start from CameraRandomizer() defaults")
    sensors = syn_geo["sensor_width_mm"][np.isfinite(syn_geo["sensor_width_mm"])]
    sensor_mm = float(np.median(sensors)) if len(sensors) else DEFAULT_SENSOR_MM
    mixture = []
    comp_info = []
    for i in np.argsort(-fit.weights):
        mean_log_area, cy = fit.means[i]
        cam, info = component_camera(
            base_cam,
            size,
            float(mean_log_area),
            float(fit.covariances[i][0, 0]),
            float(cy),
            base.render.resolution,
            sensor_mm,
        )
        name = f"gmm{len(mixture)}: box area {100 * 10**mean_log_area:.2g}% of image, centre y {cy:.2f}"
        mixture.append(MixtureComponent(weight=round(float(fit.weights[i]), 6), name=name, camera=cam))
        comp_info.append(
            {
                "name": name,
                "weight": float(fit.weights[i]),
                "mean_log10_area": float(mean_log_area),
                "mean_center_y": float(cy),
                "cov": fit.covariances[i].tolist(),
                **info,
            }
        )
    aligned = dataclasses.replace(base, mixture=tuple(mixture))
    aligned = DatasetConfig.from_dict(aligned.to_dict())  # the engine reads exactly this; fail here, not there
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    save_config(aligned, out)
    report = {
        "config": out,
        "base_config": config,
        "synthetic": synthetic,
        "real": real,
        "real_boxes": int(len(x)),
        "k": fit.k,
        "rule": fit.rule,
        "silhouettes": fit.silhouettes,
        "bic": fit.bic,
        "object_size_m": size.size_m,
        "object_size_log10_spread": size.log10_spread,
        "object_size_per_class_m": size.per_class,
        "size_from_boxes": size.n_boxes,
        "sensor_width_mm": sensor_mm,
        "synthetic_center_y_mean": size.cy_mean,
        "synthetic_look_at": size.look_at,
        "synthetic_look_at_spread_m": size.look_at_spread,
        "components": comp_info,
        "notes": notes,
    }
    if len(x) < 30:
        report["notes"].append(f"only {len(x)} real boxes: the mixture is a rough fit")
    write_json(os.path.splitext(out)[0] + ".align.json", report, indent=2)
    return report
