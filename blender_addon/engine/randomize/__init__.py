"""Per-frame randomizers: one small applier per config section, chosen by the section's type.

Each applier draws from its own child generator of the frame's generator (so adding a light does not move the
camera), writes through the frame's :class:`SceneState` (undone after the frame) and returns the drawn values
as flat ``section.name`` params, the regression targets of the frame record. Data API only, no ``bpy.ops``.
Datablocks reused across frames (primitive meshes, HDRIs, the engine's world, pool materials) live in
:class:`Caches` and are tracked by the run's base state, so they are created once and removed at close.

=============  =================================================================================
base           :class:`Caches`, :class:`Context`, the :func:`apply` dispatcher, shared helpers
placement      where things are: pose, distractors, camera
appearance     how things look: lights, materials, background, weather (drawn; applied in post)
=============  =================================================================================

The image effects (weather overlays, blur, noise) run after rendering: ``engine/post.py``.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from ..errors import EngineError
from . import appearance, placement  # noqa: F401  (importing them registers their appliers on apply)
from .base import Caches, Context, apply

__all__ = ["MOVERS", "SECTIONS", "Caches", "Context", "apply", "apply_all", "prepare", "restrict_classes"]

# Order of application; each section draws from its own child generator, spawned in this order.
SECTIONS = ("pose", "distractors", "camera", "lights", "materials", "background", "weather")
MOVERS = ("pose", "distractors")  # sections that move objects


def prepare(ctx: Context, config: Any) -> None:
    """Run-level set-up: a camera when the scene has none but the config places one; folder listings checked."""
    sections = [config] + list(config.mixture)
    if ctx.scene.camera is None and any(s.camera is not None for s in sections):
        cam = ctx.base.track(bpy.data.cameras.new("blendset_camera"))
        ob = ctx.base.track(bpy.data.objects.new("blendset_camera", cam))
        ctx.scratch.objects.link(ob)
        ctx.base.set(ctx.scene, "camera", ob)
    for s in sections:
        pose = s.pose
        if pose is not None and pose.mode == "on_surface":
            for i, name in enumerate(pose.surfaces):
                if name not in ctx.scene.objects:
                    raise EngineError(f"no object named {name!r} in the scene", f"pose.surfaces[{i}]")


def restrict_classes(ctx: Context, classes: tuple[str, ...]) -> None:
    """A mixture component that lists classes hides the other classes' targets for its frames."""
    if not classes:
        return
    keep = set(classes)
    for t in ctx.targets:
        if t.category.name not in keep:
            for part in t.parts:
                ctx.state.set(part, "hide_render", True)


def apply_all(ctx: Context, config: Any, rng: np.random.Generator) -> dict[str, Any]:
    """Apply every configured section in :data:`SECTIONS` order; returns the frame's params."""
    params: dict[str, Any] = {}
    children = dict(zip(SECTIONS, rng.spawn(len(SECTIONS)), strict=False))
    ctx.distractors = []
    for name in SECTIONS:
        section = getattr(config, name)
        if section is None:
            continue
        params.update(apply(section, ctx, children[name], config))
        if name in MOVERS:
            ctx.view_layer.update()  # world matrices (children, proxies) current for the sections after
    return params
