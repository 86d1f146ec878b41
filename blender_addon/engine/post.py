"""Post-processing of the saved RGB image: read it back through Blender, run the frame's effects
(:func:`shared.post.frame_effects`: weather overlays, blur, noise; pure numpy), write it back in the dataset's
format. Masks and depth are never touched: the effects change pixels only."""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from ..shared.post import frame_effects


def read_rgb(path: str) -> np.ndarray:
    """HxWx3 uint8, top row first, from an image Blender wrote (read back through Blender: no PIL inside)."""
    image = bpy.data.images.load(path, check_existing=False)
    try:
        w, h = image.size
        px = np.empty(w * h * image.channels, dtype=np.float32)
        image.pixels.foreach_get(px)
        rgb = px.reshape(h, w, image.channels)[::-1, :, :3]
        return np.rint(rgb * 255.0).astype(np.uint8)
    finally:
        bpy.data.images.remove(image)


def write_rgb(path: str, rgb: np.ndarray, image_format: str, quality: int) -> None:
    """Write RGB pixels back in the dataset's format (PNG through our encoder, JPEG through Blender). ``path`` is
    the engine's scratch copy, which the writer later moves into the dataset atomically."""
    if image_format == "PNG":
        from .png import encode_png

        with open(path, "wb") as f:
            f.write(encode_png(rgb))
        return
    h, w = rgb.shape[:2]
    image = bpy.data.images.new("blendset_post", w, h, alpha=False)
    try:
        rgba = np.ones((h, w, 4), dtype=np.float32)
        rgba[..., :3] = rgb[::-1].astype(np.float32) / 255.0
        image.pixels.foreach_set(rgba.ravel())
        image.filepath_raw = path
        image.file_format = "JPEG"
        image.save(filepath=path, quality=quality)
    finally:
        bpy.data.images.remove(image)


def post_process(
    rgb_file: str, config: Any, rng: np.random.Generator, params: dict[str, Any], depth: np.ndarray
) -> np.ndarray:
    """Weather overlays, blur and noise on the saved image; returns the final RGB (rewritten when changed). The
    post draws go into ``params`` (``post.blur_sigma_px``, ``post.noise_std``) for the frame record."""
    rgb, changed = frame_effects(rng, read_rgb(rgb_file), params, config.post, depth)
    if changed:
        write_rgb(rgb_file, rgb, config.output.image_format, config.output.jpeg_quality)
    return rgb
