"""Post effects keep shape, dtype and range, and do what they say."""

from __future__ import annotations

import numpy as np
import pytest

from shared.config import PostRandomizer, Range
from shared.post import add_noise, fog, frame_effects, gaussian_blur, rain, snow


def _img(dtype=np.float32):
    rng = np.random.default_rng(0)
    f = rng.random((48, 64, 3)).astype(np.float32) * 0.5 + 0.1
    return (f * 255).round().astype(np.uint8) if dtype == np.uint8 else f.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_shapes_dtypes_ranges(dtype):
    img = _img(dtype)
    rng = np.random.default_rng(1)
    for out in (
        gaussian_blur(img, 1.2),
        add_noise(rng, img, 0.05),
        rain(rng, img, 0.7),
        snow(rng, img, 0.7),
        fog(img, 0.5),
        fog(img, 0.5, depth=np.full(img.shape[:2], 3.0)),
    ):
        assert out.shape == img.shape and out.dtype == img.dtype
        if dtype != np.uint8:
            assert out.min() >= 0 and out.max() <= 1


def test_blur_matches_known_kernel_and_keeps_mean():
    img = np.zeros((31, 31, 3), np.float32)
    img[15, 15] = 1.0
    out = gaussian_blur(img, 2.0)
    assert out.sum() == pytest.approx(1.0 * 3, rel=1e-4)
    x = np.arange(-3, 4)
    ref = np.exp(-0.5 * (x / 2.0) ** 2)
    row = out[15, 12:19, 0]
    assert np.allclose(row / row.max(), ref / ref.max(), rtol=1e-4)
    assert np.array_equal(gaussian_blur(img, 0), img)
    flat = np.full((10, 10, 3), 0.3, np.float32)
    assert np.allclose(gaussian_blur(flat, 3.0), 0.3)  # mirrored borders: no darkening at the edges


def test_noise_statistics_and_alpha_untouched():
    img = np.full((200, 200, 4), 0.5, np.float32)
    out = add_noise(np.random.default_rng(0), img, 0.05)
    assert abs(np.std(out[..., :3]) - 0.05) < 0.003 and np.all(out[..., 3] == 0.5)


def test_weather_brightens_and_grows_with_intensity():
    img = np.full((120, 160, 3), 0.2, np.float32)
    for effect in (rain, snow):
        low = effect(np.random.default_rng(0), img, 0.2)
        high = effect(np.random.default_rng(0), img, 0.9)
        assert img.mean() < low.mean() < high.mean()
        assert np.array_equal(effect(np.random.default_rng(0), img, 0.0), img)
        with pytest.raises(ValueError):
            effect(np.random.default_rng(0), img, 1.5)
    streaks = rain(np.random.default_rng(0), img, 0.8)[..., 0] - 0.2
    # Streaks are elongated: vertical neighbours agree more than horizontal ones.
    v = np.corrcoef(streaks[:-1].ravel(), streaks[1:].ravel())[0, 1]
    h = np.corrcoef(streaks[:, :-1].ravel(), streaks[:, 1:].ravel())[0, 1]
    assert v > h


def test_fog_with_depth_hides_far_things_more():
    img = np.zeros((10, 20, 3), np.float32)
    depth = np.ones((10, 20))
    depth[:, 10:] = 10.0
    depth[0, 0] = np.inf  # no surface: fully fogged
    out = fog(img, 0.5, depth=depth, colour=1.0)
    # Median depth of the surfaces is 10 m (99 at 1 m, 100 at 10 m): t = 0.5 there, 1 - 2**-0.1 at 1 m.
    assert out[5, 15, 0] == pytest.approx(0.5, rel=1e-5)
    assert out[5, 2, 0] == pytest.approx(1 - 2**-0.1, rel=1e-5)
    assert out[5, 15, 0] > out[5, 2, 0] and out[0, 0, 0] == 1.0
    assert np.allclose(fog(img, 0.3, colour=1.0), 0.3)


def _frame() -> np.ndarray:
    return (np.random.default_rng(3).random((24, 32, 3)) * 200 + 20).astype(np.uint8)


def test_frame_effects_without_weather_or_post_is_the_image_unchanged():
    img, params = _frame(), {"weather.fog": 0.0, "weather.rain": 0.0, "weather.snow": 0.0}
    out, changed = frame_effects(np.random.default_rng(0), img, params, None, None)
    assert not changed and out is img
    assert params == {"weather.fog": 0.0, "weather.rain": 0.0, "weather.snow": 0.0}  # nothing recorded
    out, changed = frame_effects(np.random.default_rng(0), img, {}, PostRandomizer(), None)  # shares 0
    assert not changed and out is img


def test_frame_effects_records_the_post_draws_and_applies_them():
    post = PostRandomizer(blur_share=1.0, blur_sigma_px=Range(1.0, 1.0), noise_share=1.0, noise_std=Range(0.02, 0.02))
    img, params = _frame(), {}
    out, changed = frame_effects(np.random.default_rng(0), img, params, post, None)
    assert changed and out.shape == img.shape and out.dtype == np.uint8
    assert params == {"post.blur_sigma_px": 1.0, "post.noise_std": 0.02}
    # the same chain by hand: rng split five ways (fog, rain, snow, noise, draws), blur then noise
    _, _, _, noise_rng, _ = np.random.default_rng(0).spawn(5)
    assert np.array_equal(out, add_noise(noise_rng, gaussian_blur(img, 1.0), 0.02))
    params = {}
    frame_effects(np.random.default_rng(0), img, params, PostRandomizer(blur_share=0.0, noise_share=0.0), None)
    assert params == {"post.blur_sigma_px": 0.0, "post.noise_std": 0.0}


def test_frame_effects_weather_in_order_and_independent_draws():
    img, depth = _frame(), np.full((24, 32), 2.0)
    params = {"weather.fog": 0.3, "weather.rain": 0.5, "weather.snow": 0.0}
    out, changed = frame_effects(np.random.default_rng(7), img, params, None, depth)
    _, rain_rng, _, _, _ = np.random.default_rng(7).spawn(5)
    assert changed and np.array_equal(out, rain(rain_rng, fog(img, 0.3, depth), 0.5))
    # turning weather on does not move the post draws: same generator, same recorded blur and noise
    post = PostRandomizer(blur_share=0.5, noise_share=0.5)
    clear, wet = {}, {"weather.snow": 0.4}
    frame_effects(np.random.default_rng(11), img, clear, post, None)
    frame_effects(np.random.default_rng(11), img, wet, post, None)
    assert {k: wet[k] for k in clear} == clear
    again, _ = frame_effects(np.random.default_rng(7), img, dict(params), None, depth)
    assert np.array_equal(again, out)  # deterministic per generator
