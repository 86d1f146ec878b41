"""How things look: the light, material, background and weather randomizers (registered on
:func:`.base.apply`). Weather is only drawn here; ``engine/post.py`` applies it to the saved RGB image."""

from __future__ import annotations

import colorsys
import math
import os
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix

from ...shared.config import BackgroundRandomizer, LightRandomizer, MaterialRandomizer, WeatherRandomizer
from ...shared.sampling import light_params, look_at_matrix, sample_lights, sample_range
from ..errors import EngineError
from .base import Context, apply, bounds, pool_material, principled, visible_targets

IMAGE_CACHE_SIZE = 16


# ---------------------------------------------------------------------------------------------------------------
# Lights


@apply.register
def _(section: LightRandomizer, ctx: Context, rng: np.random.Generator, config: Any) -> dict[str, Any]:
    if not section.keep_scene_lights:
        for ob in ctx.scene.objects:
            if ob.type == "LIGHT":
                ctx.state.set(ob, "hide_render", True)
    lo, hi = bounds([p for t in visible_targets(ctx) for p in t.parts])
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
    mat = pool_material(ctx, key)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = principled(mat)
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
        bsdf = principled(mat)
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
# Weather: drawn here, applied to the RGB image by engine/post.py (masks and depth stay those of the scene).


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
