"""The variability scene (after the variability study): one "head" whose shape parameters are the regression targets.

The variability study (``docs/references.md``) renders a parametric head and regresses its shape parameters, drawn
uniformly in [-1, 1], while the training scenarios differ only in nuisance variability (angle, background, light,
lens, position). Here the head
is Blender's monkey mesh and its shape is two parameters, both drawn uniformly in [-1, 1] per frame and recorded
by the engine as ``scene.shape_width`` and ``scene.shape_height``:

- ``shape_width``: the head's scale across its face (0.7 .. 1.3);
- ``shape_height``: its vertical scale (0.7 .. 1.3).

The head sits at the origin facing +X, so the orbit camera at azimuth 0 (``shared/sampling.py``: counter-clockwise
from +X) sees it from the front and the ``angle`` preset's +-90 degrees sweep from profile to profile::

    blendset render --config cfg.json --out DIR --scene-script scenes/variability/build.py --count N --seed S

Only bpy, bmesh and the standard library: runs in the bpy module and in the Blender binary.
"""

from __future__ import annotations

import math
from typing import Any

import bmesh
import bpy

HEAD_NAME = "blendset_head"
CAMERA_NAME = "blendset_head_camera"
SCALE_SPAN = 0.3  # a shape parameter of +-1 scales the head by 1 +- SCALE_SPAN


def build(**options: Any) -> None:
    """Create the head, its material and a camera in the current scene (no options)."""
    if options:
        raise ValueError(f"the variability scene takes no options, got {sorted(options)}")
    scene = bpy.context.scene
    mesh = bpy.data.meshes.new(HEAD_NAME)
    bm = bmesh.new()
    bmesh.ops.create_monkey(bm)
    bm.to_mesh(mesh)
    bm.free()
    for poly in mesh.polygons:
        poly.use_smooth = True
    head = bpy.data.objects.new(HEAD_NAME, mesh)
    head["blendset_class"] = "head"
    head["blendset_class_id"] = 0
    head.rotation_euler = (0.0, 0.0, math.pi / 2)  # the monkey faces -Y; turn it to face +X
    mat = bpy.data.materials.new(HEAD_NAME + "_skin")
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = (0.8, 0.55, 0.4, 1.0)
        bsdf.inputs["Roughness"].default_value = 0.5
    mesh.materials.append(mat)
    scene.collection.objects.link(head)
    cam = bpy.data.cameras.new(CAMERA_NAME)
    cam_ob = bpy.data.objects.new(CAMERA_NAME, cam)
    cam_ob.location = (6.0, 0.0, 2.0)
    scene.collection.objects.link(cam_ob)
    scene.camera = cam_ob


def randomize(scene: Any, rng: Any, frame: int, classes: tuple[str, ...] = ()) -> dict[str, float]:
    """Draw the two shape parameters uniformly in [-1, 1] and reshape the head; the engine records them."""
    head = bpy.data.objects.get(HEAD_NAME)
    if head is None:
        raise RuntimeError(f"object {HEAD_NAME!r} missing: was build() run in this scene?")
    width = float(rng.uniform(-1.0, 1.0))
    height = float(rng.uniform(-1.0, 1.0))
    # Object axes before the z turn: x across the face, y front-back, z up.
    head.scale = (1.0 + SCALE_SPAN * width, 1.0, 1.0 + SCALE_SPAN * height)
    _cheap_world_lighting(scene)
    return {"shape_width": width, "shape_height": height}


def _cheap_world_lighting(scene: Any) -> None:
    """No importance map for the world: with an image or HDRI background Cycles would rebuild it every frame
    (seconds at these tiny sizes), and a backdrop that changes per frame gains nothing from it."""
    world = scene.world
    settings = getattr(world, "cycles", None) if world is not None else None
    if settings is not None and hasattr(settings, "sampling_method"):
        settings.sampling_method = "NONE"
