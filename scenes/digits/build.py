"""The digits scene: 3D text digits 0-9 in the fonts matplotlib ships, one digit visible per frame.

Built by script into the current (empty, ``--factory-startup``) scene, so it needs no .blend file::

    blendset render --config cfg.json --out DIR --scene-script scenes/digits/build.py --count N --seed S

``build(**kwargs)`` creates ten text objects ``blendset_digit_0`` ... ``blendset_digit_9`` (custom properties
``blendset_class`` = ``"0"``..``"9"`` and ``blendset_class_id`` = the digit), one shared lattice that deforms
their strokes, a camera in front of them and a material per digit. The engine's generic randomizers (camera,
lights, materials, background, post) run first each frame; then the engine calls :func:`randomize`, which picks
the visible digit and draws the glyph-level parameters (font, extrusion, bevel, shear, stroke weight, rotation,
aspect and the handwriting-like lattice deformation) and returns them for the frame record (``scene.*``).

Fonts are looked up in this order: ``build(font_dir=...)``, the ``BLENDSET_FONT_DIR`` environment variable,
matplotlib's ``mpl-data/fonts/ttf`` when matplotlib imports (the ``bpy`` module in .venv), and finally the
repository's ``.venv`` (for the Blender binary, whose Python has no matplotlib).

Runs in Blender 4.2+ (the ``bpy`` module 4.5 and the 5.2 binary); only the standard library, numpy, bpy and
the repository's ``shared/errors.py`` (for :class:`SceneBuildError`'s root).
"""

from __future__ import annotations

import glob
import math
import os
import sys
from typing import Any

import bpy

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
try:
    from shared.errors import BlendsetError
except ImportError:  # run by an installed add-on's headless runner: the repository is not on sys.path
    sys.path.append(REPO)
    from shared.errors import BlendsetError

# The 22 matplotlib fonts with usable digit glyphs (see shared/ENVIRONMENT.md).
DIGIT_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
    "cmti10.ttf",
    "cmmi10.ttf",
)

OBJECT_PREFIX = "blendset_digit_"
LATTICE_NAME = "blendset_digit_lattice"
CAMERA_NAME = "blendset_digit_camera"
LATTICE_POINTS = (4, 5)  # u (width), v (height)
LATTICE_SIZE = (1.0, 1.2)  # covers a glyph of size 1 with margin

# Per-frame ranges of the digit-specific randomization; build(**kwargs) may override any of them.
DEFAULTS: dict[str, Any] = {
    "handwriting": True,  # lattice deformation of the strokes
    "deform_sigma": (0.04, 0.12),  # lattice point jitter, in glyph units (glyph height ~0.73)
    "extrude": (0.0, 0.08),
    "bevel_depth": (0.0, 0.02),
    "shear": (-0.35, 0.35),  # Blender's text shear (italic slant), -1..1
    "offset": (-0.015, 0.03),  # stroke weight: grows (+) or thins (-) the outline
    "rotation_deg": (-15.0, 15.0),  # in-plane rotation
    "tilt_deg": (-20.0, 20.0),  # rotation about the vertical axis (out of plane)
    "aspect": (0.65, 1.15),  # width / height scale
    "digits": tuple(range(10)),
}


class SceneBuildError(BlendsetError, RuntimeError):
    """The digits scene cannot be built (fonts missing, bad option). A ``BlendsetError`` (the root of every domain
    error) and, as before, a ``RuntimeError``."""


def resolve_font_dir(font_dir: str | None = None) -> str:
    """The folder holding matplotlib's .ttf files, searched in the order the module docstring gives."""
    candidates: list[str] = []
    if font_dir:
        candidates.append(font_dir)
    if os.environ.get("BLENDSET_FONT_DIR"):
        candidates.append(os.environ["BLENDSET_FONT_DIR"])
    try:
        import matplotlib

        candidates.append(os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf"))
    except ImportError:
        pass
    candidates += sorted(
        glob.glob(
            os.path.join(REPO, ".venv", "lib", "python3*", "site-packages", "matplotlib", "mpl-data", "fonts", "ttf")
        )
    )
    for folder in candidates:
        if os.path.isfile(os.path.join(folder, DIGIT_FONTS[0])):
            return folder
    raise SceneBuildError(
        "no matplotlib font folder found (looked in: " + ", ".join(candidates or ["<nothing>"]) + "); "
        "pass build(font_dir=...) or set BLENDSET_FONT_DIR to matplotlib/mpl-data/fonts/ttf"
    )


def build(font_dir: str | None = None, fonts: tuple[str, ...] | list[str] | None = None, **options: Any) -> None:
    """Create the digits scene in the current scene. ``options`` override :data:`DEFAULTS` (unknown keys raise).
    From the command line they come as ``--scene-args '{"handwriting": false}'`` (headless.py / blendset render).
    """
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise SceneBuildError(f"unknown digits scene option(s) {unknown}; known: {sorted(DEFAULTS)}")
    folder = resolve_font_dir(font_dir)
    names = tuple(fonts) if fonts else DIGIT_FONTS
    missing = [n for n in names if not os.path.isfile(os.path.join(folder, n))]
    if missing:
        raise SceneBuildError(f"font file(s) {missing} not found in {folder}")
    scene = bpy.context.scene
    settings = dict(DEFAULTS, **options)
    scene["blendset_digits"] = {k: _plain(v) for k, v in settings.items()}
    loaded = []
    for i, name in enumerate(names):
        font = bpy.data.fonts.load(os.path.join(folder, name), check_existing=True)
        font["blendset_digit_font"] = i
        loaded.append(font)
    lattice = _make_lattice(scene)
    for d in range(10):
        _make_digit(scene, d, loaded[0], lattice if settings["handwriting"] else None)
    _make_camera(scene)


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _make_lattice(scene: bpy.types.Scene) -> bpy.types.Object:
    data = bpy.data.lattices.new(LATTICE_NAME)
    data.points_u, data.points_v, data.points_w = LATTICE_POINTS[0], LATTICE_POINTS[1], 1
    data.interpolation_type_u = data.interpolation_type_v = "KEY_BSPLINE"
    obj = bpy.data.objects.new(LATTICE_NAME, data)
    obj.scale = (LATTICE_SIZE[0], LATTICE_SIZE[1], 1.0)
    scene.collection.objects.link(obj)
    return obj


def _make_digit(scene: bpy.types.Scene, digit: int, font: bpy.types.VectorFont, lattice: Any) -> bpy.types.Object:
    curve = bpy.data.curves.new(f"{OBJECT_PREFIX}{digit}", type="FONT")
    curve.body = str(digit)
    curve.font = font
    curve.align_x, curve.align_y = "CENTER", "CENTER"
    curve.resolution_u = 6
    curve.fill_mode = "BOTH"
    obj = bpy.data.objects.new(f"{OBJECT_PREFIX}{digit}", curve)
    obj["blendset_class"] = str(digit)
    obj["blendset_class_id"] = digit
    obj.rotation_euler = (math.pi / 2, 0.0, 0.0)  # upright, facing -Y (the camera)
    mat = bpy.data.materials.new(f"{OBJECT_PREFIX}{digit}_ink")
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = (0.05, 0.05, 0.08, 1.0)
        bsdf.inputs["Roughness"].default_value = 0.6
    curve.materials.append(mat)
    if lattice is not None:
        mod = obj.modifiers.new("handwriting", "LATTICE")
        mod.object = lattice
    scene.collection.objects.link(obj)
    # All digits stay renderable at build time (the engine skips targets hidden from render when it collects
    # them); randomize() shows exactly one per frame.
    return obj


def _make_camera(scene: bpy.types.Scene) -> None:
    cam = bpy.data.cameras.new(CAMERA_NAME)
    cam.lens = 50.0
    obj = bpy.data.objects.new(CAMERA_NAME, cam)
    obj.location = (0.0, -1.7, 0.0)
    obj.rotation_euler = (math.pi / 2, 0.0, 0.0)  # looks along +Y, up = +Z
    scene.collection.objects.link(obj)
    scene.camera = obj


def _draw(rng: Any, bounds: Any) -> float:
    lo, hi = bounds
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


def randomize(scene: bpy.types.Scene, rng: Any, frame: int, classes: tuple[str, ...] = ()) -> dict[str, float]:
    """Per-frame hook the engine calls after its randomizers: show one digit and reshape it.

    ``rng`` is the engine's per-frame ``numpy.random.Generator``; ``classes`` (class names, empty = all) is the
    mixture component's class restriction, so re-rendering a weak class shows only that class.
    Returns the drawn values, which the engine records as ``scene.<name>`` in the frame's params.
    """
    settings = dict(DEFAULTS, **dict(scene.get("blendset_digits", {})))
    allowed = [int(d) for d in settings["digits"]]
    if classes:
        allowed = [d for d in allowed if str(d) in set(classes)]
        if not allowed:
            raise SceneBuildError(f"frame {frame}: none of the classes {list(classes)} is a digit of this scene")
    digit = int(allowed[int(rng.integers(len(allowed)))])
    fonts = sorted((f for f in bpy.data.fonts if "blendset_digit_font" in f), key=lambda f: f["blendset_digit_font"])
    if not fonts:
        raise SceneBuildError("no digit fonts loaded: was build() run in this scene?")
    font_index = int(rng.integers(len(fonts)))
    values = {
        "digit": float(digit),
        "font": float(font_index),
        "extrude": _draw(rng, settings["extrude"]),
        "bevel_depth": _draw(rng, settings["bevel_depth"]),
        "shear": _draw(rng, settings["shear"]),
        "offset": _draw(rng, settings["offset"]),
        "rotation_deg": _draw(rng, settings["rotation_deg"]),
        "tilt_deg": _draw(rng, settings["tilt_deg"]),
        "aspect": _draw(rng, settings["aspect"]),
    }
    for d in range(10):
        obj = bpy.data.objects.get(f"{OBJECT_PREFIX}{d}")
        if obj is None:
            raise SceneBuildError(f"object {OBJECT_PREFIX}{d} missing: was build() run in this scene?")
        obj.hide_render = d != digit
        obj.hide_viewport = d != digit
    obj = bpy.data.objects[f"{OBJECT_PREFIX}{digit}"]
    curve = obj.data
    curve.font = fonts[font_index]
    curve.extrude = values["extrude"]
    curve.bevel_depth = values["bevel_depth"]
    curve.shear = values["shear"]
    curve.offset = values["offset"]
    obj.rotation_euler = (math.pi / 2, math.radians(values["rotation_deg"]), math.radians(values["tilt_deg"]))
    obj.scale = (values["aspect"], 1.0, 1.0)
    lattice = bpy.data.objects.get(LATTICE_NAME)
    if lattice is not None and settings["handwriting"]:
        values["deform_sigma"] = _draw(rng, settings["deform_sigma"])
        _deform_lattice(lattice, obj, rng, values["deform_sigma"])
    else:
        values["deform_sigma"] = 0.0
    return values


def _deform_lattice(lattice: bpy.types.Object, target: bpy.types.Object, rng: Any, sigma: float) -> None:
    """Move the lattice onto the glyph and jitter its control points in the glyph plane (smooth B-spline warp)."""
    lattice.location = target.location
    lattice.rotation_euler = target.rotation_euler
    lattice.scale = (LATTICE_SIZE[0] * target.scale[0], LATTICE_SIZE[1], 1.0)
    for point in lattice.data.points:
        dx, dy = rng.normal(0.0, sigma, size=2)
        point.co_deform = (point.co[0] + dx / LATTICE_SIZE[0], point.co[1] + dy / LATTICE_SIZE[1], point.co[2])
