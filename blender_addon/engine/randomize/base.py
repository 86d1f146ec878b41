"""What every randomizer shares: the per-run :class:`Caches`, the per-frame :class:`Context`, the
:func:`apply` dispatcher (one applier per config section type, registered by the ``placement`` and
``appearance`` modules) and the geometry and material helpers more than one applier uses."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from functools import singledispatch
from typing import Any

import bpy
import numpy as np

from ..scene_state import SceneState


@dataclass
class Caches:
    """Datablocks kept across frames (owned by the run's base state)."""

    meshes: dict[str, Any] = field(default_factory=dict)
    images: OrderedDict = field(default_factory=OrderedDict)
    world: Any = None
    materials: dict[str, Any] = field(default_factory=dict)
    file_lists: dict[str, list[str]] = field(default_factory=dict)

    def release(self) -> None:
        self.meshes.clear()
        self.images.clear()
        self.world = None
        self.materials.clear()
        self.file_lists.clear()


@dataclass
class Context:
    scene: Any
    view_layer: Any
    targets: list[Any]
    state: SceneState  # this frame's changes
    base: SceneState  # the run's changes (caches)
    scratch: Any  # collection for engine-made objects
    caches: Caches
    distractors: list[Any] = field(default_factory=list)


@singledispatch
def apply(section: Any, ctx: Context, rng: np.random.Generator, config: Any) -> dict[str, Any]:
    raise TypeError(f"no randomizer for {type(section).__name__}")  # pragma: no cover - schema bug


# ---------------------------------------------------------------------------------------------------------------
# Geometry helpers


def as_array(m: Any) -> np.ndarray:
    return np.array([list(row) for row in m], dtype=np.float64)


def world_corners(ob: Any) -> np.ndarray:
    m = as_array(ob.matrix_world)
    c = np.array([list(v) for v in ob.bound_box], dtype=np.float64)
    return c @ m[:3, :3].T + m[:3, 3]


def visible_targets(ctx: Context) -> list[Any]:
    return [t for t in ctx.targets if any(not p.hide_render for p in t.parts)]


def bounds(objects: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    pts = np.concatenate([world_corners(o) for o in objects]) if objects else np.zeros((1, 3))
    return pts.min(axis=0), pts.max(axis=0)


# ---------------------------------------------------------------------------------------------------------------
# Materials the engine owns


def pool_material(ctx: Context, key: str) -> Any:
    if key not in ctx.caches.materials:
        mat = ctx.base.track(bpy.data.materials.new(f"blendset_{key}"))
        mat.use_nodes = True
        ctx.caches.materials[key] = mat
    return ctx.caches.materials[key]


def principled(mat: Any) -> Any:
    tree = mat.node_tree if mat is not None else None
    if tree is None:
        return None
    for node in tree.nodes:
        if node.bl_idname == "ShaderNodeBsdfPrincipled":
            return node
    return None
