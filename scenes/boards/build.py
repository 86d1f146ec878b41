"""The boards scene: a printed 9 x 6-corner chessboard with a white margin, held in front of a webcam.

Built by script into the current (empty, ``--factory-startup``) scene, so it needs no .blend file::

    blendset render --config cfg.json --out DIR --scene-script scenes/boards/build.py --count N --seed S

It mirrors what the real photos of the chessboard benchmark vary (``blendset bench boards``; the photos are
OpenCV's calibration samples): the board's 6-DoF pose in a working volume in front of the camera, hands that
hold it and cover part of it, the lens (focal length and principal point around a 640 x 480 webcam) and the
exposure. Lights, backgrounds, clutter and sensor effects come from the engine's randomizers in the config.

``build(**options)`` creates:

- ``blendset_board``: the printed sheet (checker area plus white margin), a flat mesh with an image texture;
  custom properties ``blendset_class = "board"``, ``blendset_class_id = 1``. Its local frame: x to the right,
  y up, z out of the printed face; the top-left square (x min, y max) is black. The print has the real
  board's measured proportions (``trainer/bench/boards_real.py``): the end columns are about half a square
  wide, the end rows 0.96 of a square, and the white paper margin is 0.13 of a square.
- 54 empties ``r0c0`` ... ``r5c8`` parented to it, one per inner corner, row-major from the top-left inner
  corner (9 per row, 6 rows): the board's keypoints (``keypoints.source = "empties"``). This is the order the
  real ground truth uses (corner 0 next to the black corner square, rows running left to right).
- ``blendset_board_backing``: the rigid board the sheet is glued on (a little larger, dark grey), unlabelled.
- ``blendset_hand_0``, ``blendset_hand_1``: simple hands (a palm and four fingers), unlabelled occluders.
- ``blendset_board_camera``: the scene camera at the origin, looking along +Y.

:func:`randomize` is the per-frame hook; it sets every property it touches on every frame, so a frame depends
only on its seed, never on the frame before. Runs in Blender 4.2+ (bpy module and binary), with the standard
library, numpy, bpy and the repository's ``shared/errors.py``.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import bpy
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
try:
    from shared.errors import BlendsetError
except ImportError:  # run by an installed add-on's headless runner: the repository is not on sys.path
    sys.path.append(REPO)
    from shared.errors import BlendsetError

BOARD_NAME = "blendset_board"
BACKING_NAME = "blendset_board_backing"
CAMERA_NAME = "blendset_board_camera"
HAND_PREFIX = "blendset_hand_"
ROWS, COLS = 6, 9  # inner corners
TEXTURE_PX_PER_SQUARE = 64

# Per-frame ranges; build(**options) may override any of them (``--scene-args`` on the command line).
DEFAULTS: dict[str, Any] = {
    "square_m": 0.025,  # the real board's squares are 25 mm
    # How far the print reaches beyond the outermost inner corners, in squares (x, y): measured on the real photos
    "checker_extent": (0.51, 0.96),
    "margin_squares": 0.13,  # white paper beyond the checker area, in squares (measured on the real photos)
    "backing_squares": 0.45,  # how far the dark backing board shows beyond the paper, in squares
    "distance_m": (0.28, 0.6),  # camera to board centre (the real photos: about 0.3 to 0.5 m)
    "tilt_deg": (-45.0, 45.0),  # rotation about the board's horizontal and vertical axes (each)
    "roll_deg": (-180.0, 180.0),  # in-plane rotation: the real photos hold the board at any angle (up to ~100 deg)
    "offset_share": (-0.35, 0.35),  # board centre offset across the view, as a share of the half field of view
    "fx_px": (480.0, 600.0),  # focal length in pixels of a 640 px wide image (the real webcams: about 536)
    "principal_shift": (-0.03, 0.03),  # Blender camera shift (principal point offset, share of the image)
    "exposure": (-1.0, 0.8),  # Blender's view exposure, in stops
    "hands": (0, 2),  # number of hands holding the board
    "hand_tone": (0.25, 0.75),  # skin brightness
    "keypoint_empties": True,  # the 54 corner empties (off: a board without keypoints)
    "paper_value": (0.75, 0.95),  # brightness of the white print
    "ink_value": (0.02, 0.08),  # brightness of the black print
}


class SceneBuildError(BlendsetError, RuntimeError):
    """The boards scene cannot be built or randomized (bad option, missing object)."""


def _settings(scene: bpy.types.Scene | None = None, **options: Any) -> dict[str, Any]:
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise SceneBuildError(f"unknown boards scene option(s) {unknown}; known: {sorted(DEFAULTS)}")
    stored = dict(scene.get("blendset_boards", {})) if scene is not None else {}
    return {**DEFAULTS, **{k: (tuple(v) if isinstance(v, list) else v) for k, v in stored.items()}, **options}


def corner_positions(square_m: float) -> np.ndarray:
    """The 54 inner corners in the board's local frame (metres), row-major from the top-left inner corner."""
    cols = (np.arange(COLS) - (COLS - 1) / 2) * square_m
    rows = ((ROWS - 1) / 2 - np.arange(ROWS)) * square_m
    return np.array([(x, y, 0.0) for y in rows for x in cols])


def corner_names() -> list[str]:
    return [f"r{r}c{c}" for r in range(ROWS) for c in range(COLS)]


def build(**options: Any) -> None:
    """Create the boards scene in the current scene. ``options`` override :data:`DEFAULTS` (unknown keys
    raise)."""
    scene = bpy.context.scene
    settings = _settings(None, **options)
    scene["blendset_boards"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}
    scene.view_settings.view_transform = "Standard"  # a webcam's plain sRGB response, not a filmic curve
    board = _make_board(scene, settings)
    corners = zip(corner_names(), corner_positions(settings["square_m"]), strict=True)
    for name, position in corners if settings["keypoint_empties"] else ():
        empty = bpy.data.objects.new(name, None)
        empty.empty_display_size = settings["square_m"] * 0.2
        empty.parent = board
        empty.location = tuple(position)
        scene.collection.objects.link(empty)
    # The backing and the hands follow the board but are not its children: children of a labelled object are
    # parts of its instance (its mask), and these are not the board.
    _make_backing(scene, settings)
    for i in range(2):
        _make_hand(scene, i)
    _make_camera(scene)


def _half_extent(settings: dict[str, Any]) -> tuple[float, float]:
    """Half width and height of the paper (checker area plus margin), in squares from the board's centre."""
    ex, ey = settings["checker_extent"]
    m = settings["margin_squares"]
    return (COLS - 1) / 2 + ex + m, (ROWS - 1) / 2 + ey + m


def _board_texture(settings: dict[str, Any]) -> bpy.types.Image:
    """The printed sheet as an image: squares between the inner-corner lines, the top-left one black, the end
    columns and rows as wide as the real print's, then the white margin."""
    px = TEXTURE_PX_PER_SQUARE
    hw, hh = _half_extent(settings)
    width, height = int(round(2 * hw * px)), int(round(2 * hh * px))
    ys, xs = np.mgrid[0:height, 0:width]
    u = (xs + 0.5) / px - hw  # squares from the centre, x to the right
    v = hh - (ys + 0.5) / px  # squares from the centre, y up (row 0 of the array is the top of the print)
    ex, ey = settings["checker_extent"]
    inside = (np.abs(u) <= (COLS - 1) / 2 + ex) & (np.abs(v) <= (ROWS - 1) / 2 + ey)
    col = np.floor(u + (COLS - 1) / 2).astype(int) + 1  # 0 = the narrow end column on the left
    row = np.floor((ROWS - 1) / 2 - v).astype(int) + 1  # 0 = the end row at the top
    black = inside & ((col + row) % 2 == 0)
    grey = np.where(black, 0.0, 1.0).astype(np.float32)
    rgba = np.ones((height, width, 4), dtype=np.float32)
    rgba[..., :3] = grey[..., None]
    image = bpy.data.images.new("blendset_board_print", width, height, alpha=False)
    image.colorspace_settings.name = "Non-Color"  # the grey levels are set by the material's ramp below
    image.pixels.foreach_set(rgba[::-1].ravel())  # Blender's pixel rows run bottom to top
    image.pack()
    return image


def _make_board(scene: bpy.types.Scene, settings: dict[str, Any]) -> bpy.types.Object:
    s = settings["square_m"]
    half_w, half_h = (e * s for e in _half_extent(settings))
    mesh = bpy.data.meshes.new(BOARD_NAME)
    mesh.from_pydata([(-half_w, -half_h, 0), (half_w, -half_h, 0), (half_w, half_h, 0), (-half_w, half_h, 0)], [],
                     [(0, 1, 2, 3)])  # fmt: skip
    uv = mesh.uv_layers.new(name="UVMap")
    for loop, coords in zip(mesh.loops, ((0, 0), (1, 0), (1, 1), (0, 1)), strict=True):
        uv.data[loop.index].uv = coords
    board = bpy.data.objects.new(BOARD_NAME, mesh)
    board["blendset_class"] = "board"
    board["blendset_class_id"] = 1
    mat = bpy.data.materials.new("blendset_board_print")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes.get("Principled BSDF")
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = _board_texture(settings)
    tex.interpolation = "Linear"
    ramp = nodes.new("ShaderNodeValToRGB")  # ink and paper brightness, drawn per frame
    ramp.name = "blendset_print_levels"
    links.new(tex.outputs["Color"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.7
    mesh.materials.append(mat)
    scene.collection.objects.link(board)
    return board


def _make_backing(scene: bpy.types.Scene, settings: dict[str, Any]) -> None:
    s, grow = settings["square_m"], settings["backing_squares"]
    hw, hh = _half_extent(settings)
    half_w, half_h, depth = (hw + grow) * s, (hh + grow) * s, 0.006
    verts = [(x, y, z) for z in (-0.0005, -0.0005 - depth) for x, y in
             ((-half_w, -half_h), (half_w, -half_h), (half_w, half_h), (-half_w, half_h))]  # fmt: skip
    faces = [(0, 1, 2, 3), (7, 6, 5, 4), (0, 4, 5, 1), (1, 5, 6, 2), (2, 6, 7, 3), (3, 7, 4, 0)]
    mesh = bpy.data.meshes.new(BACKING_NAME)
    mesh.from_pydata(verts, [], faces)
    backing = bpy.data.objects.new(BACKING_NAME, mesh)
    mat = bpy.data.materials.new(BACKING_NAME)
    mat.use_nodes = True
    mat.node_tree.nodes.get("Principled BSDF").inputs["Base Color"].default_value = (0.12, 0.12, 0.13, 1.0)
    mesh.materials.append(mat)
    scene.collection.objects.link(backing)


def _make_hand(scene: bpy.types.Scene, index: int) -> bpy.types.Object:
    """A palm (flattened box) and four fingers (cylinders): enough to cover the margin and squares the way a
    real hand gripping the board edge does."""
    import bmesh

    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=1.0, matrix=_scale_matrix(0.085, 0.095, 0.025))  # palm, centred
    finger = 0.05
    for k in range(4):  # along the hand's +y, from the palm's edge (y = 0.0475)
        place = np.eye(4)
        place[:3, 3] = (-0.03 + 0.02 * k, 0.0475 + finger / 2, 0.0)
        shape = np.diag([0.018, 0.018, finger, 1.0])
        bmesh.ops.create_cone(bm, cap_ends=True, segments=10, radius1=0.5, radius2=0.45, depth=1.0,
                              matrix=_to_blender(place @ _rotation_x(-math.pi / 2) @ shape))  # fmt: skip
    mesh = bpy.data.meshes.new(f"{HAND_PREFIX}{index}")
    bm.to_mesh(mesh)
    bm.free()
    hand = bpy.data.objects.new(f"{HAND_PREFIX}{index}", mesh)
    mat = bpy.data.materials.new(f"{HAND_PREFIX}{index}_skin")
    mat.use_nodes = True
    mat.node_tree.nodes.get("Principled BSDF").inputs["Roughness"].default_value = 0.55
    mesh.materials.append(mat)
    scene.collection.objects.link(hand)
    return hand


def _scale_matrix(x: float, y: float, z: float) -> Any:
    return _to_blender(np.diag([x, y, z, 1.0]))


def _rotation_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]], dtype=np.float64)


def _to_blender(m: np.ndarray) -> Any:
    from mathutils import Matrix

    return Matrix([list(row) for row in m])


def _make_camera(scene: bpy.types.Scene) -> None:
    cam = bpy.data.cameras.new(CAMERA_NAME)
    cam.sensor_fit = "HORIZONTAL"
    cam.clip_start = 0.02
    obj = bpy.data.objects.new(CAMERA_NAME, cam)
    obj.location = (0.0, 0.0, 0.0)
    obj.rotation_euler = (math.pi / 2, 0.0, 0.0)  # looks along +Y, up = +Z
    scene.collection.objects.link(obj)
    scene.camera = obj


def _draw(rng: Any, bounds: Any) -> float:
    lo, hi = bounds
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


def _objects() -> tuple[bpy.types.Object, bpy.types.Object, bpy.types.Object, list[bpy.types.Object]]:
    board, camera = bpy.data.objects.get(BOARD_NAME), bpy.data.objects.get(CAMERA_NAME)
    backing = bpy.data.objects.get(BACKING_NAME)
    hands = [bpy.data.objects.get(f"{HAND_PREFIX}{i}") for i in range(2)]
    if board is None or camera is None or backing is None or None in hands:
        raise SceneBuildError("boards scene objects missing: was build() run in this scene?")
    return board, camera, backing, hands


def _euler(x: float, y: float, z: float) -> np.ndarray:
    """Blender's XYZ Euler rotation as a matrix (R = Rz Ry Rx)."""
    cx, sx, cy, sy, cz, sz = math.cos(x), math.sin(x), math.cos(y), math.sin(y), math.cos(z), math.sin(z)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def randomize(scene: bpy.types.Scene, rng: Any, frame: int, classes: tuple[str, ...] = ()) -> dict[str, float]:
    """Per-frame hook the engine calls after its randomizers: lens, exposure, board pose, print levels and hands.
    Returns the drawn values, which the engine records as ``scene.<name>`` in the frame's params."""
    if classes and "board" not in classes:
        raise SceneBuildError(f"frame {frame}: the boards scene has only the class 'board', not {list(classes)}")
    settings = _settings(scene)
    board, camera, backing, hands = _objects()
    width = scene.render.resolution_x * scene.render.resolution_percentage / 100
    height = scene.render.resolution_y * scene.render.resolution_percentage / 100
    values = {
        "fx_px": _draw(rng, settings["fx_px"]),
        "shift_x": _draw(rng, settings["principal_shift"]),
        "shift_y": _draw(rng, settings["principal_shift"]),
        "exposure": _draw(rng, settings["exposure"]),
        "distance_m": _draw(rng, settings["distance_m"]),
        "tilt_x_deg": _draw(rng, settings["tilt_deg"]),
        "tilt_z_deg": _draw(rng, settings["tilt_deg"]),
        "roll_deg": _draw(rng, settings["roll_deg"]),
        "offset_x": _draw(rng, settings["offset_share"]),
        "offset_z": _draw(rng, settings["offset_share"]),
        "paper_value": _draw(rng, settings["paper_value"]),
        "ink_value": _draw(rng, settings["ink_value"]),
    }
    cam = camera.data
    cam.lens = values["fx_px"] * cam.sensor_width / 640.0  # the same field of view at any render width
    fx = values["fx_px"] * width / 640.0
    cam.shift_x, cam.shift_y = values["shift_x"], values["shift_y"]
    scene.view_settings.exposure = values["exposure"]

    # The board: facing the camera (its +z towards -Y), tilted and rolled, somewhere in the view at the distance.
    d = values["distance_m"]
    half_fov_x = math.atan(width / (2 * fx))
    half_fov_z = math.atan(height / (2 * fx))
    location = (d * math.tan(half_fov_x) * values["offset_x"], d, d * math.tan(half_fov_z) * values["offset_z"])
    euler = (
        math.pi / 2 + math.radians(values["tilt_x_deg"]),  # +90 deg about x: the print faces -Y
        math.radians(values["roll_deg"]),
        math.radians(values["tilt_z_deg"]),
    )
    world_from_board = np.eye(4)
    world_from_board[:3, :3], world_from_board[:3, 3] = _euler(*euler), location
    for ob in (board, backing):
        ob.rotation_mode = "XYZ"
        ob.location, ob.rotation_euler = location, euler
    ramp = board.active_material.node_tree.nodes["blendset_print_levels"].color_ramp
    ink, paper = values["ink_value"], values["paper_value"]
    ramp.elements[0].color = (ink, ink, ink, 1.0)
    ramp.elements[1].color = (paper, paper, paper, 1.0)

    # Hands grip the board's edge: left, right or bottom, partly over the margin and the outer squares.
    n_hands = int(rng.integers(settings["hands"][0], settings["hands"][1] + 1))
    values["hands"] = float(n_hands)
    s = settings["square_m"]
    half_w, half_h = (e * s for e in _half_extent(settings))
    edges = rng.permutation(3)
    for i, hand in enumerate(hands):
        shown = i < n_hands
        hand.hide_render = hand.hide_viewport = not shown
        edge = int(edges[i])
        along = _draw(rng, (-0.6, 0.6))
        reach = _draw(rng, (0.2, 1.2)) * s  # how far the fingers come over the print
        if edge == 0:  # left edge, fingers pointing right
            position, angle = (-half_w - 0.06 + reach, along * half_h, 0.012), -math.pi / 2
        elif edge == 1:  # right edge, fingers pointing left
            position, angle = (half_w + 0.06 - reach, along * half_h, 0.012), math.pi / 2
        else:  # bottom edge, fingers pointing up
            position, angle = (along * half_w, -half_h - 0.06 + reach, 0.012), 0.0
        board_from_hand = np.eye(4)
        board_from_hand[:3, :3] = _euler(0.0, 0.0, angle + math.radians(_draw(rng, (-20.0, 20.0))))
        board_from_hand[:3, 3] = position
        hand.matrix_world = _to_blender(world_from_board @ board_from_hand)
        tone = _draw(rng, settings["hand_tone"])
        bsdf = hand.active_material.node_tree.nodes.get("Principled BSDF")
        bsdf.inputs["Base Color"].default_value = (tone, tone * 0.82, tone * 0.7, 1.0)
    return values
