"""The panel's settings, generated from the config schema, and the only bridge between them and a DatasetConfig.

One module on purpose (over 450 lines): generating, reading and writing the properties each dispatch on the
same field kinds (:func:`field_kind`), and a kind changed in one of the three must change in the other two.

Every PropertyGroup here is built at ``register()`` time by walking the dataclasses of ``shared/config.py``, so
the panel cannot have a setting the engine lacks or miss one it has. Each field maps to one kind of property
(:func:`field_kind`); ``ui.py`` draws by the same kinds, and tooltips and units come from
``shared/config_docs.py``.

Conversion goes through the config's own JSON form: :func:`config_from_scene` builds the plain dict and hands it
to ``DatasetConfig.from_dict`` (so every check, and every error naming a field path, is the schema's);
:func:`config_to_scene` writes a config's values back into the properties.

Blender stores float properties in 32 bits. Reading one back gives the shortest decimal that maps to the same
32-bit value, so a value typed with up to 7 significant digits (all presets, anything an artist types) survives
export -> import -> export unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

import bpy

from .shared import config as cfg
from .shared import config_docs

# Config fields whose value is written by the schema itself, not by the artist.
FIXED_FIELDS = ("schema_version",)
# A Union[Literal[...], tuple[float, ...]] field (camera.look_at) gets this enum item for "a fixed point".
POINT_ITEM = "POINT"
NAME_SEPARATOR = ","


@dataclass(frozen=True)
class Field:
    """One dataclass field and how the panel stores it. ``kind`` is one of:
    bool, int, float, str, optional_str, enum, enum_set, names, vector, rows, range, int_range,
    literal_or_point, group, optional_group, collection. ``rows`` is a list of fixed-size tuples
    (keypoint coordinates, skeleton pairs): one collection item per tuple."""

    name: str
    path: str  # field path without list indices, e.g. "mixture.camera.distance"
    kind: str
    tp: Any  # the type with Optional stripped
    choices: tuple[str, ...] = ()  # enum values (enum, enum_set, literal_or_point)
    size: int = 0  # vector length; tuple length of a rows item
    elem: Any = None  # vector/rows element type; dataclass for group/optional_group/collection


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return (args[0] if len(args) == 1 else Union.__getitem__(tuple(args))), True
    return tp, False


def field_kind(name: str, path: str, tp: Any) -> Field:
    """Classify one schema field. Raises TypeError for a type the panel cannot show (a schema change that needs
    a new kind here fails at register time, not silently)."""
    inner, optional = _strip_optional(tp)
    origin = typing.get_origin(inner)
    args = typing.get_args(inner)
    if dataclasses.is_dataclass(inner):
        if inner is cfg.Range:
            return Field(name, path, "range", inner)
        if inner is cfg.IntRange:
            return Field(name, path, "int_range", inner)
        return Field(name, path, "optional_group" if optional else "group", inner, elem=inner)
    if optional:
        if inner is str:
            return Field(name, path, "optional_str", inner)
        raise TypeError(f"{path}: the panel has no property for Optional[{inner!r}]")
    if inner in (bool, int, float, str):
        return Field(name, path, inner.__name__, inner)
    if origin is Literal:
        return Field(name, path, "enum", inner, choices=tuple(args))
    if origin in (Union, types.UnionType):
        lits = [a for a in args if typing.get_origin(a) is Literal]
        tups = [a for a in args if typing.get_origin(a) is tuple]
        if len(lits) == 1 and len(tups) == 1 and all(a is float for a in typing.get_args(tups[0])):
            return Field(
                name,
                path,
                "literal_or_point",
                inner,
                choices=typing.get_args(lits[0]),
                size=len(typing.get_args(tups[0])),
                elem=float,
            )
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            elem = args[0]
            if elem is str:
                return Field(name, path, "names", inner)
            if typing.get_origin(elem) is Literal:
                return Field(name, path, "enum_set", inner, choices=typing.get_args(elem))
            if dataclasses.is_dataclass(elem):
                return Field(name, path, "collection", inner, elem=elem)
            parts = typing.get_args(elem)
            if typing.get_origin(elem) is tuple and parts and Ellipsis not in parts:
                if all(a is parts[0] for a in parts) and parts[0] in (float, str):
                    return Field(name, path, "rows", inner, size=len(parts), elem=parts[0])
        elif args and all(a is args[0] for a in args) and args[0] in (int, float):
            return Field(name, path, "vector", inner, size=len(args), elem=args[0])
    raise TypeError(f"{path}: the panel has no property for {inner!r}")


@functools.cache
def fields_of(cls: type, prefix: str = "") -> tuple[Field, ...]:
    """The panel fields of one schema dataclass, in declaration order (fixed fields left out)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not prefix and f.name in FIXED_FIELDS:
            continue
        out.append(field_kind(f.name, prefix + f.name, hints[f.name]))
    return tuple(out)


# ---------------------------------------------------------------------------------------------------------------
# Labels and tooltips

_UNIT_SUFFIXES = ("_deg", "_mm", "_w", "_k", "_px")


# Names too long for the sidebar's label column; the tooltip still gives the full description.
SHORT_LABELS = {
    "color_temperature_k": "Colour",
    "procedural_share": "Procedural",
    "procedural_kinds": "Textures",
    "apply_to_distractors": "Also distractors",
    "saturation_scale": "Saturation",
    "value_scale": "Value",
    "closeup_share": "Close-ups",
    "closeup_fill": "Close-up fill",
    "blur_sigma_px": "Blur",
    "focal_length_mm": "Lens",
    "look_at_jitter": "Aim jitter",
    "look_at": "Look at",
    "label_properties": "Read custom-property labels",
    "keep_scene_lights": "Keep scene lights",
    "min_visible_pixels": "Min visible",
    "drop_empty_frames": "Drop empty frames",
    "alpha_threshold": "Alpha cut",
    "depth_png": "Depth PNG (mm)",
    "depth_float": "Float depth",
    "yolo": "YOLO export",
    "polygons": "COCO polygons",
    "normals": "Normals",
}


def label(field: Field) -> str:
    """``elevation_deg`` -> ``Elevation (°)``: the name without its unit suffix, then the unit."""
    name = field.name
    for suffix in _UNIT_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    text = SHORT_LABELS.get(field.name) or name.replace("_", " ").capitalize()
    text = text.replace("Hdri", "HDRI").replace("Jpeg", "JPEG")
    if field.kind == "bool" or "(" in text:
        return text
    unit = config_docs.unit_label(field.path)
    return f"{text} ({unit})" if unit and unit != "×" else text


def _item_label(value: str) -> str:
    special = {
        "BLENDER_EEVEE_NEXT": "EEVEE Next",
        "BLENDER_EEVEE": "EEVEE",
        "BLENDER_WORKBENCH": "Workbench",
        "CYCLES": "Cycles",
        "CPU": "CPU",
        "GPU": "GPU",
        "PNG": "PNG",
        "JPEG": "JPEG",
        "npy": ".npy",
        "exr": ".exr",
        "hdri": "HDRI",
        "on_surface": "On surface",
        "none": "None",
    }
    return special.get(value, value.replace("_", " ").capitalize())


def _enum_items(
    field: Field, extra: tuple[tuple[str, str, str], ...] = (), value_type: str | None = None
) -> list[tuple[str, str, str]]:
    desc = config_docs.tooltip(field.path, value_type)
    return [(v, _item_label(v), desc) for v in field.choices] + list(extra)


# ---------------------------------------------------------------------------------------------------------------
# PropertyGroup generation

_generated: list[type] = []  # every generated class, children before parents (registration order)
_root: type | None = None


def _class_name(path: str) -> str:
    return "BLENDSET_PG_" + (path.replace(".", "_") if path else "config")


def _float_opts(path: str) -> dict[str, Any]:
    unit = config_docs.doc(path)[1]
    opts: dict[str, Any] = {"precision": {"deg": 1, "W": 0, "K": 0, "m": 2, "mm": 1, "px": 1}.get(unit, 3)}
    if unit == "m":
        opts["unit"] = "LENGTH"
    if unit == "share":
        opts.update(min=0.0, max=1.0, subtype="FACTOR")
    return opts


def _range_group(field: Field, default: Any) -> type:
    """A min/max pair (plus the distribution for float ranges) for one range field."""
    value_type = "Range" if field.kind == "range" else "IntRange"
    ann: dict[str, Any] = {}
    for part in ("min", "max"):
        desc = config_docs.tooltip(f"{field.path}.{part}", value_type)
        value = getattr(default, part)
        if field.kind == "range":
            opts = _float_opts(field.path)
            opts.pop("subtype", None)
            ann[part] = bpy.props.FloatProperty(name=part.capitalize(), description=desc, default=value, **opts)
        else:
            ann[part] = bpy.props.IntProperty(name=part.capitalize(), description=desc, default=value, min=0)
    if field.kind == "range":
        dist_type = typing.get_type_hints(cfg.Range)["distribution"]
        dist = field_kind("distribution", f"{field.path}.distribution", dist_type)
        ann["distribution"] = bpy.props.EnumProperty(
            name="Distribution",
            description=config_docs.tooltip(f"{field.path}.distribution", "Range"),
            items=[
                (v, n, d, _DIST_ICONS.get(v, "NONE"), i)
                for i, (v, n, d) in enumerate(_enum_items(dist, value_type="Range"))
            ],
            default=default.distribution,
        )
    return _make_class(field.path, ann)


def _row_group(field: Field) -> type:
    """One item of a ``rows`` list: a float vector ``value`` (coordinates), or strings ``v0``, ``v1``, ...
    (a pair of keypoint names)."""
    desc = config_docs.tooltip(field.path)
    if field.elem is float:
        opts = _float_opts(field.path) | {"precision": 4}  # keypoints on small objects: millimetres matter
        opts.pop("subtype", None)
        ann = {
            "value": bpy.props.FloatVectorProperty(
                name="Value", description=desc, size=field.size, subtype="XYZ" if field.size == 3 else "NONE", **opts
            )
        }
    else:
        ann = {f"v{i}": bpy.props.StringProperty(name=f"Item {i + 1}", description=desc) for i in range(field.size)}
    return _make_class(field.path, ann)


_DIST_ICONS = {"uniform": "IPO_LINEAR", "normal": "SMOOTHCURVE", "loguniform": "IPO_EXPO"}


def _make_class(path: str, ann: dict[str, Any]) -> type:
    cls = type(_class_name(path), (bpy.types.PropertyGroup,), {"__annotations__": ann, "schema_path": path})
    _generated.append(cls)
    return cls


def _property_for(field: Field, default: Any) -> dict[str, Any]:
    """The bpy.props declaration(s) for one field, keyed by property name."""
    desc = config_docs.tooltip(field.path)
    name = label(field)
    k = field.kind
    if k == "bool":
        return {field.name: bpy.props.BoolProperty(name=name, description=desc, default=default)}
    if k == "int":
        return {field.name: bpy.props.IntProperty(name=name, description=desc, default=default)}
    if k == "float":
        return {
            field.name: bpy.props.FloatProperty(name=name, description=desc, default=default, **_float_opts(field.path))
        }
    if k in ("str", "optional_str", "names"):
        subtype = "DIR_PATH" if field.name.endswith("_dir") else "NONE"
        if k == "names":
            desc += " (names separated by commas)"
            default = NAME_SEPARATOR.join(default)
        return {
            field.name: bpy.props.StringProperty(name=name, description=desc, default=default or "", subtype=subtype)
        }
    if k == "enum":
        return {
            field.name: bpy.props.EnumProperty(name=name, description=desc, items=_enum_items(field), default=default)
        }
    if k == "enum_set":
        return _enum_set_properties(field, name, desc, default)
    if k == "vector":
        if field.elem is int:
            return {
                field.name: bpy.props.IntVectorProperty(
                    name=name, description=desc, size=field.size, default=default, min=0
                )
            }
        color = field.name in ("color",)
        opts = {"subtype": "COLOR", "min": 0.0, "max": 1.0} if color else {"subtype": "XYZ", **_float_opts(field.path)}
        opts.pop("unit", None) if color else None
        return {
            field.name: bpy.props.FloatVectorProperty(
                name=name, description=desc, size=field.size, default=default, **opts
            )
        }
    if k == "literal_or_point":
        point_default = default if isinstance(default, tuple) else (0.0,) * field.size
        mode_default = POINT_ITEM if isinstance(default, tuple) else default
        items = _enum_items(field, ((POINT_ITEM, "Fixed point", "Look at a fixed point in world space (m)"),))
        return {
            field.name: bpy.props.EnumProperty(name=name, description=desc, items=items, default=mode_default),
            f"{field.name}_point": bpy.props.FloatVectorProperty(
                name="Point", description=desc, size=field.size, default=point_default, subtype="XYZ", unit="LENGTH"
            ),
        }
    if k == "rows":
        return {field.name: bpy.props.CollectionProperty(type=_row_group(field), name=name, description=desc)}
    if k in ("range", "int_range"):
        return {field.name: bpy.props.PointerProperty(type=_range_group(field, default), name=name, description=desc)}
    if k in ("group", "optional_group"):
        return {
            field.name: bpy.props.PointerProperty(
                type=_group(field.elem, field.path, k == "optional_group"), name=name, description=desc
            )
        }
    if k == "collection":
        return {
            field.name: bpy.props.CollectionProperty(
                type=_group(field.elem, field.path, False), name=name, description=desc
            ),
            f"{field.name}_index": bpy.props.IntProperty(name=f"Active {name.lower()}", min=0),
        }
    raise TypeError(f"{field.path}: unhandled kind {k}")  # pragma: no cover - field_kind covers every kind


def _enum_set_properties(field: Field, name: str, desc: str, default: tuple[str, ...]) -> dict[str, Any]:
    """A list of choices (``lights.types``) as toggle buttons. The buttons edit a set, but the config is an
    ordered list (order and repeats change what is drawn), so the list itself is kept in a hidden string
    ``<name>_order`` that the buttons read and edit: unchanged entries keep their place, new ones go last."""
    order_name = f"{field.name}_order"
    bits = {c: 1 << i for i, c in enumerate(field.choices)}

    def get(self: Any) -> int:
        chosen = set(getattr(self, order_name).split(NAME_SEPARATOR))
        return sum(bit for c, bit in bits.items() if c in chosen)

    def set_(self: Any, mask: int) -> None:
        chosen = {c for c, bit in bits.items() if mask & bit}
        kept = [c for c in getattr(self, order_name).split(NAME_SEPARATOR) if c in chosen]
        added = [c for c in field.choices if c in chosen and c not in kept]
        setattr(self, order_name, NAME_SEPARATOR.join(kept + added))

    items = [(v, n, d, "NONE", bits[v]) for v, n, d in _enum_items(field)]
    return {
        order_name: bpy.props.StringProperty(default=NAME_SEPARATOR.join(default), options={"HIDDEN"}),
        field.name: bpy.props.EnumProperty(
            name=name, description=desc, items=items, options={"ENUM_FLAG"}, get=get, set=set_
        ),
    }


def _group(cls: type, path: str, optional: bool) -> type:
    """A PropertyGroup for one schema dataclass; an optional section adds an ``enabled`` switch."""
    ann: dict[str, Any] = {}
    if optional:
        ann["enabled"] = bpy.props.BoolProperty(
            name="Enabled", description=config_docs.tooltip(path) + ". Off: leave the scene as it is", default=False
        )
    declared = {f.name: f.default for f in dataclasses.fields(cls)}
    for field in fields_of(cls, f"{path}." if path else ""):
        if field.name == "enabled":  # pragma: no cover - schema would shadow the switch
            raise TypeError(f"{field.path}: 'enabled' is reserved by the panel")
        default = declared[field.name]
        if default is dataclasses.MISSING:
            default = _zero(field)
        ann.update(_property_for(field, default))
    return _make_class(path, ann)


def _zero(field: Field) -> Any:
    """Default for a field of a dataclass with required fields (ClassSpec, KeypointSpec)."""
    if field.kind == "enum":  # KeypointSpec.source: the first choice until the artist picks one
        return field.choices[0]
    return {"str": "", "int": 0, "float": 0.0, "bool": False}.get(field.kind, ())


def generate() -> list[type]:
    """Build every PropertyGroup class from the schema; returns them in registration order, root last."""
    global _root
    _generated.clear()
    _root = _group(cfg.DatasetConfig, "", False)
    return list(_generated)


def root_class() -> type:
    if _root is None:
        raise RuntimeError("Blendset's properties are not registered")
    return _root


def clear() -> None:
    global _root
    _generated.clear()
    _root = None


# ---------------------------------------------------------------------------------------------------------------
# PropertyGroup <-> DatasetConfig


def _f32(value: float) -> float:
    """The shortest decimal whose 32-bit float equals ``value``'s (undo Blender's float32 storage)."""
    packed = struct.pack("<f", value)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return float(value)


def _read(pg: Any, cls: type, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in fields_of(cls, f"{path}." if path else ""):
        out[field.name] = _read_field(pg, field)
    return out


def _read_field(pg: Any, field: Field) -> Any:
    k, v = field.kind, getattr(pg, field.name)
    if k == "float":
        return _f32(v)
    if k in ("bool", "int", "str", "enum"):
        return v
    if k == "optional_str":
        return v or None
    if k == "names":
        return [n.strip() for n in v.split(NAME_SEPARATOR) if n.strip()]
    if k == "enum_set":
        return [c for c in getattr(pg, f"{field.name}_order").split(NAME_SEPARATOR) if c]
    if k == "vector":
        return [_f32(x) for x in v] if field.elem is float else list(v)
    if k == "rows":
        if field.elem is float:
            return [[_f32(x) for x in item.value] for item in v]
        return [[getattr(item, f"v{i}") for i in range(field.size)] for item in v]
    if k == "literal_or_point":
        return [_f32(x) for x in getattr(pg, f"{field.name}_point")] if v == POINT_ITEM else v
    if k == "range":
        return {"min": _f32(v.min), "max": _f32(v.max), "distribution": v.distribution}
    if k == "int_range":
        return {"min": v.min, "max": v.max}
    if k == "group":
        return _read(v, field.elem, field.path)
    if k == "optional_group":
        return _read(v, field.elem, field.path) if v.enabled else None
    if k == "collection":
        return [_read(item, field.elem, field.path) for item in v]
    raise TypeError(f"{field.path}: unhandled kind {k}")  # pragma: no cover


def config_dict_from_group(pg: Any) -> dict[str, Any]:
    """The JSON form of the config held by a root PropertyGroup (not yet validated)."""
    data = _read(pg, cfg.DatasetConfig, "")
    return {"schema_version": cfg.SCHEMA_VERSION, **data}


def config_from_scene(scene: bpy.types.Scene) -> cfg.DatasetConfig:
    """The scene's Blendset settings as a validated DatasetConfig (raises ConfigError naming the field)."""
    return cfg.DatasetConfig.from_dict(config_dict_from_group(scene.blendset.config))


def _write(pg: Any, cls: type, path: str, value: Any) -> None:
    for field in fields_of(cls, f"{path}." if path else ""):
        _write_field(pg, field, getattr(value, field.name), f"{path}.{field.name}" if path else field.name)


def _write_field(pg: Any, field: Field, v: Any, where: str) -> None:
    k = field.kind
    if k in ("bool", "int", "float", "str", "enum"):
        if k == "int" and not -(2**31) <= v < 2**31:
            raise cfg.ConfigError(where, f"the panel holds 32-bit integers, got {v}")
        setattr(pg, field.name, v)
    elif k == "optional_str":
        setattr(pg, field.name, v or "")
    elif k == "names":
        bad = [n for n in v if NAME_SEPARATOR in n or n != n.strip() or not n]
        if bad:
            raise cfg.ConfigError(where, f"the panel cannot hold names with commas or outer spaces: {bad[0]!r}")
        setattr(pg, field.name, NAME_SEPARATOR.join(v))
    elif k == "enum_set":
        setattr(pg, f"{field.name}_order", NAME_SEPARATOR.join(v))
    elif k == "vector":
        setattr(pg, field.name, v)
    elif k == "rows":
        coll = getattr(pg, field.name)
        coll.clear()
        for row in v:
            item = coll.add()
            if field.elem is float:
                item.value = row
            else:
                for i, value in enumerate(row):
                    setattr(item, f"v{i}", value)
    elif k == "literal_or_point":
        if isinstance(v, tuple):
            setattr(pg, field.name, POINT_ITEM)
            setattr(pg, f"{field.name}_point", v)
        else:
            setattr(pg, field.name, v)
    elif k in ("range", "int_range"):
        sub = getattr(pg, field.name)
        sub.min, sub.max = v.min, v.max
        if k == "range":
            sub.distribution = v.distribution
    elif k == "group":
        _write(getattr(pg, field.name), field.elem, field.path, v)
    elif k == "optional_group":
        sub = getattr(pg, field.name)
        sub.enabled = v is not None
        if v is not None:
            _write(sub, field.elem, field.path, v)
    elif k == "collection":
        coll = getattr(pg, field.name)
        coll.clear()
        for item in v:
            _write(coll.add(), field.elem, field.path, item)
        setattr(pg, f"{field.name}_index", 0)
    else:  # pragma: no cover
        raise TypeError(f"{field.path}: unhandled kind {k}")


def config_to_scene(config: cfg.DatasetConfig, scene: bpy.types.Scene) -> None:
    """Write every value of ``config`` into the scene's Blendset settings (disabled sections keep their last
    values hidden behind the switch, so turning one back on restores what the artist had). All or nothing: a
    value the panel cannot hold raises ConfigError and the previous settings are written back."""
    pg = scene.blendset.config
    try:
        previous = cfg.DatasetConfig.from_dict(config_dict_from_group(pg))
    except cfg.ConfigError:
        previous = None  # nothing valid to go back to
    try:
        _write(pg, cfg.DatasetConfig, "", config)
    except cfg.ConfigError:
        if previous is not None:
            _write(pg, cfg.DatasetConfig, "", previous)
        raise


def generated_classes() -> list[type]:
    """The classes :func:`generate` built, in registration order."""
    return list(_generated)
