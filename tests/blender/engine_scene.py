"""Scenes with known geometry for the engine tests, built as a scene script (``--scene-script`` this file).

The module imports ``bpy`` only inside ``build``: the tests import it for the constants below and compute the
expected boxes, depths and occlusions from them with plain numpy.

Camera: at (0, 0, 10), looking straight down (-Z), 50 mm lens on a 36 mm sensor, 160x120 pixels.
``variant="geometry"``: ground plane at z = 0 and labelled objects (see BOXES); ``variant="grid"``: GRID_N
labelled tiles and no ground (more than 255 instances); ``variant="unlabelled_target"``: an object marked as a
target without a label; ``variant="keypoints"``: ground plus objects with keypoints of each source (see
KEYPOINT_CLASSES), each keypoint's visibility known from the geometry.
"""

from __future__ import annotations

import json
import math

CAMERA_Z = 10.0
LENS_MM = 50.0
SENSOR_MM = 36.0
RESOLUTION = (160, 120)

# Axis-aligned boxes: name -> (class name, class id, (xmin, xmax), (ymin, ymax), (zmin, zmax)).
BOXES = {
    "BoxA": ("box", 0, (-2.5, -1.5), (0.7, 1.7), (0.0, 1.0)),
    "HiddenC": ("box", 0, (-2.2, -1.8), (-1.7, -1.3), (0.0, 0.4)),
}
# Flat squares (zero thickness) at a height: name -> (class, id, (xmin, xmax), (ymin, ymax), z)
PANELS = {
    "PanelB": ("panel", 1, (1.0, 2.0), (0.7, 1.7), 1.0),
    "AlphaD": ("alpha", 2, (-0.5, 0.5), (-2.1, -1.1), 0.5),
}
# Unlabelled occluders: OccB hides exactly the right half of PanelB as seen from the camera (its left edge
# projects onto PanelB's centre line); OccC hides HiddenC completely.
OCCLUDERS = {
    "OccB": ((1.5 * 8.0 / 9.0, 2.6), (0.2, 2.2), 2.0),
    "OccC": ((-1.7, -1.1), (-1.35, -0.8), 3.0),
}
# Collection instances: the collection holds two cubes (size WIDGET_SIZE) at these local centres.
WIDGET_SIZE = 0.3
WIDGET_PARTS = ((0.0, 0.0, 0.15), (0.4, 0.0, 0.15))
WIDGET_EMPTIES = {"WidgetE1": (-0.6, 0.3, 0.0), "WidgetE2": (0.2, 0.3, 0.0)}
# Geometry-nodes instances: cubes of STUD_SIZE at these world centres, made by one GN modifier.
STUD_SIZE = 0.25
STUD_ORIGIN = (0.0, 2.2, 0.0)
STUD_CENTRES = ((0.0, 2.2, 0.125), (0.5, 2.2, 0.125), (1.0, 2.2, 0.125))

GRID_COLS, GRID_ROWS = 20, 14
GRID_N = GRID_COLS * GRID_ROWS
GRID_TILE = 0.2


# -- variant "keypoints" ---------------------------------------------------------------------------------------
# KBox: a box with vertex groups; a group lists (corner, weight), corner (ix, iy, iz) indexing KBOX's ranges.
KBOX = ((-3.0, -1.8), (0.6, 1.8), (0.0, 1.0))
KBOX_GROUPS = {
    "top_corner": [((0, 1, 1), 1.0)],  # on the box's outline against the ground: visible
    "top_centre": [((0, 0, 1), 1.0), ((1, 0, 1), 1.0), ((0, 1, 1), 1.0), ((1, 1, 1), 1.0)],  # visible
    "weighted": [((0, 1, 1), 0.25), ((1, 1, 1), 0.75)],  # 3/4 along the far top edge: visible
    "bottom_near": [((1, 0, 0), 1.0)],  # in the crease of the two walls the camera sees and the ground: visible
    "bottom_far": [((0, 1, 0), 1.0)],  # behind the box's own top face: hidden (v=1)
}
KBOX_V = {"top_corner": 2, "top_centre": 2, "weighted": 2, "bottom_near": 2, "bottom_far": 1}
# KPlate, KPlate2: flat 1.6 x 1.2 plates with empties as children (local positions); the second instance's empties
# carry Blender's duplicate suffix. name -> (location, z rotation in degrees, suffix)
PLATE_HALF = (0.8, 0.6)
PLATES = {"KPlate": ((1.8, 1.2, 0.5), 90.0, ""), "KPlate2": ((0.5, -1.6, 0.5), 0.0, ".001")}
PLATE_EMPTIES = {"e_vis": (0.3, 0.2, 0.0), "e_hidden": (-0.5, -0.4, 0.0), "e_out": (0.0, -3.5, 0.0)}
PLATE_V = {"KPlate": {"e_vis": 2, "e_hidden": 1, "e_out": 0}, "KPlate2": {"e_vis": 2, "e_hidden": 2, "e_out": 0}}
KP_OCCLUDER_Z, KP_OCCLUDER_HALF = 2.0, 0.3  # unlabelled square over KPlate's e_hidden (centred on its ray)
# KLocal: a box (local x, y in +-0.5, z in 0..0.8) at a location, turned about z; keypoints in its local frame.
KLOCAL_AT, KLOCAL_ROT_DEG = (-1.2, -1.4, 0.0), 30.0
KLOCAL_POINTS = {
    "top_corner": ((0.5, 0.5, 0.8), 2),
    "bottom_centre": ((0.0, 0.0, 0.0), 1),  # behind its own top face
    "outside": ((0.0, 6.0, 0.8), 0),
    "behind_camera": ((0.0, 0.0, 12.0), 0),
}
# KTilt: a 0.6 x 2.0 quad turned 70 degrees about x: seen at about 78 degrees from its normal, its depth changes
# by some 17 cm per pixel. Keypoints on its surface must still be visible.
KTILT_AT, KTILT_ROT_DEG, KTILT_HALF = (2.2, -1.2, 1.2), 70.0, (0.3, 1.0)
KTILT_POINTS = {"centre": ((0.0, 0.0, 0.0), 2), "upper": ((0.1, 0.5, 0.0), 2)}
KEYPOINT_CLASSES = [
    {
        "name": "kbox",
        "id": 0,
        "objects": ["KBox"],
        "keypoints": {
            "source": "vertex_groups",
            "names": list(KBOX_GROUPS),
            "skeleton": [["top_corner", "top_centre"], ["top_centre", "bottom_far"]],
        },
    },
    {
        "name": "kplate",
        "id": 1,
        "objects": list(PLATES),
        "keypoints": {"source": "empties", "names": list(PLATE_EMPTIES), "flip_pairs": [["e_vis", "e_hidden"]]},
    },
    {
        "name": "klocal",
        "id": 2,
        "objects": ["KLocal"],
        "keypoints": {
            "source": "local",
            "names": list(KLOCAL_POINTS),
            "coordinates": [list(p) for p, _ in KLOCAL_POINTS.values()],
        },
    },
    {
        "name": "ktilt",
        "id": 3,
        "objects": ["KTilt"],
        "keypoints": {
            "source": "local",
            "names": list(KTILT_POINTS),
            "coordinates": [list(p) for p, _ in KTILT_POINTS.values()],
        },
    },
]


def rot_z(deg: float):
    import numpy as np

    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_x(deg: float):
    import numpy as np

    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def plate_empty_world(plate: str, name: str):
    """World position of a plate's empty: the plate's rotation and location applied to the empty's offset."""
    import numpy as np

    at, deg, _ = PLATES[plate]
    return rot_z(deg) @ np.array(PLATE_EMPTIES[name]) + np.array(at)


def keypoint_occluder() -> tuple[tuple[float, float], tuple[float, float], float]:
    """The occluder square at KP_OCCLUDER_Z whose centre lies on the camera ray through KPlate's e_hidden."""
    p = plate_empty_world("KPlate", "e_hidden")
    scale = (CAMERA_Z - KP_OCCLUDER_Z) / (CAMERA_Z - p[2])
    cx, cy, h = float(p[0] * scale), float(p[1] * scale), KP_OCCLUDER_HALF
    return (cx - h, cx + h), (cy - h, cy + h), KP_OCCLUDER_Z


def grid_centre(i: int) -> tuple[float, float]:
    col, row = i % GRID_COLS, i // GRID_COLS
    return -3.23 + 0.34 * col, -2.34 + 0.36 * row


def config(variant: str = "geometry") -> dict:
    """The test config: no randomizer (the scene's camera and lights stay), tiny render, every filter open."""
    cfg = {
        "schema_version": 1,
        "name": f"engine-{variant}",
        "seed": 3,
        "count": 1,
        "render": {"resolution": list(RESOLUTION), "samples": 2},
        "output": {"depth_float": "npy", "normals": True, "polygons": True, "yolo": True},
        "filters": {"min_visible_pixels": 1},
    }
    if variant == "keypoints":  # four keypoint layouts: more than one YOLO pose export can hold
        cfg["classes"] = json.loads(json.dumps(KEYPOINT_CLASSES))  # a copy: callers edit it
        cfg["output"] = {"depth_float": "npy", "yolo": False}
    return cfg


def build(variant: str = "geometry", edge_split: bool = False) -> None:
    """``edge_split``: KBox gets an Edge Split modifier (keypoints variant): more vertices, same shape and the same
    weighted means, which sends the engine down its evaluated-weights path."""
    import bpy

    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = RESOLUTION
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    cam.data.lens, cam.data.sensor_width, cam.data.sensor_fit = LENS_MM, SENSOR_MM, "HORIZONTAL"
    cam.location = (0.0, 0.0, CAMERA_Z)
    scene.collection.objects.link(cam)
    scene.camera = cam
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    scene.collection.objects.link(sun)
    if variant == "grid":
        for i in range(GRID_N):
            x, y = grid_centre(i)
            h = GRID_TILE / 2
            ob = _quad(scene, f"Tile{i:03d}", (x - h, x + h), (y - h, y + h), 0.0)
            ob["blendset_class"] = "tile"
            ob["blendset_class_id"] = 0
        return
    _quad(scene, "Ground", (-6.0, 6.0), (-6.0, 6.0), 0.0)
    if variant == "keypoints":
        _keypoint_objects(scene)
        if edge_split:
            mod = bpy.data.objects["KBox"].modifiers.new("Split", "EDGE_SPLIT")
            mod.split_angle = math.radians(30.0)
        return
    for name, (cls, cid, xs, ys, zs) in BOXES.items():
        ob = _box(scene, name, xs, ys, zs)
        ob["blendset_class"], ob["blendset_class_id"] = cls, cid
    for name, (cls, cid, xs, ys, z) in PANELS.items():
        ob = _quad(scene, name, xs, ys, z)
        ob["blendset_class"], ob["blendset_class_id"] = cls, cid
    for name, (xs, ys, z) in OCCLUDERS.items():
        _quad(scene, name, xs, ys, z)
    _alpha_cut(bpy.data.objects["AlphaD"])
    _widgets(scene)
    _studs(scene)
    if variant == "unlabelled_target":
        bpy.data.objects["BoxA"]["blendset_target"] = True
        del bpy.data.objects["BoxA"]["blendset_class"]
        del bpy.data.objects["BoxA"]["blendset_class_id"]


def _link(scene, name, verts, faces, collection=None):
    import bpy

    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    mesh.update()
    ob = bpy.data.objects.new(name, mesh)
    (collection or scene.collection).objects.link(ob)
    return ob


def _quad(scene, name, xs, ys, z):
    verts = [(xs[0], ys[0], z), (xs[1], ys[0], z), (xs[1], ys[1], z), (xs[0], ys[1], z)]
    return _link(scene, name, verts, [(0, 1, 2, 3)])


def _box(scene, name, xs, ys, zs, collection=None):
    verts = [(x, y, z) for z in zs for y in ys for x in xs]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    return _link(scene, name, verts, faces, collection)


def _keypoint_objects(scene) -> None:
    import bpy

    box = _box(scene, "KBox", *KBOX)
    for name, members in KBOX_GROUPS.items():
        group = box.vertex_groups.new(name=name)
        for (ix, iy, iz), weight in members:
            group.add([iz * 4 + iy * 2 + ix], weight, "REPLACE")  # _box's vertex order: z, then y, then x
    hx, hy = PLATE_HALF
    for plate, (at, deg, suffix) in PLATES.items():
        ob = _quad(scene, plate, (-hx, hx), (-hy, hy), 0.0)
        ob.location, ob.rotation_euler = at, (0.0, 0.0, math.radians(deg))
        for name, offset in PLATE_EMPTIES.items():
            empty = bpy.data.objects.new(name + suffix, None)
            scene.collection.objects.link(empty)
            empty.parent = ob  # no parent inverse: world = plate's world matrix @ offset
            empty.location = offset
    _quad(scene, "KOccluder", *keypoint_occluder())
    local = _box(scene, "KLocal", (-0.5, 0.5), (-0.5, 0.5), (0.0, 0.8))
    local.location, local.rotation_euler = KLOCAL_AT, (0.0, 0.0, math.radians(KLOCAL_ROT_DEG))
    hx, hy = KTILT_HALF
    tilt = _quad(scene, "KTilt", (-hx, hx), (-hy, hy), 0.0)
    tilt.location, tilt.rotation_euler = KTILT_AT, (math.radians(KTILT_ROT_DEG), 0.0, 0.0)


def _alpha_cut(ob) -> None:
    """Alpha 0 where the object's generated x < 0.5 (its left half), 1 elsewhere: a cut-out material. Cycles
    honours alpha whatever the material's blend mode."""
    import bpy

    mat = bpy.data.materials.new("AlphaCut")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = next(n for n in nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    coords = nodes.new("ShaderNodeTexCoord")
    sep = nodes.new("ShaderNodeSeparateXYZ")
    cmp = nodes.new("ShaderNodeMath")
    cmp.operation = "GREATER_THAN"
    cmp.inputs[1].default_value = 0.5
    links.new(coords.outputs["Generated"], sep.inputs["Vector"])
    links.new(sep.outputs["X"], cmp.inputs[0])
    links.new(cmp.outputs["Value"], bsdf.inputs["Alpha"])
    ob.data.materials.append(mat)


def _widgets(scene) -> None:
    import bpy

    coll = bpy.data.collections.new("Widget")  # not linked to the scene: only instanced
    h = WIDGET_SIZE / 2
    for k, (x, y, z) in enumerate(WIDGET_PARTS):
        _box(scene, f"WidgetPart{k}", (x - h, x + h), (y - h, y + h), (z - h, z + h), collection=coll)
    for name, loc in WIDGET_EMPTIES.items():
        empty = bpy.data.objects.new(name, None)
        empty.instance_type = "COLLECTION"
        empty.instance_collection = coll
        empty.location = loc
        empty["blendset_class"], empty["blendset_class_id"] = "widget", 3
        scene.collection.objects.link(empty)


def _studs(scene) -> None:
    """One mesh object whose geometry-nodes modifier puts a cube on each of three points."""
    import bpy

    ob = _link(scene, "Studs", [], [])
    ob.location = STUD_ORIGIN
    ob["blendset_class"], ob["blendset_class_id"] = "stud", 4
    tree = bpy.data.node_groups.new("StudsTree", "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    out = tree.nodes.new("NodeGroupOutput")
    line = tree.nodes.new("GeometryNodeMeshLine")
    line.inputs["Count"].default_value = len(STUD_CENTRES)
    line.inputs["Start Location"].default_value = (0.0, 0.0, STUD_CENTRES[0][2])
    line.inputs["Offset"].default_value = (0.5, 0.0, 0.0)
    cube = tree.nodes.new("GeometryNodeMeshCube")
    cube.inputs["Size"].default_value = (STUD_SIZE, STUD_SIZE, STUD_SIZE)
    inst = tree.nodes.new("GeometryNodeInstanceOnPoints")
    tree.links.new(line.outputs["Mesh"], inst.inputs["Points"])
    tree.links.new(cube.outputs["Mesh"], inst.inputs["Instance"])
    tree.links.new(inst.outputs["Instances"], out.inputs[0])
    mod = ob.modifiers.new("Studs", "NODES")
    mod.node_group = tree
