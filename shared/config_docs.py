"""One description and one unit for every field of the config schema in :mod:`shared.config`.

The add-on's tooltips and the README's config reference both read this table, so they cannot disagree; a test
walks every dataclass field of the schema and fails when one has no entry here (or an entry names no field).

Keys are field paths as :class:`shared.config.ConfigError` writes them, without list indices: ``camera.distance``,
``classes.name``. A mixture component's sections reuse the base sections' entries (``mixture.camera.distance``
reads ``camera.distance``). The parts of a range (``min``, ``max``, ``distribution``) are described once per
value type under ``Range.*`` / ``IntRange.*``; the unit is the unit of the field holding the range.

Units: ``m`` metres, ``mm`` millimetres, ``deg`` degrees, ``W`` watts, ``K`` kelvin, ``px`` pixels,
``share`` a fraction of frames or objects in 0..1, ``factor`` a multiplier, ``""`` unitless.
"""

from __future__ import annotations

import json

from .config import RANDOMIZER_SECTIONS

DOCS: dict[str, tuple[str, str]] = {
    # -- value types -------------------------------------------------------------------------------------------
    "Range.min": ("Lowest value drawn", ""),
    "Range.max": ("Highest value drawn (equal to min for a constant)", ""),
    "Range.distribution": (
        "How values are drawn: uniform in [min, max]; normal around the middle (std = width/4, clipped); "
        "loguniform (min > 0)",
        "",
    ),
    "IntRange.min": ("Smallest count drawn (inclusive)", ""),
    "IntRange.max": ("Largest count drawn (inclusive)", ""),
    # -- dataset -----------------------------------------------------------------------------------------------
    "schema_version": ("Config schema version this file was written for", ""),
    "name": ("Dataset name, written into the COCO info block", ""),
    "seed": ("Base random seed: the same seed and config give the same dataset", ""),
    "count": ("Number of frames to render", ""),
    "classes": ("Labelled classes: each names its objects and collections", ""),
    "classes.name": ("Class name, as written in the COCO categories", ""),
    "classes.id": ("Class id in the COCO categories (0 is a valid id)", ""),
    "classes.objects": ("Objects that belong to this class", ""),
    "classes.collections": ("Collections whose objects (recursively) belong to this class", ""),
    "classes.color": ("Colour used for this class in previews and semantic visualisations", ""),
    "classes.keypoints": ("Named keypoints of this class's instances, projected and checked for visibility", ""),
    "classes.keypoints.source": (
        "Where keypoints come from: vertex_groups (weighted mean of one vertex group each), empties (world "
        "location of empties parented to the object) or local (object-local coordinates below)",
        "",
    ),
    "classes.keypoints.names": ("Keypoint names, in order: vertex group or empty names for those sources", ""),
    "classes.keypoints.coordinates": ("Object-local [x, y, z] of each keypoint (source local only)", "m"),
    "classes.keypoints.skeleton": ("Pairs of keypoint names joined by a line (COCO skeleton)", ""),
    "classes.keypoints.flip_pairs": (
        "Pairs of keypoint names swapped by a left-right image flip (YOLO flip_idx; none: no valid flip)",
        "",
    ),
    "label_properties": (
        "Also label objects and collections that carry blendset_class / blendset_class_id custom properties "
        "(or BlenderProc's category_id)",
        "",
    ),
    "preset": ("Name of the preset this config was built from (informational)", ""),
    # -- render ------------------------------------------------------------------------------------------------
    "render": ("Render engine and quality", ""),
    "render.engine": ("Render engine used for the RGB image", ""),
    "render.resolution": ("Image width and height", "px"),
    "render.samples": ("Render samples per pixel", ""),
    "render.denoise": ("Denoise the RGB render", ""),
    "render.device": ("Render on the CPU or the GPU", ""),
    "render.alpha_threshold": ("Alpha below which a surface is see-through in masks and depth", ""),
    "render.threads": ("Render threads (0 lets Blender choose)", ""),
    # -- output ------------------------------------------------------------------------------------------------
    "output": ("Which files each frame writes", ""),
    "output.image_format": ("File format of the RGB images", ""),
    "output.jpeg_quality": ("JPEG quality (1..100) when the format is JPEG", ""),
    "output.depth_png": ("Write depth as a 16-bit PNG in millimetres (0 = no surface)", ""),
    "output.depth_float": ("Also write depth as float32 metres (.npy or .exr)", ""),
    "output.normals": ("Write camera-space normals (float16 .npy)", ""),
    "output.polygons": ("Write COCO polygons in addition to RLE masks", ""),
    "output.yolo": ("Also write a YOLO export next to annotations.json", ""),
    # -- camera ------------------------------------------------------------------------------------------------
    "camera": ("Camera placed around a point of interest each frame", ""),
    "camera.mode": ("Shell: uniform on a sphere patch; orbit: elevation and azimuth drawn independently", ""),
    "camera.look_at": ("Point of interest: the centre of the labelled objects, or a fixed point", "m"),
    "camera.distance": ("Distance from the point of interest", "m"),
    "camera.elevation_deg": ("Camera elevation above the horizontal plane", "deg"),
    "camera.azimuth_deg": ("Camera azimuth around the vertical axis", "deg"),
    "camera.look_at_jitter": ("Random shift of the point of interest on each axis", "m"),
    "camera.focal_length_mm": ("Lens focal length", "mm"),
    "camera.roll_deg": ("Camera roll around its viewing axis", "deg"),
    "camera.closeup_share": ("Share of frames that are close-ups of one target", "share"),
    "camera.closeup_fill": ("In close-ups, share of the image's smaller side the target fills", "share"),
    # -- pose --------------------------------------------------------------------------------------------------
    "pose": ("Pose of the labelled objects each frame", ""),
    "pose.mode": ("Free: anywhere in the box, any rotation; on_surface: upright on support objects", ""),
    "pose.surfaces": ("Support objects whose top faces the targets stand on (on_surface)", ""),
    "pose.region_min": ("Lower corner of the placement box (free)", "m"),
    "pose.region_max": ("Upper corner of the placement box (free)", "m"),
    "pose.z_rotation_deg": ("Rotation around the vertical axis", "deg"),
    "pose.scale": ("Uniform scale factor applied to each target", "factor"),
    "pose.min_gap": ("Minimum gap between placed objects", "m"),
    "pose.max_tries": ("Placement attempts per object before giving up", ""),
    # -- lights ------------------------------------------------------------------------------------------------
    "lights": ("Random lights that replace the scene's lights for each frame", ""),
    "lights.count": ("Number of lights", ""),
    "lights.types": ("Light types to draw from", ""),
    "lights.energy_w": ("Light power (sun: irradiance in W/m2)", "W"),
    "lights.color_temperature_k": ("Light colour temperature", "K"),
    "lights.distance": ("Light distance from the point of interest", "m"),
    "lights.elevation_deg": ("Light elevation above the horizontal plane", "deg"),
    "lights.keep_scene_lights": ("Keep the scene's own lights on as well", ""),
    # -- materials ---------------------------------------------------------------------------------------------
    "materials": ("Colour and surface jitter of the targets' materials", ""),
    "materials.hue_shift": ("Hue shift in turns of the colour wheel (-0.5..0.5)", ""),
    "materials.saturation_scale": ("Saturation multiplier", "factor"),
    "materials.value_scale": ("Brightness multiplier", "factor"),
    "materials.roughness": ("Surface roughness (0 mirror .. 1 matte)", ""),
    "materials.metallic": ("Metalness (0 dielectric .. 1 metal)", ""),
    "materials.procedural_share": ("Share of objects given a procedural texture", "share"),
    "materials.procedural_kinds": ("Procedural textures to draw from", ""),
    "materials.apply_to_distractors": ("Jitter the distractors' materials too", ""),
    # -- background --------------------------------------------------------------------------------------------
    "background": ("What is behind the scene", ""),
    "background.mode": ("Color: flat world colour; hdri: environment map; images: photos from a folder", ""),
    "background.hue": ("Background hue (color mode)", ""),
    "background.saturation": ("Background saturation (color mode)", ""),
    "background.value": ("Background brightness (color mode)", ""),
    "background.hdri_dir": ("Folder of .exr/.hdr environment maps (empty: the HDRIs Blender ships)", ""),
    "background.image_dir": ("Folder of .png/.jpg photos used as backgrounds (images mode)", ""),
    "background.strength": ("World light strength", "factor"),
    "background.rotation_deg": ("Environment rotation around the vertical axis (hdri mode)", "deg"),
    "background.image_scale": ("Zoom of the random crop of a background photo (images mode)", "factor"),
    # -- distractors -------------------------------------------------------------------------------------------
    "distractors": ("Unlabelled clutter that occludes the targets", ""),
    "distractors.count": ("Number of distractor objects", ""),
    "distractors.primitives": ("Primitive shapes to draw from", ""),
    "distractors.mesh_dir": ("Folder of .obj/.stl meshes used as distractors", ""),
    "distractors.scale": ("Size of a distractor", "m"),
    "distractors.region_min": ("Lower corner of the distractor box", "m"),
    "distractors.region_max": ("Upper corner of the distractor box", "m"),
    "distractors.on_surface": ("Stand distractors on the pose randomizer's support surfaces", ""),
    # -- weather -----------------------------------------------------------------------------------------------
    "weather": ("Fog, rain and snow (rain and snow change the RGB image only)", ""),
    "weather.kinds": ("Weather kinds to draw from", ""),
    "weather.share": ("Share of frames with weather", "share"),
    "weather.intensity": ("Weather intensity (0 none .. 1 heavy)", ""),
    # -- post --------------------------------------------------------------------------------------------------
    "post": ("Blur and noise added to the RGB image after rendering", ""),
    "post.blur_share": ("Share of frames that are blurred", "share"),
    "post.blur_sigma_px": ("Gaussian blur sigma", "px"),
    "post.noise_share": ("Share of frames with added noise", "share"),
    "post.noise_std": ("Standard deviation of the added noise on the 0..1 scale", ""),
    # -- filters -----------------------------------------------------------------------------------------------
    "filters": ("Which instances get an annotation", ""),
    "filters.min_visible_pixels": ("Instances with fewer visible pixels get no annotation", "px"),
    "filters.max_occlusion": ("Instances more occluded than this get no annotation (0..1)", "share"),
    "filters.drop_empty_frames": ("Drop frames left with no annotation", ""),
    # -- mixture -----------------------------------------------------------------------------------------------
    "mixture": ("Weighted sub-configs: each frame draws one; its sections replace the base ones", ""),
    "mixture.weight": ("Relative weight of this component", ""),
    "mixture.name": ("Name of this component", ""),
    "mixture.classes": ("Classes shown in this component's frames (empty: all)", ""),
}

UNIT_LABELS = {
    "m": "m",
    "mm": "mm",
    "deg": "°",
    "W": "W",
    "K": "K",
    "px": "px",
    "share": "",  # drawn as a 0..1 slider, or described as a share in the tooltip
    "factor": "×",
    "": "",
}


def _key(path: str) -> str:
    """Strip list indices and map a mixture component's sections onto the base sections."""
    parts = [p.split("[", 1)[0] for p in path.split(".")]
    if len(parts) >= 2 and parts[0] == "mixture" and parts[1] in RANDOMIZER_SECTIONS:
        parts = parts[1:]
    return ".".join(parts)


def doc(path: str, value_type: str | None = None) -> tuple[str, str]:
    """Description and unit of a field path. ``value_type`` (``"Range"``/``"IntRange"``) marks a range's part:
    ``doc("camera.distance.min", "Range")`` gives the range part's text with the unit of ``camera.distance``."""
    key = _key(path)
    if value_type is not None:
        parent, _, leaf = key.rpartition(".")
        text, _ = DOCS[f"{value_type}.{leaf}"]
        _, unit = DOCS[parent]
        return text, unit
    return DOCS[key]


def tooltip(path: str, value_type: str | None = None) -> str:
    """The tooltip text: description plus unit, e.g. ``Distance from the point of interest (m)``."""
    text, unit = doc(path, value_type)
    return f"{text} ({unit})" if unit and unit not in ("share", "factor") else text


def unit_label(path: str) -> str:
    """Short unit shown next to a field's label in the panel (``m``, ``°``, ``0..1``) or ``""``."""
    return UNIT_LABELS[doc(path)[1]]


def reference_markdown() -> str:
    """The config reference as a Markdown table (field path, type, default, unit, description), walked from the
    schema itself so it lists every field: ``python -m shared.config_docs`` prints it for the README."""
    import dataclasses
    import typing

    from . import config

    rows = ["| Field | Default | Unit | Description |", "|---|---|---|---|"]

    def fmt(value: object) -> str:
        if dataclasses.is_dataclass(value):
            return "`" + json.dumps(config._dump(value)) + "`"
        if isinstance(value, tuple):
            return "`" + json.dumps(list(value)) + "`"
        return "`" + json.dumps(value) + "`"

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            path = prefix + f.name
            text, unit = doc(path)
            tp = hints[f.name]
            inner = [a for a in (tp, *typing.get_args(tp)) if dataclasses.is_dataclass(a)]
            inner += [a for t in typing.get_args(tp) for a in typing.get_args(t) if dataclasses.is_dataclass(a)]
            sub = next(iter(inner), None)
            section = sub is not None and sub not in (config.Range, config.IntRange)
            if f.default is dataclasses.MISSING:
                default = "(required)"
            elif section and f.default is None:
                default = "`null` (off)"
            elif section and dataclasses.is_dataclass(f.default):
                default = "(section)"
            else:
                default = fmt(f.default)
            rows.append(f"| `{path}` | {default} | {unit} | {text} |")
            if section and not path.startswith("mixture."):
                walk(sub, path + ".")

    walk(config.DatasetConfig, "")
    rows.append("")
    rows.append(
        'Ranges are objects `{"min", "max", "distribution"}` (`uniform`, `normal`, `loguniform`); count '
        'ranges are `{"min", "max"}`. A mixture component\'s sections take the same fields as the base '
        "sections."
    )
    return "\n".join(rows)


if __name__ == "__main__":
    print(reference_markdown())
