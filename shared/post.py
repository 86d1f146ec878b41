"""Image post effects in numpy: blur, sensor noise, rain streaks, snow flakes, fog.

Images are H x W x C (C = 3 or 4; alpha is left alone) either float (0..1) or uint8; each function returns the
same shape and dtype it was given. Effects change pixels only, never geometry, so masks, boxes and depth stay
valid; that is why the trainer can reuse ``rain`` and ``snow`` as augmentations. Random effects take a
``numpy.random.Generator``.

:func:`frame_effects` is the engine's per-frame chain (weather, then the config's ``post`` section) on a rendered
image; the engine only reads the image from Blender and writes it back (``blender_addon/engine/post.py``).
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

import numpy as np

from .sampling import sample_range

__all__ = ["gaussian_blur", "add_noise", "rain", "snow", "fog", "frame_effects"]


def _to_float(img: np.ndarray) -> tuple[np.ndarray, np.dtype]:
    a = np.asarray(img)
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an H x W or H x W x C image, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0, a.dtype
    if a.dtype.kind != "f":
        raise ValueError(f"images must be uint8 or float, got {a.dtype}")
    return a.astype(np.float32, copy=True), a.dtype


def _back(f: np.ndarray, dtype: np.dtype) -> np.ndarray:
    f = np.clip(f, 0.0, 1.0)
    if dtype == np.uint8:
        return np.round(f * 255.0).astype(np.uint8)
    return f.astype(dtype, copy=False)


def _colour(f: np.ndarray) -> np.ndarray:
    """The colour channels (alpha excluded) as a view."""
    return f if f.ndim == 2 or f.shape[2] < 4 else f[..., :3]


def _kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def _blur_axis(f: np.ndarray, k: np.ndarray, axis: int) -> np.ndarray:
    r = k.size // 2
    pad = [(0, 0)] * f.ndim
    pad[axis] = (r, r)
    p = np.pad(f, pad, mode="reflect" if f.shape[axis] > r else "edge")
    out = np.zeros_like(f)
    n = f.shape[axis]
    index = [slice(None)] * f.ndim
    for i, w in enumerate(k):
        index[axis] = slice(i, i + n)
        out += w * p[tuple(index)]
    return out


def _blur_float(f: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return f
    k = _kernel(sigma)
    return _blur_axis(_blur_axis(f, k, 0), k, 1)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (kernel radius 3 sigma, mirrored borders). ``sigma`` in pixels; 0 is a copy."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    f, dtype = _to_float(img)
    c = _colour(f)
    c[...] = _blur_float(c, sigma)
    return _back(f, dtype)


def add_noise(rng: np.random.Generator, img: np.ndarray, std: float) -> np.ndarray:
    """Additive Gaussian noise, independent per pixel and channel; ``std`` on the 0..1 scale; clipped."""
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    f, dtype = _to_float(img)
    c = _colour(f)
    c += rng.standard_normal(c.shape, dtype=np.float32) * np.float32(std)
    return _back(f, dtype)


def _splat_lines(
    shape: tuple[int, int], x0: np.ndarray, y0: np.ndarray, dx: float, dy: float, length: np.ndarray
) -> np.ndarray:
    """Accumulate anti-aliased-enough line segments into an H x W coverage layer (one sample per pixel step)."""
    h, w = shape
    layer = np.zeros(h * w, dtype=np.float32)
    steps = np.maximum(1, np.ceil(length).astype(np.int64))
    idx = np.repeat(np.arange(x0.size), steps)
    t = np.arange(int(steps.sum())) - np.repeat(np.cumsum(steps) - steps, steps)
    xs = np.round(x0[idx] + dx * t).astype(np.int64)
    ys = np.round(y0[idx] + dy * t).astype(np.int64)
    ok = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    np.add.at(layer, ys[ok] * w + xs[ok], 1.0)
    return np.minimum(layer.reshape(h, w), 1.0)


def _blend(f: np.ndarray, alpha: np.ndarray, colour: float) -> None:
    c = _colour(f)
    a = alpha[..., None] if c.ndim == 3 else alpha
    c *= 1.0 - a
    c += a * colour


def rain(rng: np.random.Generator, img: np.ndarray, intensity: float) -> np.ndarray:
    """Rain streaks: thin, slanted, semi-transparent light lines, slightly blurred, plus a faint veil that lowers
    contrast. ``intensity`` 0..1 scales the number of streaks (up to one per 150 pixels), their length and
    opacity."""
    if not 0 <= intensity <= 1:
        raise ValueError(f"intensity must be in 0..1, got {intensity}")
    f, dtype = _to_float(img)
    h, w = f.shape[:2]
    if intensity == 0:
        return _back(f, dtype)
    n = int(intensity * h * w / 150)
    angle = math.radians(rng.uniform(-20.0, 20.0))  # one wind direction per image
    length = rng.uniform(0.03, 0.03 + 0.07 * intensity, n) * h
    dx, dy = math.sin(angle), math.cos(angle)
    x0 = rng.uniform(-0.2 * w, 1.2 * w, n)
    y0 = rng.uniform(-0.1 * h, h, n)
    layer = _blur_float(_splat_lines((h, w), x0, y0, dx, dy, length), 0.6)
    alpha = np.clip(layer * (0.25 + 0.35 * intensity), 0.0, 1.0)
    _blend(f, alpha, 0.85)
    _blend(f, np.full((h, w), 0.08 * intensity, np.float32), 0.7)
    return _back(f, dtype)


def snow(rng: np.random.Generator, img: np.ndarray, intensity: float) -> np.ndarray:
    """Snow flakes: soft white dots of a few pixels, more and larger with ``intensity`` (0..1), over a faint
    white veil."""
    if not 0 <= intensity <= 1:
        raise ValueError(f"intensity must be in 0..1, got {intensity}")
    f, dtype = _to_float(img)
    h, w = f.shape[:2]
    if intensity == 0:
        return _back(f, dtype)
    n = int(intensity * h * w / 250)
    layer = np.zeros(h * w, dtype=np.float32)
    xs, ys = rng.integers(0, w, n), rng.integers(0, h, n)
    np.add.at(layer, ys * w + xs, rng.uniform(0.5, 1.0, n).astype(np.float32))
    sigma = 0.6 + 1.2 * intensity
    layer = _blur_float(layer.reshape(h, w), sigma) * (2.0 * math.pi * sigma * sigma)  # peak ~ the flake weight
    alpha = np.clip(layer, 0.0, 0.95)
    _blend(f, alpha, 0.97)
    _blend(f, np.full((h, w), 0.1 * intensity, np.float32), 0.9)
    return _back(f, dtype)


def fog(img: np.ndarray, intensity: float, depth: np.ndarray | None = None, colour: float = 0.75) -> np.ndarray:
    """Fog: blend towards a grey ``colour`` by ``t``. Without depth ``t = intensity`` everywhere; with depth
    (H x W metres, non-finite or <= 0 = sky/no surface) ``t = 1 - exp(-k d)`` with ``k`` chosen so that
    ``t = intensity`` at the median scene depth, and ``t = 1`` where there is no surface (Beer-Lambert)."""
    if not 0 <= intensity <= 1:
        raise ValueError(f"intensity must be in 0..1, got {intensity}")
    f, dtype = _to_float(img)
    h, w = f.shape[:2]
    if depth is None:
        t = np.full((h, w), intensity, np.float32)
    else:
        d = np.asarray(depth, dtype=np.float64)
        if d.shape != (h, w):
            raise ValueError(f"depth {d.shape} and image {(h, w)} differ in size")
        valid = np.isfinite(d) & (d > 0)
        if not valid.any() or intensity >= 1:
            t = np.full((h, w), intensity, np.float32)
        else:
            k = -math.log(1.0 - intensity) / float(np.median(d[valid]))
            t = np.where(valid, 1.0 - np.exp(-k * np.where(valid, d, 0.0)), 1.0 if intensity > 0 else 0.0)
            t = t.astype(np.float32)
    _blend(f, t, colour)
    return _back(f, dtype)


def frame_effects(
    rng: np.random.Generator,
    rgb: np.ndarray,
    params: MutableMapping[str, Any],
    post: Any = None,
    depth: np.ndarray | None = None,
) -> tuple[np.ndarray, bool]:
    """One rendered frame's image effects, in the engine's order: the weather the weather randomizer drew
    (``params["weather.fog"]``, ``["weather.rain"]``, ``["weather.snow"]``: intensities, 0 or absent = none),
    then the config's ``post`` section (a ``PostRandomizer``, or None): blur and noise, each on its share of
    frames. The post draws are recorded into ``params`` as ``post.blur_sigma_px`` and ``post.noise_std`` (0 when
    the frame got none). ``depth`` (metres) shapes the fog. Returns the image and whether anything changed it.

    ``rng`` is the frame's post generator; it is split the same way whatever is enabled, so turning one effect
    on leaves the draws of the others as they were."""
    changed = False
    _fog_rng, rain_rng, snow_rng, noise_rng, draw_rng = rng.spawn(5)
    if params.get("weather.fog"):
        rgb = fog(rgb, params["weather.fog"], depth)
        changed = True
    if params.get("weather.rain"):
        rgb = rain(rain_rng, rgb, params["weather.rain"])
        changed = True
    if params.get("weather.snow"):
        rgb = snow(snow_rng, rgb, params["weather.snow"])
        changed = True
    if post is not None:
        blur_coin, noise_coin = draw_rng.random(), draw_rng.random()
        sigma, std = sample_range(draw_rng, post.blur_sigma_px), sample_range(draw_rng, post.noise_std)
        params["post.blur_sigma_px"] = sigma if blur_coin < post.blur_share else 0.0
        params["post.noise_std"] = std if noise_coin < post.noise_share else 0.0
        if params["post.blur_sigma_px"] > 0:
            rgb = gaussian_blur(rgb, sigma)
            changed = True
        if params["post.noise_std"] > 0:
            rgb = add_noise(noise_rng, rgb, std)
            changed = True
    return rgb, changed
