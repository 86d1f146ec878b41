"""Per-frame randomizers: one small applier per config section, chosen by the section's type.

Each applier draws from its own child generator of the frame's generator (so adding a light does not move the
camera), writes through the frame's :class:`SceneState` (undone after the frame) and returns the drawn values
as flat ``section.name`` params, the regression targets of the frame record. Data API only, no ``bpy.ops``.
Datablocks reused across frames (primitive meshes, HDRIs, the engine's world, pool materials) live in
:class:`Caches` and are tracked by the run's base state, so they are created once and removed at close.
"""

from __future__ import annotations

import colorsys
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import singledispatch
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix, Quaternion

from ..shared import post as post_fx
from ..shared.config import (
    BackgroundRandomizer,
    CameraRandomizer,
    DistractorRandomizer,
    LightRandomizer,
    MaterialRandomizer,
    PoseRandomizer,
    WeatherRandomizer,
)
from ..shared.sampling import (
    PlacementError,
    SurfaceRect,
    camera_params,
    light_params,
    look_at_matrix,
    place_on_surfaces,
    sample_camera,
    sample_free_pose,
    sample_int,
    sample_lights,
    sample_range,
)
from .errors import EngineError
from .meshes import list_mesh_files, load_mesh_file, primitive_mesh
from .scene_state import SceneState

# Order of application; each section draws from its own child generator, spawned in this order.
SECTIONS = ("pose", "distractors", "camera", "lights", "materials", "background", "weather")
IMAGE_CACHE_SIZE = 16
MOVERS = ("pose", "distractors")  # sections that move objects


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


@singledispatch
def apply(section: Any, ctx: Context, rng: np.random.Generator, config: Any) -> dict[str, Any]:
    raise TypeError(f"no randomizer for {type(section).__name__}")  # pragma: no cover - schema bug


# ---------------------------------------------------------------------------------------------------------------
# Geometry helpers


def _np(m: Any) -> np.ndarray:
    return np.array([list(row) for row in m], dtype=np.float64)


def _world_corners(ob: Any) -> np.ndarray:
    m = _np(ob.matrix_world)
    c = np.array([list(v) for v in ob.bound_box], dtype=np.float64)
    return c @ m[:3, :3].T + m[:3, 3]


def visible_targets(ctx: Context) -> list[Any]:
    return [t for t in ctx.targets if any(not p.hide_render for p in t.parts)]


def _bounds(objects: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    pts = np.concatenate([_world_corners(o) for o in objects]) if objects else np.zeros((1, 3))
    return pts.min(axis=0), pts.max(axis=0)


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
    m = _np(root.matrix_world)
    inv = np.linalg.inv(m)
    rot_scale = m[:3, :3]
    pts = []
    for p in parts or [root]:
        c = _world_corners(p)
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
        c = _world_corners(ob)
        rects.append(SurfaceRect(c[:, 0].min(), c[:, 0].max(), c[:, 1].min(), c[:, 1].max(), c[:, 2].max()))
    return rects


def _set_world(state: SceneState, ob: Any, m: np.ndarray) -> None:
    state.set_world(ob, Matrix(m.tolist()))


# ---------------------------------------------------------------------------------------------------------------
# Pose


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


def _pool_material(ctx: Context, key: str) -> Any:
    if key not in ctx.caches.materials:
        mat = ctx.base.track(bpy.data.materials.new(f"blendset_{key}"))
        mat.use_nodes = True
        ctx.caches.materials[key] = mat
    return ctx.caches.materials[key]


def _principled(mat: Any) -> Any:
    tree = mat.node_tree if mat is not None else None
    if tree is None:
        return None
    for node in tree.nodes:
        if node.bl_idname == "ShaderNodeBsdfPrincipled":
            return node
    return None


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
        mat = _pool_material(ctx, f"distractor_{i}")
        bsdf = _principled(mat)
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
        lo, hi = _bounds(parts)
        look_at = (lo + hi) / 2.0
    else:
        look_at = np.asarray(section.look_at, dtype=np.float64)
    closeup = None
    cam = ctx.scene.camera
    if section.closeup_share > 0 and shown:
        t = shown[int(pick_rng.integers(len(shown)))]
        lo, hi = _bounds([p for p in t.parts if not p.hide_render])
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


# ---------------------------------------------------------------------------------------------------------------
# Lights


@apply.register
def _(section: LightRandomizer, ctx: Context, rng: np.random.Generator, config: Any) -> dict[str, Any]:
    if not section.keep_scene_lights:
        for ob in ctx.scene.objects:
            if ob.type == "LIGHT":
                ctx.state.set(ob, "hide_render", True)
    lo, hi = _bounds([p for t in visible_targets(ctx) for p in t.parts])
    center = (lo + hi) / 2.0
    samples = sample_lights(rng, section, center)
    for i, s in enumerate(samples):
        light = ctx.state.track(bpy.data.lights.new(f"blendset_light_{i}", s.type))
        light.energy = s.energy
        light.color = s.color
        if s.type == "AREA":
            light.size = 1.0
        ob = ctx.state.track(bpy.data.objects.new(f"blendset_light_{i}", light))
        ctx.scratch.objects.link(ob)
        ob.matrix_world = Matrix(look_at_matrix(s.location, center).tolist())
    return light_params(samples)


# ---------------------------------------------------------------------------------------------------------------
# Materials


def _materials_of(objects: list[Any]) -> list[Any]:
    mats: dict[str, Any] = {}
    for ob in objects:
        for slot in ob.material_slots:
            if slot.material is not None:
                mats.setdefault(slot.material.name, slot.material)
    return [mats[k] for k in sorted(mats)]


def _procedural_material(ctx: Context, kind: str) -> Any:
    key = f"procedural_{kind}"
    if key in ctx.caches.materials:
        return ctx.caches.materials[key]
    mat = _pool_material(ctx, key)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = _principled(mat)
    tex_type = {
        "noise": "ShaderNodeTexNoise",
        "voronoi": "ShaderNodeTexVoronoi",
        "checker": "ShaderNodeTexChecker",
        "wave": "ShaderNodeTexWave",
    }[kind]
    tex = nodes.new(tex_type)
    tex.name = "blendset_texture"
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.name = "blendset_ramp"
    out = tex.outputs["Fac"] if "Fac" in tex.outputs else tex.outputs[0]
    if kind == "voronoi":
        out = tex.outputs["Distance"]
    links.new(out, ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


@apply.register
def _(section: MaterialRandomizer, ctx: Context, rng: np.random.Generator, config: Any) -> dict[str, Any]:
    objects = [p for t in visible_targets(ctx) for p in t.parts]
    if section.apply_to_distractors:
        objects += ctx.distractors
    mats = _materials_of(objects)
    draws: dict[str, list[float]] = {"hue_shift": [], "saturation_scale": [], "value_scale": [], "roughness": []}
    for mat in mats:
        bsdf = _principled(mat)
        h, s, v, rough, metal = (
            sample_range(rng, section.hue_shift),
            sample_range(rng, section.saturation_scale),
            sample_range(rng, section.value_scale),
            sample_range(rng, section.roughness),
            sample_range(rng, section.metallic),
        )
        if bsdf is None:
            continue
        for k, val in zip(draws, (h, s, v, rough), strict=False):
            draws[k].append(val)
        base = bsdf.inputs["Base Color"]
        if not base.is_linked:
            r, g, b, a = base.default_value
            hh, ss, vv = colorsys.rgb_to_hsv(r, g, b)
            rgb = colorsys.hsv_to_rgb((hh + h) % 1.0, min(ss * s, 1.0), vv * v)
            ctx.state.set(base, "default_value", (*rgb, a))
        if not bsdf.inputs["Roughness"].is_linked:
            ctx.state.set(bsdf.inputs["Roughness"], "default_value", rough)
        if not bsdf.inputs["Metallic"].is_linked:
            ctx.state.set(bsdf.inputs["Metallic"], "default_value", metal)
    n_proc = 0
    if section.procedural_share > 0:
        n_proc = _apply_procedural(section, ctx, rng, objects)
    params = {f"materials.{k}": (float(np.mean(v)) if v else None) for k, v in draws.items()}
    params["materials.procedural_count"] = n_proc
    return params


def _apply_procedural(section: MaterialRandomizer, ctx: Context, rng: np.random.Generator, objects: list) -> int:
    """Give a share of the objects a procedural texture (object-linked slots, so meshes stay untouched)."""
    count = 0
    for ob in sorted(objects, key=lambda o: o.name):
        coin = rng.random()
        kind = section.procedural_kinds[int(rng.integers(len(section.procedural_kinds)))]
        scale = float(rng.uniform(2.0, 12.0))
        c1, c2 = colorsys.hsv_to_rgb(*rng.random(3)), colorsys.hsv_to_rgb(*rng.random(3))
        if coin >= section.procedural_share or len(ob.material_slots) == 0:
            continue
        mat = _procedural_material(ctx, kind)
        tree = mat.node_tree
        tex, ramp = tree.nodes["blendset_texture"], tree.nodes["blendset_ramp"]
        if "Scale" in tex.inputs:
            ctx.state.set(tex.inputs["Scale"], "default_value", scale)
        elems = ramp.color_ramp.elements
        ctx.state.set(elems[0], "color", (*c1, 1.0))
        ctx.state.set(elems[-1], "color", (*c2, 1.0))
        for slot in ob.material_slots:
            ctx.state.set(slot, "link", "OBJECT")
            ctx.state.set(slot, "material", mat)
        count += 1
    return count


# ---------------------------------------------------------------------------------------------------------------
# Background


def _engine_world(ctx: Context) -> Any:
    """The engine's own world (the artist's world is never edited): background colour / HDRI / window image."""
    if ctx.caches.world is not None:
        return ctx.caches.world
    world = ctx.base.track(bpy.data.worlds.new("blendset_world"))
    world.use_nodes = True
    nodes, links = world.node_tree.nodes, world.node_tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputWorld")
    bg = nodes.new("ShaderNodeBackground")
    bg.name = "blendset_background"
    links.new(bg.outputs["Background"], out.inputs["Surface"])
    coords = nodes.new("ShaderNodeTexCoord")
    mapping = nodes.new("ShaderNodeMapping")
    mapping.name = "blendset_mapping"
    env = nodes.new("ShaderNodeTexEnvironment")
    env.name = "blendset_env"
    img = nodes.new("ShaderNodeTexImage")
    img.name = "blendset_image"
    img.extension = "EXTEND"
    wmap = nodes.new("ShaderNodeMapping")
    wmap.name = "blendset_window_mapping"
    links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
    links.new(mapping.outputs["Vector"], env.inputs["Vector"])
    links.new(coords.outputs["Window"], wmap.inputs["Vector"])
    links.new(wmap.outputs["Vector"], img.inputs["Vector"])
    ctx.caches.world = world
    return world


def _load_image(ctx: Context, path: str) -> Any:
    cache = ctx.caches.images
    if path in cache:
        cache.move_to_end(path)
        return cache[path]
    try:
        image = bpy.data.images.load(path, check_existing=False)
    except RuntimeError as e:
        raise EngineError(f"cannot load image {path}: {e}", "background") from None
    cache[path] = ctx.base.track(image)
    while len(cache) > IMAGE_CACHE_SIZE:
        _, old = cache.popitem(last=False)
        ctx.base.untrack_remove(old)
    return image


def default_hdri_dir() -> str:
    return bpy.utils.system_resource("DATAFILES", path="studiolights/world")


def _files(ctx: Context, folder: str, suffixes: tuple[str, ...], field_name: str) -> list[str]:
    if folder not in ctx.caches.file_lists:
        try:
            names = sorted(n for n in os.listdir(folder) if n.lower().endswith(suffixes))
        except OSError as e:
            raise EngineError(f"cannot list {folder!r}: {e.strerror}", field_name) from None
        if not names:
            raise EngineError(f"{folder!r} has no {'/'.join(suffixes)} files", field_name)
        ctx.caches.file_lists[folder] = [os.path.join(folder, n) for n in names]
    return ctx.caches.file_lists[folder]


@apply.register
def _(section: BackgroundRandomizer, ctx: Context, rng: np.random.Generator, config: Any) -> dict[str, Any]:
    world = _engine_world(ctx)
    nodes, links = world.node_tree.nodes, world.node_tree.links
    bg = nodes["blendset_background"]
    for link in list(bg.inputs["Color"].links):
        links.remove(link)
    hue, sat, val = (
        sample_range(rng, section.hue),
        sample_range(rng, section.saturation),
        sample_range(rng, section.value),
    )
    strength, rot = sample_range(rng, section.strength), sample_range(rng, section.rotation_deg)
    zoom = sample_range(rng, section.image_scale)
    pick, ox, oy = rng.random(), rng.random(), rng.random()
    params: dict[str, Any] = {"background.strength": strength}
    if section.mode == "color":
        bg.inputs["Color"].default_value = (*colorsys.hsv_to_rgb(hue, sat, 1.0), 1.0)
        bg.inputs["Strength"].default_value = val * strength
        params.update({"background.hue": hue, "background.saturation": sat, "background.value": val})
    elif section.mode == "hdri":
        files = _files(ctx, section.hdri_dir or default_hdri_dir(), (".exr", ".hdr"), "background.hdri_dir")
        index = int(pick * len(files))
        env = nodes["blendset_env"]
        env.image = _load_image(ctx, files[index])
        nodes["blendset_mapping"].inputs["Rotation"].default_value = (0.0, 0.0, math.radians(rot))
        links.new(env.outputs["Color"], bg.inputs["Color"])
        bg.inputs["Strength"].default_value = strength
        params.update({"background.index": index, "background.rotation_deg": rot})
    else:
        files = _files(ctx, section.image_dir, (".png", ".jpg", ".jpeg"), "background.image_dir")
        index = int(pick * len(files))
        img = nodes["blendset_image"]
        img.image = _load_image(ctx, files[index])
        wmap = nodes["blendset_window_mapping"]
        wmap.inputs["Scale"].default_value = (1.0 / zoom, 1.0 / zoom, 1.0)
        wmap.inputs["Location"].default_value = (ox * (1 - 1 / zoom), oy * (1 - 1 / zoom), 0.0)
        links.new(img.outputs["Color"], bg.inputs["Color"])
        bg.inputs["Strength"].default_value = strength
        params.update({"background.index": index, "background.image_scale": zoom})
    ctx.state.set(ctx.scene, "world", world)
    return params


# ---------------------------------------------------------------------------------------------------------------
# Weather: drawn here, applied to the RGB image in post_process (masks and depth stay those of the scene).


WEATHER_KINDS = ("fog", "rain", "snow")


@apply.register
def _(section: WeatherRandomizer, ctx: Context, rng: np.random.Generator, config: Any) -> dict[str, Any]:
    coin = rng.random()
    kind = section.kinds[int(rng.integers(len(section.kinds)))]
    intensity = sample_range(rng, section.intensity)
    params = {f"weather.{k}": 0.0 for k in WEATHER_KINDS}
    if coin < section.share:
        params[f"weather.{kind}"] = intensity
    return params


# ---------------------------------------------------------------------------------------------------------------
# Post: on the saved RGB image


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
    """Write RGB pixels back in the dataset's format (PNG through our encoder, JPEG through Blender)."""
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
    """Weather overlays, blur and noise on the saved image; returns the final RGB (rewritten when changed)."""
    rgb = read_rgb(rgb_file)
    changed = False
    fog_rng, rain_rng, snow_rng, noise_rng, draw_rng = rng.spawn(5)
    if params.get("weather.fog"):
        rgb = post_fx.fog(rgb, params["weather.fog"], depth)
        changed = True
    if params.get("weather.rain"):
        rgb = post_fx.rain(rain_rng, rgb, params["weather.rain"])
        changed = True
    if params.get("weather.snow"):
        rgb = post_fx.snow(snow_rng, rgb, params["weather.snow"])
        changed = True
    p = config.post
    if p is not None:
        blur_coin, noise_coin = draw_rng.random(), draw_rng.random()
        sigma, std = sample_range(draw_rng, p.blur_sigma_px), sample_range(draw_rng, p.noise_std)
        params["post.blur_sigma_px"] = sigma if blur_coin < p.blur_share else 0.0
        params["post.noise_std"] = std if noise_coin < p.noise_share else 0.0
        if params["post.blur_sigma_px"] > 0:
            rgb = post_fx.gaussian_blur(rgb, sigma)
            changed = True
        if params["post.noise_std"] > 0:
            rgb = post_fx.add_noise(noise_rng, rgb, std)
            changed = True
    if changed:
        write_rgb(rgb_file, rgb, config.output.image_format, config.output.jpeg_quality)
    return rgb
