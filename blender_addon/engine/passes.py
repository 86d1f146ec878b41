"""Render settings and view-layer passes, and reading the passes back as numpy arrays.

Cycles writes the combined image plus Depth and Object Index (and Normal on request) into one uncompressed
multilayer EXR, which ``shared.exr.read_exr`` parses: no compositor (its API changed in Blender 5) and no
``Render Result`` pixel access (empty in background mode). The RGB image is saved separately through
``save_render``, so it carries the scene's colour management (AgX, Filmic, looks) exactly as Blender shows it.

Object Index is written only by surfaces at or above the view layer's alpha threshold, so masks follow alpha-cut
materials.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..shared.exr import read_exr
from .errors import EngineError
from .scene_state import SceneState

NO_SURFACE = 1e9  # Cycles writes ~1e10 where a ray hits nothing


def render_view_layer(scene: Any) -> Any:
    """The view layer the engine renders: the first one marked for rendering."""
    for vl in scene.view_layers:
        if vl.use:
            return vl
    return scene.view_layers[0]


def setup_render(scene: Any, config: Any, state: SceneState) -> Any:
    """Apply the config's render settings and enable the passes; returns the view layer rendered."""
    rs = config.render
    r = scene.render
    if rs.engine != "CYCLES":
        raise EngineError(
            f"{rs.engine!r}: the engine needs Cycles for its object-index and depth passes", "render.engine"
        )
    state.set(r, "engine", "CYCLES")
    state.set(r, "resolution_x", rs.resolution[0])
    state.set(r, "resolution_y", rs.resolution[1])
    state.set(r, "resolution_percentage", 100)
    state.set(r, "pixel_aspect_x", 1.0)
    state.set(r, "pixel_aspect_y", 1.0)
    state.set(r, "use_border", False)
    state.set(r, "use_persistent_data", True)
    state.set(r, "use_multiview", False)
    for name in dir(r):  # no date, render time or note in the files: the same frame gives the same bytes
        if name.startswith("use_stamp"):
            state.set(r, name, False)
    state.set(r, "threads_mode", "FIXED" if rs.threads > 0 else "AUTO")
    if rs.threads > 0:
        state.set(r, "threads", rs.threads)
    cy = scene.cycles
    state.set(cy, "samples", rs.samples)
    state.set(cy, "use_denoising", rs.denoise)
    state.set(cy, "device", rs.device)
    if hasattr(cy, "use_adaptive_sampling"):
        state.set(cy, "use_adaptive_sampling", False)  # fixed work per frame: reproducible images
    if hasattr(cy, "seed"):
        state.set(cy, "seed", 0)
        state.set(cy, "use_animated_seed", False)
    chosen = render_view_layer(scene)
    for vl in scene.view_layers:
        state.set(vl, "use", vl == chosen)
    state.set(chosen, "use_pass_combined", True)
    state.set(chosen, "use_pass_z", True)
    state.set(chosen, "use_pass_object_index", True)
    state.set(chosen, "use_pass_normal", bool(config.output.normals))
    state.set(chosen, "pass_alpha_threshold", rs.alpha_threshold)
    if hasattr(chosen, "cycles") and hasattr(chosen.cycles, "denoising_store_passes"):
        state.set(chosen.cycles, "denoising_store_passes", False)
    return chosen


def set_exr_output(scene: Any, state: SceneState) -> None:
    """Multilayer, 32-bit float, uncompressed: what ``read_exr`` parses."""
    im = scene.render.image_settings
    if hasattr(im, "media_type"):  # Blender 5: the multilayer choice moved to media_type
        state.set(im, "media_type", "MULTI_LAYER_IMAGE")
    state.set(im, "file_format", "OPEN_EXR_MULTILAYER")
    state.set(im, "color_depth", "32")
    state.set(im, "exr_codec", "NONE")


def set_image_output(scene: Any, config: Any, state: SceneState) -> str:
    """8-bit RGB PNG or JPEG for ``save_render``; returns the file extension."""
    im = scene.render.image_settings
    out = config.output
    if hasattr(im, "media_type"):
        state.set(im, "media_type", "IMAGE")
    if out.image_format == "JPEG":
        state.set(im, "file_format", "JPEG")
        state.set(im, "quality", out.jpeg_quality)
        ext = ".jpg"
    else:
        state.set(im, "file_format", "PNG")
        state.set(im, "color_depth", "8")
        state.set(im, "compression", 15)
        ext = ".png"
    state.set(im, "color_mode", "RGB")
    return ext


def _find(channels: dict[str, np.ndarray], layer: str, names: tuple[str, ...], suffix: str) -> np.ndarray | None:
    for name in names:
        for key in (f"{layer}.{name}.{suffix}", f"{name}.{suffix}"):
            if key in channels:
                return channels[key]
    return None


def read_passes(exr_path: str, layer: str, want_normals: bool) -> dict[str, np.ndarray]:
    """``{"index": uint16 HxW, "depth": float32 HxW metres (0 = no surface, Cycles' planar Z), "normal":
    float32 HxWx3 world space (optional), "combined": float32 HxWx4 linear}``, top row first."""
    ch = read_exr(exr_path)
    index = _find(ch, layer, ("IndexOB", "Object Index"), "X")
    depth = _find(ch, layer, ("Depth",), "Z")
    if index is None or depth is None:
        raise EngineError(f"render passes missing from {exr_path}: found {sorted(ch)[:12]}")
    out: dict[str, np.ndarray] = {}
    out["index"] = np.rint(index).astype(np.uint16)
    d = depth.astype(np.float32)
    d[~np.isfinite(d) | (d >= NO_SURFACE)] = 0.0
    out["depth"] = d
    rgba = [_find(ch, layer, ("Combined",), c) for c in "RGBA"]
    if all(c is not None for c in rgba):
        out["combined"] = np.stack(rgba, axis=-1)
    if want_normals:
        nx = [_find(ch, layer, ("Normal",), c) for c in "XYZ"]
        if all(c is not None for c in nx):
            out["normal"] = np.stack(nx, axis=-1).astype(np.float32)
    return out
