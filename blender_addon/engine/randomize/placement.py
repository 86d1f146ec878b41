"""Where things are: the pose, distractor and camera randomizers (registered on :func:`.base.apply`)."""

from __future__ import annotations

import colorsys
import math
import os
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix, Quaternion

from ...shared.config import CameraRandomizer, DistractorRandomizer, PoseRandomizer
from ...shared.sampling import (
    PlacementError,
    SurfaceRect,
    camera_params,
    look_at_matrix,
    place_on_surfaces,
    sample_camera,
    sample_free_pose,
    sample_int,
    sample_range,
)
from ..errors import EngineError
from ..meshes import list_mesh_files, load_mesh_file, primitive_mesh
from ..scene_state import SceneState
from .base import Context, apply, as_array, bounds, pool_material, principled, visible_targets, world_corners

# ---------------------------------------------------------------------------------------------------------------
# Pose


def _roots(targets: list[Any]) -> list[Any]:
    seen, out = set(), []
    for t in targets:
        key = t.root.as_pointer()
        if key not in seen:
            seen.add(key)
            out.append(t.root)
    return out


def _parts_of_root(ctx: Context, root: Any) -> list[Any]:
    return [p for t in ctx.targets if t.root == root for p in t.parts]


def _footprint(root: Any, parts: list[Any], scale: float) -> tuple[float, float, np.ndarray]:
    """(radius in x/y, lowest z below the origin) of the root's parts in its own rotated, scaled frame."""
    m = as_array(root.matrix_world)
    inv = np.linalg.inv(m)
    rot_scale = m[:3, :3]
    pts = []
    for p in parts or [root]:
        c = world_corners(p)
        local = c @ inv[:3, :3].T + inv[:3, 3]
        pts.append(local)
    local = np.concatenate(pts)
    oriented = local @ rot_scale.T * scale  # world orientation, origin at the root
    radius = float(np.max(np.linalg.norm(oriented[:, :2], axis=1)))
    return radius, float(oriented[:, 2].min()), rot_scale


def _surface_rects(ctx: Context, names: tuple[str, ...]) -> list[SurfaceRect]:
    rects = []
    for i, name in enumerate(names):
        ob = ctx.scene.objects.get(name)
        if ob is None:
            raise EngineError(f"no object named {name!r} in the scene", f"pose.surfaces[{i}]")
        c = world_corners(ob)
        rects.append(SurfaceRect(c[:, 0].min(), c[:, 0].max(), c[:, 1].min(), c[:, 1].max(), c[:, 2].max()))
    return rects


def _set_world(state: SceneState, ob: Any, m: np.ndarray) -> None:
    state.set_world(ob, Matrix(m.tolist()))


@apply.register
def _(section: PoseRandomizer, ctx: Context, rng: np.random.Generator, config: Any) -> dict[str, Any]:
    roots = _roots(visible_targets(ctx))
    movers = [(r, _parts_of_root(ctx, r)) for r in roots]
    extra = []
    d = config.distractors
    if d is not None and d.on_surface and section.mode == "on_surface":
        extra = [(ob, [ob]) for ob in ctx.distractors]
    scales = [sample_range(rng, section.scale) for _ in movers]
    if section.mode == "on_surface":
        surfaces = _surface_rects(ctx, section.surfaces)
        feet = [_footprint(r, parts, s) for (r, parts), s in zip(movers, scales, strict=False)]
        feet += [_footprint(ob, [ob], 1.0) for ob, _ in extra]
        try:
            placed = place_on_surfaces(
                rng, [f[0] for f in feet], surfaces, section.min_gap, section.max_tries, section.z_rotation_deg
            )
        except PlacementError as e:
            raise EngineError(str(e), "pose") from None
        for (ob, _), (x, y, z, yaw), s, (_, low, rot_scale) in zip(
            movers + extra, placed, scales + [1.0] * len(extra), feet, strict=False
        ):
            rz = np.array([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]])
            m = np.eye(4)
            m[:3, :3] = rz @ rot_scale * s
            m[:3, 3] = (x, y, z - low)
            _set_world(ctx.state, ob, m)
    else:
        for (ob, _), s in zip(movers, scales, strict=False):
            loc, q = sample_free_pose(rng, section.region_min, section.region_max)
            rot = np.array(Quaternion(q).to_matrix())
            scale = np.array(ob.matrix_world.to_scale())
            m = np.eye(4)
            m[:3, :3] = rot * (scale * s)[None, :]
            m[:3, 3] = loc
            _set_world(ctx.state, ob, m)
    return {"pose.scale": float(np.mean(scales)) if scales else None}


# ---------------------------------------------------------------------------------------------------------------
# Distractors


def _distractor_mesh(ctx: Context, kind: str) -> Any:
    if kind not in ctx.caches.meshes:
        mesh = load_mesh_file(kind) if os.path.sep in kind else primitive_mesh(kind)
        mesh.materials.clear()
        mesh.materials.append(None)  # one empty slot: each distractor object links its own colour into it
        ctx.caches.meshes[kind] = ctx.base.track(mesh)
    return ctx.caches.meshes[kind]


@apply.register
def _(section: DistractorRandomizer, ctx: Context, rng: np.random.Generator, config: Any) -> dict[str, Any]:
    kinds = list(section.primitives)
    if section.mesh_dir:
        files = ctx.caches.file_lists.setdefault(section.mesh_dir, list_mesh_files(section.mesh_dir))
        if not files:
            raise EngineError(
                f"{section.mesh_dir!r} has no .obj or .stl file (the engine reads those two)", "distractors.mesh_dir"
            )
        kinds += files
    n = sample_int(rng, section.count)
    for i in range(n):
        kind = kinds[int(rng.integers(len(kinds)))]
        ob = ctx.state.track(bpy.data.objects.new(f"blendset_distractor_{i}", _distractor_mesh(ctx, kind)))
        ctx.scratch.objects.link(ob)
        mat = pool_material(ctx, f"distractor_{i}")
        bsdf = principled(mat)
        if bsdf is not None:
            hsv = (rng.random(), rng.uniform(0.2, 1.0), rng.uniform(0.2, 1.0))
            ctx.state.set(bsdf.inputs["Base Color"], "default_value", (*colorsys.hsv_to_rgb(*hsv), 1.0))
        s = sample_range(rng, section.scale)
        loc, q = sample_free_pose(rng, section.region_min, section.region_max)
        m = np.eye(4)
        m[:3, :3] = np.array(Quaternion(q).to_matrix()) * s
        m[:3, 3] = loc
        ob.matrix_world = Matrix(m.tolist())
        ob["blendset_distractor_material"] = mat.name
        ctx.distractors.append(ob)
    _assign_distractor_materials(ctx)
    return {"distractors.count": n}


def _assign_distractor_materials(ctx: Context) -> None:
    """Distractor objects share cached meshes, so their colour goes on an object-linked material slot."""
    for ob in ctx.distractors:
        mat = bpy.data.materials[ob["blendset_distractor_material"]]
        slot = ob.material_slots[0]
        slot.link = "OBJECT"
        slot.material = mat


# ---------------------------------------------------------------------------------------------------------------
# Camera


@apply.register
def _(section: CameraRandomizer, ctx: Context, rng: np.random.Generator, config: Any) -> dict[str, Any]:
    cam_rng, pick_rng = rng.spawn(2)
    shown = visible_targets(ctx)
    parts = [p for t in shown for p in t.parts if not p.hide_render]
    if section.look_at == "targets":
        lo, hi = bounds(parts)
        look_at = (lo + hi) / 2.0
    else:
        look_at = np.asarray(section.look_at, dtype=np.float64)
    closeup = None
    cam = ctx.scene.camera
    if section.closeup_share > 0 and shown:
        t = shown[int(pick_rng.integers(len(shown)))]
        lo, hi = bounds([p for p in t.parts if not p.hide_render])
        radius = max(float(np.linalg.norm(hi - lo)) / 2.0, 1e-3)
        r = ctx.scene.render
        w, h = r.resolution_x, r.resolution_y
        sensor = cam.data.sensor_width * min(w, h) / max(w, h)
        closeup = ((lo + hi) / 2.0, radius, sensor)
    sample = sample_camera(cam_rng, section, look_at, closeup)
    ctx.state.set(cam.data, "lens", sample.focal_length_mm)
    ctx.state.set(cam.data, "sensor_fit", "AUTO")
    ctx.state.set(cam.data, "shift_x", 0.0)
    ctx.state.set(cam.data, "shift_y", 0.0)
    ctx.state.set(cam.data, "clip_start", min(cam.data.clip_start, 0.01))
    ctx.state.set(cam.data, "clip_end", max(cam.data.clip_end, sample.distance * 10.0))
    ctx.state.set(cam.data, "type", "PERSP")
    m = look_at_matrix(sample.location, sample.target, sample.roll_deg)
    _set_world(ctx.state, cam, m)
    return camera_params(sample)
