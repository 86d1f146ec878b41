"""Scenes with known geometry for the engine tests, built as a scene script (``--scene-script`` this file).

The module imports ``bpy`` only inside ``build``: the tests import it for the constants below and compute the
expected boxes, depths and occlusions from them with plain numpy.

Camera: at (0, 0, 10), looking straight down (-Z), 50 mm lens on a 36 mm sensor, 160x120 pixels.
``variant="geometry"``: ground plane at z = 0 and labelled objects (see BOXES); ``variant="grid"``: GRID_N
labelled tiles and no ground (more than 255 instances); ``variant="unlabelled_target"``: an object marked as a
target without a label.
"""

from __future__ import annotations

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


def grid_centre(i: int) -> tuple[float, float]:
    col, row = i % GRID_COLS, i // GRID_COLS
    return -3.23 + 0.34 * col, -2.34 + 0.36 * row


def config(variant: str = "geometry") -> dict:
    """The test config: no randomizer (the scene's camera and lights stay), tiny render, every filter open."""
    return {
        "schema_version": 1,
        "name": f"engine-{variant}",
        "seed": 3,
        "count": 1,
        "render": {"resolution": list(RESOLUTION), "samples": 2},
        "output": {"depth_float": "npy", "normals": True, "polygons": True, "yolo": True},
        "filters": {"min_visible_pixels": 1},
    }


def build(variant: str = "geometry") -> None:
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
