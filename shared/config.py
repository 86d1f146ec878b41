"""The Blendset dataset config: the one schema that the add-on, the headless runner and the trainer read.

Pure standard library, so Blender's bundled Python imports it with no extra packages.

A config is a tree of dataclasses. ``DatasetConfig.from_dict`` checks every key and type, rejects unknown
keys, and raises :class:`ConfigError` naming the field path (``camera.distance.min``). ``to_dict`` writes the
JSON form back; ``from_dict(to_dict(c)) == c`` holds for every valid config.

Every randomizer section is optional: ``null`` (or absent) means "leave the scene as it is".

This module is long because it is the one schema: every field's type, default, range check and doc line live
together here (the add-on's panels, ``config_docs`` and the README reference are walked from it), so splitting
it would put one field's parts in two places.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from .atomic import write_text
from .errors import BlendsetError

SCHEMA_VERSION = 1

__all__ = [
    "SCHEMA_VERSION",
    "PRESETS",
    "ConfigError",
    "Range",
    "IntRange",
    "ClassSpec",
    "RenderSettings",
    "OutputSettings",
    "CameraRandomizer",
    "PoseRandomizer",
    "LightRandomizer",
    "MaterialRandomizer",
    "BackgroundRandomizer",
    "DistractorRandomizer",
    "WeatherRandomizer",
    "PostRandomizer",
    "Filters",
    "MixtureComponent",
    "DatasetConfig",
    "RANDOMIZER_SECTIONS",
    "load_config",
    "save_config",
    "apply_preset",
    "config_hash",
    "resolve_component",
]


class ConfigError(BlendsetError, ValueError):
    """A config value is wrong. ``path`` names the field, e.g. ``camera.distance.min``."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path or '<config>'}: {message}")


# ---------------------------------------------------------------------------------------------------------------
# Value types


@dataclass(frozen=True)
class Range:
    """A scalar drawn per frame: ``uniform`` in [min, max], ``normal`` with mean (min+max)/2 and std (max-min)/4,
    clipped to [min, max], or ``loguniform`` (min > 0). min == max gives a constant."""

    min: float
    max: float
    distribution: Literal["uniform", "normal", "loguniform"] = "uniform"

    def check(self, path: str, lower: float | None = None, upper: float | None = None) -> None:
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            raise ConfigError(path, f"min and max must be finite numbers, got [{self.min}, {self.max}]")
        if self.min > self.max:
            raise ConfigError(path, f"min ({self.min}) is greater than max ({self.max})")
        if lower is not None and self.min < lower:
            raise ConfigError(f"{path}.min", f"must be >= {lower}, got {self.min}")
        if upper is not None and self.max > upper:
            raise ConfigError(f"{path}.max", f"must be <= {upper}, got {self.max}")
        if self.distribution == "loguniform" and self.min <= 0:
            raise ConfigError(f"{path}.min", "loguniform needs min > 0")

    @classmethod
    def const(cls, value: float) -> Range:
        return cls(value, value)


@dataclass(frozen=True)
class IntRange:
    """An integer drawn uniformly from [min, max], both inclusive."""

    min: int
    max: int

    def check(self, path: str, lower: int | None = 0) -> None:
        if self.min > self.max:
            raise ConfigError(path, f"min ({self.min}) is greater than max ({self.max})")
        if lower is not None and self.min < lower:
            raise ConfigError(f"{path}.min", f"must be >= {lower}, got {self.min}")


# ---------------------------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True)
class ClassSpec:
    """One class. Its members are named objects and/or collections (all objects inside, recursively).
    Objects that carry a label in custom properties are added by ``DatasetConfig.label_properties``."""

    name: str
    id: int
    objects: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()
    color: tuple[float, float, float] = (1.0, 0.0, 0.0)


@dataclass(frozen=True)
class RenderSettings:
    engine: Literal["CYCLES", "BLENDER_EEVEE_NEXT", "BLENDER_EEVEE", "BLENDER_WORKBENCH"] = "CYCLES"
    resolution: tuple[int, int] = (320, 240)
    samples: int = 16
    denoise: bool = False
    device: Literal["CPU", "GPU"] = "CPU"
    # Cycles' alpha threshold for the index/depth passes: masks follow alpha-cut materials at this cut.
    alpha_threshold: float = 0.5
    threads: int = 0  # 0: Blender's automatic choice


@dataclass(frozen=True)
class OutputSettings:
    image_format: Literal["PNG", "JPEG"] = "PNG"
    jpeg_quality: int = 90
    depth_png: bool = True  # 16-bit PNG, millimetres; 0 means "no surface"
    depth_float: Literal["none", "npy", "exr"] = "none"  # float32 metres
    normals: bool = False  # float16 .npy, camera space
    polygons: bool = False  # COCO polygons in addition to the RLE masks
    yolo: bool = False  # also write a YOLO export next to annotations.json


@dataclass(frozen=True)
class CameraRandomizer:
    """Camera on a spherical shell (``shell``: uniform on the sphere patch) or an orbit (``orbit``: elevation and
    azimuth drawn independently) around a point of interest. Angles in degrees, distances in metres."""

    mode: Literal["shell", "orbit"] = "shell"
    # Point of interest: "targets" = centroid of the class objects' bounding boxes, else explicit [x, y, z].
    look_at: Union[Literal["targets"], tuple[float, float, float]] = "targets"
    distance: Range = Range(4.0, 8.0)
    elevation_deg: Range = Range(10.0, 60.0)
    azimuth_deg: Range = Range(-180.0, 180.0)
    look_at_jitter: float = 0.1  # metres, each axis, uniform
    focal_length_mm: Range = Range(35.0, 35.0)
    roll_deg: Range = Range(0.0, 0.0)
    # Close-ups: this share of frames moves the camera in until one random target fills `closeup_fill` of the
    # image's smaller side.
    closeup_share: float = 0.0
    closeup_fill: Range = Range(0.6, 0.9)


@dataclass(frozen=True)
class PoseRandomizer:
    """Object pose. ``free``: position uniform in the box, rotation uniform on SO(3). ``on_surface``: dropped
    upright onto the named support objects with only a z rotation, no two targets interpenetrating."""

    mode: Literal["free", "on_surface"] = "on_surface"
    surfaces: tuple[str, ...] = ()  # on_surface: support object names (their top faces)
    region_min: tuple[float, float, float] = (-1.0, -1.0, 0.0)  # free: position box
    region_max: tuple[float, float, float] = (1.0, 1.0, 1.0)
    z_rotation_deg: Range = Range(-180.0, 180.0)
    scale: Range = Range(1.0, 1.0)
    min_gap: float = 0.01  # metres between bounding circles of placed objects
    max_tries: int = 100


@dataclass(frozen=True)
class LightRandomizer:
    """Replaces the scene's lights for the frame (they are restored after). Energy in W (sun: W/m^2)."""

    count: IntRange = IntRange(1, 3)
    types: tuple[Literal["POINT", "SUN", "SPOT", "AREA"], ...] = ("POINT", "AREA")
    energy_w: Range = Range(200.0, 1000.0)
    color_temperature_k: Range = Range(3000.0, 7500.0)
    distance: Range = Range(3.0, 8.0)
    elevation_deg: Range = Range(20.0, 80.0)
    keep_scene_lights: bool = False


@dataclass(frozen=True)
class MaterialRandomizer:
    """Jitters the targets' Principled BSDF. Hue shift in turns [-0.5, 0.5], saturation/value as factors."""

    hue_shift: Range = Range(-0.05, 0.05)
    saturation_scale: Range = Range(0.8, 1.2)
    value_scale: Range = Range(0.7, 1.3)
    roughness: Range = Range(0.2, 0.9)
    metallic: Range = Range(0.0, 0.0)
    procedural_share: float = 0.0  # share of objects that get a procedural texture instead of a flat colour
    procedural_kinds: tuple[Literal["noise", "voronoi", "checker", "wave"], ...] = ("noise", "voronoi", "checker")
    apply_to_distractors: bool = True


@dataclass(frozen=True)
class BackgroundRandomizer:
    """``color``: a flat world colour (HSV value in ``value``); ``hdri``: an equirectangular world from
    ``hdri_dir`` (default: the 8 CC0 HDRIs that Blender ships); ``images``: a random photo from ``image_dir``
    behind the scene, randomly scaled and cropped (the variability study's ``angle_bg``)."""

    mode: Literal["color", "hdri", "images"] = "color"
    hue: Range = Range(0.0, 1.0)
    saturation: Range = Range(0.0, 0.3)
    value: Range = Range(0.2, 0.8)
    hdri_dir: Optional[str] = None
    image_dir: Optional[str] = None
    strength: Range = Range(0.5, 1.5)
    rotation_deg: Range = Range(0.0, 360.0)
    image_scale: Range = Range(1.0, 2.0)  # images: zoom factor of the random crop


@dataclass(frozen=True)
class DistractorRandomizer:
    """Unlabelled clutter: primitives and/or meshes (.obj/.stl) from ``mesh_dir``. Never annotated, but they
    occlude and are counted in occlusion."""

    count: IntRange = IntRange(0, 5)
    primitives: tuple[Literal["cube", "sphere", "cylinder", "cone", "torus", "monkey"], ...] = (
        "cube",
        "sphere",
        "cylinder",
        "cone",
        "torus",
    )
    mesh_dir: Optional[str] = None
    scale: Range = Range(0.2, 0.6)
    region_min: tuple[float, float, float] = (-2.0, -2.0, 0.0)
    region_max: tuple[float, float, float] = (2.0, 2.0, 1.0)
    on_surface: bool = True  # use the pose randomizer's surfaces when it has some


@dataclass(frozen=True)
class WeatherRandomizer:
    """Weather: ``fog`` as a depth-dependent haze, ``rain``/``snow`` as streak/flake overlays, all composited
    onto the RGB only (masks and depth stay those of the scene). ``share`` of frames get weather."""

    kinds: tuple[Literal["fog", "rain", "snow"], ...] = ("rain", "snow")
    share: float = 0.5
    intensity: Range = Range(0.2, 0.8)


@dataclass(frozen=True)
class PostRandomizer:
    """Applied to the RGB image after rendering. Blur sigma in pixels; noise std on the 0..1 scale."""

    blur_share: float = 0.0
    blur_sigma_px: Range = Range(0.5, 1.5)
    noise_share: float = 0.0
    noise_std: Range = Range(0.005, 0.03)


@dataclass(frozen=True)
class Filters:
    """Instances below ``min_visible_pixels`` or above ``max_occlusion`` get no annotation. Each one dropped is
    listed with its reason in the frame record (``dropped``), never silently."""

    min_visible_pixels: int = 50
    max_occlusion: float = 1.0
    # Frames with no annotation left are kept (empty images are valid training data) unless this is true.
    drop_empty_frames: bool = False


@dataclass(frozen=True)
class MixtureComponent:
    """A weighted sub-config. A frame draws one component with probability weight/sum(weights); the component's
    sections replace the base config's (whole sections, not merged field by field). ``classes`` restricts
    which classes appear in its frames (others are hidden): per-class quotas for re-rendering weak classes."""

    weight: float = 1.0
    name: str = ""
    camera: Optional[CameraRandomizer] = None
    pose: Optional[PoseRandomizer] = None
    lights: Optional[LightRandomizer] = None
    materials: Optional[MaterialRandomizer] = None
    background: Optional[BackgroundRandomizer] = None
    distractors: Optional[DistractorRandomizer] = None
    weather: Optional[WeatherRandomizer] = None
    post: Optional[PostRandomizer] = None
    classes: tuple[str, ...] = ()


RANDOMIZER_SECTIONS = ("camera", "pose", "lights", "materials", "background", "distractors", "weather", "post")


@dataclass(frozen=True)
class DatasetConfig:
    schema_version: int = SCHEMA_VERSION
    name: str = "blendset"
    seed: int = 0
    count: int = 10
    classes: tuple[ClassSpec, ...] = ()
    # Also label objects/collections carrying custom properties ``blendset_class`` (name) and
    # ``blendset_class_id``, or BlenderProc's ``category_id``.
    label_properties: bool = True
    render: RenderSettings = RenderSettings()
    output: OutputSettings = OutputSettings()
    camera: Optional[CameraRandomizer] = None
    pose: Optional[PoseRandomizer] = None
    lights: Optional[LightRandomizer] = None
    materials: Optional[MaterialRandomizer] = None
    background: Optional[BackgroundRandomizer] = None
    distractors: Optional[DistractorRandomizer] = None
    weather: Optional[WeatherRandomizer] = None
    post: Optional[PostRandomizer] = None
    filters: Filters = Filters()
    mixture: tuple[MixtureComponent, ...] = ()
    # The preset this config was built from, informational (apply_preset() sets the sections).
    preset: Optional[str] = None

    # -- (de)serialisation ---------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any) -> DatasetConfig:
        if not isinstance(data, dict):
            raise ConfigError("", f"a config must be a JSON object, got {type(data).__name__}")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ConfigError(
                "schema_version", f"this Blendset reads schema version {SCHEMA_VERSION}, the file has {version!r}"
            )
        config = _build(cls, data, "")
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        return _dump(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    # -- semantic checks (types were checked by from_dict) --------------------------------------------------
    def validate(self) -> None:
        if self.count < 0:
            raise ConfigError("count", f"must be >= 0, got {self.count}")
        names, ids = set(), set()
        for i, c in enumerate(self.classes):
            p = f"classes[{i}]"
            if not c.name.strip():
                raise ConfigError(f"{p}.name", "a class needs a non-empty name")
            if c.id < 0:
                raise ConfigError(f"{p}.id", f"class ids must be >= 0 (0 is a valid class), got {c.id}")
            if c.name in names:
                raise ConfigError(f"{p}.name", f"duplicate class name {c.name!r}")
            if c.id in ids:
                raise ConfigError(f"{p}.id", f"duplicate class id {c.id}")
            names.add(c.name)
            ids.add(c.id)
            for j, v in enumerate(c.color):
                if not 0.0 <= v <= 1.0:
                    raise ConfigError(f"{p}.color[{j}]", f"colour components are 0..1, got {v}")
        if not self.classes and not self.label_properties:
            raise ConfigError("classes", "no classes and label_properties is false: nothing would be labelled")
        r = self.render
        w, h = r.resolution
        if w < 1 or h < 1 or w > 16384 or h > 16384:
            raise ConfigError("render.resolution", f"must be two sizes in 1..16384, got {list(r.resolution)}")
        if r.samples < 1:
            raise ConfigError("render.samples", f"must be >= 1, got {r.samples}")
        if not 0.0 <= r.alpha_threshold <= 1.0:
            raise ConfigError("render.alpha_threshold", f"must be in 0..1, got {r.alpha_threshold}")
        if r.threads < 0:
            raise ConfigError("render.threads", f"must be >= 0, got {r.threads}")
        if not 1 <= self.output.jpeg_quality <= 100:
            raise ConfigError("output.jpeg_quality", f"must be in 1..100, got {self.output.jpeg_quality}")
        _check_sections(self, "")
        f = self.filters
        if f.min_visible_pixels < 0:
            raise ConfigError("filters.min_visible_pixels", f"must be >= 0, got {f.min_visible_pixels}")
        if not 0.0 <= f.max_occlusion <= 1.0:
            raise ConfigError("filters.max_occlusion", f"must be in 0..1, got {f.max_occlusion}")
        for i, m in enumerate(self.mixture):
            p = f"mixture[{i}]"
            if not (m.weight > 0 and math.isfinite(m.weight)):
                raise ConfigError(f"{p}.weight", f"must be > 0, got {m.weight}")
            _check_sections(m, p + ".")
            for j, cname in enumerate(m.classes):
                if self.classes and cname not in names:
                    raise ConfigError(f"{p}.classes[{j}]", f"unknown class {cname!r}; known: {sorted(names)}")
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError("preset", f"unknown preset {self.preset!r}; choose from {sorted(PRESETS)}")

    def check_paths(self) -> None:
        """Check that every folder the config names exists and holds usable files (raises ConfigError)."""
        sections: list[tuple[str, Any]] = [("", self)] + [(f"mixture[{i}].", m) for i, m in enumerate(self.mixture)]
        for prefix, s in sections:
            bg = s.background
            if bg is not None:
                if bg.mode == "hdri" and bg.hdri_dir is not None:
                    _check_dir(f"{prefix}background.hdri_dir", bg.hdri_dir, (".exr", ".hdr"))
                if bg.mode == "images":
                    if bg.image_dir is None:
                        raise ConfigError(f"{prefix}background.image_dir", "mode 'images' needs an image_dir")
                    _check_dir(f"{prefix}background.image_dir", bg.image_dir, (".png", ".jpg", ".jpeg"))
            d = s.distractors
            if d is not None and d.mesh_dir is not None:
                _check_dir(f"{prefix}distractors.mesh_dir", d.mesh_dir, (".obj", ".stl"))


def _check_dir(path: str, folder: str, suffixes: tuple[str, ...]) -> None:
    if not os.path.isdir(folder):
        raise ConfigError(path, f"folder {folder!r} does not exist")
    if not any(n.lower().endswith(suffixes) for n in os.listdir(folder)):
        raise ConfigError(path, f"folder {folder!r} has no {'/'.join(suffixes)} files")


def _check_sections(s: Any, prefix: str) -> None:
    """Range and share checks shared by the base config and mixture components."""
    cam = s.camera
    if cam is not None:
        p = prefix + "camera"
        cam.distance.check(f"{p}.distance", lower=1e-3)
        cam.elevation_deg.check(f"{p}.elevation_deg", lower=-90.0, upper=90.0)
        cam.azimuth_deg.check(f"{p}.azimuth_deg", lower=-360.0, upper=360.0)
        cam.focal_length_mm.check(f"{p}.focal_length_mm", lower=1.0)
        cam.roll_deg.check(f"{p}.roll_deg", lower=-180.0, upper=180.0)
        cam.closeup_fill.check(f"{p}.closeup_fill", lower=0.05, upper=1.0)
        _share(f"{p}.closeup_share", cam.closeup_share)
        _nonneg(f"{p}.look_at_jitter", cam.look_at_jitter)
    pose = s.pose
    if pose is not None:
        p = prefix + "pose"
        if pose.mode == "on_surface" and not pose.surfaces:
            raise ConfigError(f"{p}.surfaces", "mode 'on_surface' needs at least one support object name")
        _box(f"{p}.region", pose.region_min, pose.region_max)
        pose.z_rotation_deg.check(f"{p}.z_rotation_deg")
        pose.scale.check(f"{p}.scale", lower=1e-6)
        _nonneg(f"{p}.min_gap", pose.min_gap)
        if pose.max_tries < 1:
            raise ConfigError(f"{p}.max_tries", f"must be >= 1, got {pose.max_tries}")
    lights = s.lights
    if lights is not None:
        p = prefix + "lights"
        lights.count.check(f"{p}.count")
        if not lights.types:
            raise ConfigError(f"{p}.types", "needs at least one light type")
        lights.energy_w.check(f"{p}.energy_w", lower=0.0)
        lights.color_temperature_k.check(f"{p}.color_temperature_k", lower=1000.0, upper=40000.0)
        lights.distance.check(f"{p}.distance", lower=0.0)
        lights.elevation_deg.check(f"{p}.elevation_deg", lower=-90.0, upper=90.0)
    mat = s.materials
    if mat is not None:
        p = prefix + "materials"
        mat.hue_shift.check(f"{p}.hue_shift", lower=-0.5, upper=0.5)
        mat.saturation_scale.check(f"{p}.saturation_scale", lower=0.0)
        mat.value_scale.check(f"{p}.value_scale", lower=0.0)
        mat.roughness.check(f"{p}.roughness", lower=0.0, upper=1.0)
        mat.metallic.check(f"{p}.metallic", lower=0.0, upper=1.0)
        _share(f"{p}.procedural_share", mat.procedural_share)
        if mat.procedural_share > 0 and not mat.procedural_kinds:
            raise ConfigError(f"{p}.procedural_kinds", "procedural_share > 0 needs at least one kind")
    bg = s.background
    if bg is not None:
        p = prefix + "background"
        bg.hue.check(f"{p}.hue", lower=0.0, upper=1.0)
        bg.saturation.check(f"{p}.saturation", lower=0.0, upper=1.0)
        bg.value.check(f"{p}.value", lower=0.0)
        bg.strength.check(f"{p}.strength", lower=0.0)
        bg.rotation_deg.check(f"{p}.rotation_deg")
        bg.image_scale.check(f"{p}.image_scale", lower=1.0)
        if bg.mode == "images" and not bg.image_dir:
            raise ConfigError(f"{p}.image_dir", "mode 'images' needs an image_dir")
    dis = s.distractors
    if dis is not None:
        p = prefix + "distractors"
        dis.count.check(f"{p}.count")
        dis.scale.check(f"{p}.scale", lower=1e-6)
        _box(f"{p}.region", dis.region_min, dis.region_max)
        if not dis.primitives and dis.mesh_dir is None:
            raise ConfigError(f"{p}.primitives", "needs at least one primitive or a mesh_dir")
    w = s.weather
    if w is not None:
        p = prefix + "weather"
        _share(f"{p}.share", w.share)
        w.intensity.check(f"{p}.intensity", lower=0.0, upper=1.0)
        if not w.kinds:
            raise ConfigError(f"{p}.kinds", "needs at least one kind")
    post = s.post
    if post is not None:
        p = prefix + "post"
        _share(f"{p}.blur_share", post.blur_share)
        _share(f"{p}.noise_share", post.noise_share)
        post.blur_sigma_px.check(f"{p}.blur_sigma_px", lower=0.0)
        post.noise_std.check(f"{p}.noise_std", lower=0.0)


def _share(path: str, v: float) -> None:
    if not 0.0 <= v <= 1.0:
        raise ConfigError(path, f"a share must be in 0..1, got {v}")


def _nonneg(path: str, v: float) -> None:
    if v < 0:
        raise ConfigError(path, f"must be >= 0, got {v}")


def _box(path: str, lo: tuple[float, ...], hi: tuple[float, ...]) -> None:
    for axis, a, b in zip("xyz", lo, hi, strict=True):
        if a > b:
            raise ConfigError(f"{path}_min", f"{axis}: min ({a}) is greater than max ({b})")


# ---------------------------------------------------------------------------------------------------------------
# Generic typed builder: dataclass fields drive parsing, so the schema is declared exactly once.

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "a list"
    if dataclasses.is_dataclass(tp):
        return "an object"
    return getattr(tp, "__name__", str(tp))


def _build(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is type(None):
        if value is not None:
            raise ConfigError(path, f"expected null, got {value!r}")
        return None
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _build(arg, value, path)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(path, f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(path, f"expected one of {', '.join(repr(c) for c in choices)}, got {value!r}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(path, f"expected a list of {len(args)} values, got {len(value)}")
        return tuple(_build(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected an object, got {type(value).__name__}")
        hints = _hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        unknown = sorted(str(k) for k in set(value) - set(fields))
        if unknown:
            key = unknown[0] or '""'  # an empty key still needs a visible name in the message
            where = f"{path}.{key}" if path else key
            raise ConfigError(where, f"unknown key; {tp.__name__} accepts {', '.join(sorted(fields))}")
        kwargs = {}
        for name, f in fields.items():
            sub = f"{path}.{name}" if path else name
            if name in value:
                kwargs[name] = _build(hints[name], value[name], sub)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                raise ConfigError(sub, "required field is missing")
        return tp(**kwargs)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(path, f"expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {value!r}")
        return value
    raise ConfigError(path, f"unsupported type {tp!r}")  # pragma: no cover - schema bug


def _dump(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_dump(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------------------------
# Files, presets, helpers


def load_config(path: str) -> DatasetConfig:
    """Read and validate a config file. Raises ConfigError naming the file on any problem."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ConfigError("", f"config file {path!r} does not exist") from None
    except json.JSONDecodeError as e:
        raise ConfigError("", f"{path}: not valid JSON: {e}") from None
    return DatasetConfig.from_dict(data)


def save_config(config: DatasetConfig, path: str) -> None:
    """Write atomically (:mod:`shared.atomic`) so a crash never leaves half a config."""
    write_text(path, config.to_json() + "\n")


def config_hash(config: DatasetConfig) -> str:
    """Identity of what is rendered: every field but ``count`` (extending a dataset keeps its hash)."""
    d = config.to_dict()
    d.pop("count", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def resolve_component(config: DatasetConfig, component: MixtureComponent | None) -> DatasetConfig:
    """The config a frame of ``component`` renders with: its sections replace the base ones."""
    if component is None:
        return config
    changes = {s: getattr(component, s) for s in RANDOMIZER_SECTIONS if getattr(component, s) is not None}
    return dataclasses.replace(config, mixture=(), **changes)


# The variability study's scenarios plus two practical ones. Each maps to whole randomizer sections.
_GREY = BackgroundRandomizer(mode="color", hue=Range.const(0.0), saturation=Range.const(0.0), value=Range.const(0.5))
_FIXED_ANGLE_CAMERA = CameraRandomizer(
    mode="orbit",
    distance=Range.const(6.0),
    elevation_deg=Range.const(20.0),
    azimuth_deg=Range.const(45.0),
    look_at_jitter=0.0,
)
_ANGLE_CAMERA = dataclasses.replace(_FIXED_ANGLE_CAMERA, azimuth_deg=Range(-90.0, 90.0))
_FIXED_LIGHT = LightRandomizer(
    count=IntRange(1, 1),
    types=("SUN",),
    energy_w=Range.const(3.0),
    color_temperature_k=Range.const(6500.0),
    elevation_deg=Range.const(60.0),
)

PRESETS: dict[str, dict[str, Any]] = {
    # Same angle (about 45 degrees), solid grey background, fixed light.
    "none": {
        "camera": _FIXED_ANGLE_CAMERA,
        "lights": _FIXED_LIGHT,
        "background": _GREY,
        "materials": None,
        "distractors": None,
        "weather": None,
        "post": None,
    },
    # Azimuth anywhere in +-90 degrees, same grey background.
    "angle": {
        "camera": _ANGLE_CAMERA,
        "lights": _FIXED_LIGHT,
        "background": _GREY,
        "materials": None,
        "distractors": None,
        "weather": None,
        "post": None,
    },
    # As 'angle', over randomly scaled crops of photographs (HDRIs when no image folder is configured).
    "angle_bg": {
        "camera": _ANGLE_CAMERA,
        "lights": _FIXED_LIGHT,
        "background": BackgroundRandomizer(mode="hdri"),
        "materials": None,
        "distractors": None,
        "weather": None,
        "post": None,
    },
    # Everything: angle, background, light colour/intensity, focal length, position and distance.
    "all": {
        "camera": dataclasses.replace(
            _ANGLE_CAMERA,
            distance=Range(4.5, 8.0),
            elevation_deg=Range(0.0, 45.0),
            focal_length_mm=Range(28.0, 60.0),
            look_at_jitter=0.4,
        ),
        "lights": LightRandomizer(),
        "background": BackgroundRandomizer(mode="hdri"),
        "materials": MaterialRandomizer(),
        "distractors": None,
        "weather": None,
        "post": PostRandomizer(blur_share=0.2, noise_share=0.3),
    },
    # Objects upright on their support surfaces, camera above the table, some clutter.
    "tabletop": {
        "camera": CameraRandomizer(mode="shell", distance=Range(2.5, 5.0), elevation_deg=Range(25.0, 70.0)),
        "lights": LightRandomizer(),
        "materials": MaterialRandomizer(),
        "background": BackgroundRandomizer(mode="hdri"),
        "distractors": DistractorRandomizer(count=IntRange(2, 6)),
    },
    # Half the frames are close-ups where one target fills most of the image.
    "closeups": {
        "camera": CameraRandomizer(closeup_share=0.5),
    },
}


def apply_preset(config: DatasetConfig, name: str) -> DatasetConfig:
    """Return ``config`` with the preset's sections set. ``tabletop`` keeps an existing pose randomizer (it needs
    the scene's support surfaces) and ``closeups`` keeps every camera setting but the close-up share."""
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    changes = dict(PRESETS[name])
    if name == "closeups" and config.camera is not None:
        changes["camera"] = dataclasses.replace(config.camera, closeup_share=0.5)
    out = dataclasses.replace(config, preset=name, **changes)
    out.validate()
    return out
