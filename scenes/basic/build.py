"""The built-in default scene: a ground plane, three labelled primitives, a camera and a sun. No binary assets.

Built by script into the current scene (empty after ``--factory-startup`` and ``read_factory_settings``)::

    blendset render --config scenes/basic/default_config.json --out DIR --scene-script scenes/basic/build.py

Labels are custom properties (``blendset_class`` / ``blendset_class_id``), the way an artist marks objects in
their own file. Class id 0 is used on purpose: it is an ordinary class.
"""

from __future__ import annotations

import json
import os
from typing import Any

import bmesh
import bpy

HERE = os.path.dirname(os.path.abspath(__file__))

# name, class name, class id, colour, (x, y), builder
OBJECTS = (
    ("Cube", "cube", 0, (0.8, 0.1, 0.1), (-1.2, 0.0)),
    ("Sphere", "sphere", 1, (0.1, 0.6, 0.1), (0.0, 1.0)),
    ("Cone", "cone", 2, (0.1, 0.2, 0.8), (1.2, -0.3)),
)


def _mesh(kind: str) -> bpy.types.Mesh:
    mesh = bpy.data.meshes.new(kind)
    bm = bmesh.new()
    if kind == "Cube":
        bmesh.ops.create_cube(bm, size=1.0)
    elif kind == "Sphere":
        bmesh.ops.create_uvsphere(bm, u_segments=32, v_segments=16, radius=0.5)
    elif kind == "Cone":
        bmesh.ops.create_cone(bm, cap_ends=True, segments=32, radius1=0.5, radius2=0.0, depth=1.0)
    else:
        bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=4.0)
    bm.to_mesh(mesh)
    bm.free()
    return mesh


def _material(name: str, colour: tuple[float, float, float]) -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = next(n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
    bsdf.inputs["Roughness"].default_value = 0.5
    return mat


def build(**kwargs: Any) -> None:
    """Build the scene into ``bpy.context.scene``. No options; unknown keywords are refused."""
    if kwargs:
        raise TypeError(f"scenes/basic build() takes no options, got {sorted(kwargs)}")
    scene = bpy.context.scene
    ground = bpy.data.objects.new("Ground", _mesh("Ground"))
    ground.data.materials.append(_material("Ground", (0.5, 0.5, 0.45)))
    scene.collection.objects.link(ground)
    for name, cls, cid, colour, (x, y) in OBJECTS:
        ob = bpy.data.objects.new(name, _mesh(name))
        ob.data.materials.append(_material(name, colour))
        ob.location = (x, y, 0.5)
        ob["blendset_class"] = cls
        ob["blendset_class_id"] = cid
        scene.collection.objects.link(ob)
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    cam.location = (6.0, -6.0, 4.5)
    cam.rotation_euler = (1.1, 0.0, 0.785)
    scene.collection.objects.link(cam)
    scene.camera = cam
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (0.6, 0.2, 0.5)
    scene.collection.objects.link(sun)
    if scene.world is None:
        scene.world = bpy.data.worlds.new("World")


def default_config() -> dict[str, Any]:
    """The scene's default config as a plain dict (also in default_config.json next to this file)."""
    with open(os.path.join(HERE, "default_config.json"), encoding="utf-8") as f:
        return json.load(f)
