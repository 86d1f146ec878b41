"""Preview: render one randomized frame through the engine and show it with its boxes, masks and class names in
the "Blendset Preview" image. The scene is restored and the engine's scratch folder removed afterwards."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import bpy

from ..shared import config as cfg
from ..shared.errors import BlendsetError
from .checks import blocked
from .common import config_or_report

PREVIEW_IMAGE = "Blendset Preview"


def _pixels(path: str, non_color: bool) -> Any:
    """Top-down float array (H, W, 4) of an image file, read through Blender and removed again."""
    import numpy as np

    img = bpy.data.images.load(path, check_existing=False)
    try:
        if non_color:
            img.colorspace_settings.name = "Non-Color"
        w, h = img.size
        buf = np.empty(w * h * 4, dtype=np.float32)
        img.pixels.foreach_get(buf)
        return buf.reshape(h, w, 4)[::-1]
    finally:
        bpy.data.images.remove(img)


def show_preview(rgba: Any) -> bpy.types.Image:
    """Put a top-down (H, W, 4) array into the "Blendset Preview" image and show it in open Image Editors."""
    import numpy as np

    h, w = rgba.shape[:2]
    img = bpy.data.images.get(PREVIEW_IMAGE)
    if img is None:
        img = bpy.data.images.new(PREVIEW_IMAGE, w, h, alpha=True)
    elif tuple(img.size) != (w, h):
        img.scale(w, h)
    img.pixels.foreach_set(np.ascontiguousarray(rgba[::-1], dtype=np.float32).ravel())
    img.update()
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = img
                area.tag_redraw()
    return img


def render_preview(scene: bpy.types.Scene, config: cfg.DatasetConfig, seed: int) -> tuple[bpy.types.Image, dict]:
    """Render one frame through the engine and build the overlay image. Returns it and the engine's result
    (``{"record", "paths", "categories", "notes"}``); the engine's scratch folder is removed afterwards."""
    import shutil

    from .. import overlay
    from ..engine import preview_frame

    root = os.path.join(tempfile.gettempdir(), f"blendset_preview_{os.getpid()}")
    result = preview_frame(scene, config, seed, root)
    try:
        rgb = _pixels(result["paths"]["rgb"], non_color=False)
        instance = _pixels(result["paths"]["instance"], non_color=True)[..., 0]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    coco = {"categories": result["categories"], "annotations": result["record"]["annotations"]}
    ids = (instance * 65535.0 + 0.5).astype("uint16")
    colors = {c.name: tuple(c.color) for c in config.classes}
    return show_preview(overlay.compose(rgb, ids, coco, colors)), result


class BLENDSET_OT_preview(bpy.types.Operator):
    """Render one randomized frame with its boxes, masks and class names into the "Blendset Preview" image"""

    bl_idname = "blendset.preview"
    bl_label = "Preview"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not blocked(cls, context, generate=False)

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        config = config_or_report(self, scene)
        if config is None:
            return {"CANCELLED"}
        s = scene.blendset
        if not s.keep_seed:
            s.preview_seed += 1
        try:
            _img, result = render_preview(scene, config, s.preview_seed)
        except BlendsetError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        count = len(result["record"]["annotations"])
        self.report({"INFO"}, f"Preview of sample {s.preview_seed}: {count} annotation(s) in image {PREVIEW_IMAGE!r}")
        for note in result.get("notes", []):
            self.report({"WARNING"}, note)
        return {"FINISHED"}


classes = (BLENDSET_OT_preview,)
