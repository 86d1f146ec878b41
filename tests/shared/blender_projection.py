"""Blender's own projection of fixed points through cameras with several sensor fits and shifts, as JSON.

``python blender_projection.py OUT.json`` (bpy module) or ``blender -b -P blender_projection.py -- OUT.json``.
Each case records the camera's world matrix and, per point, ``world_to_camera_view`` (x, y in 0..1 from the
bottom-left, z = depth along the view axis), for test_raster.py to compare with shared.raster.
"""

import json
import sys

import bpy
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Matrix, Vector

CASES = [
    ("AUTO", (320, 240), (0.0, 0.0)),
    ("AUTO", (200, 300), (0.1, 0.05)),
    ("HORIZONTAL", (300, 200), (-0.2, 0.1)),
    ("VERTICAL", (320, 240), (0.05, -0.1)),
]
POINTS = [(x * 0.37 - 1.0, y * 0.41 - 1.0, z * 0.29 - 0.5) for x in range(5) for y in range(5) for z in range(4)]

args = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
spec = json.loads(args[1]) if len(args) > 1 else None
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
out = []
for fit, (w, h), (sx, sy) in CASES:
    data = bpy.data.cameras.new("c")
    data.lens, data.sensor_width, data.sensor_height = 42.0, 36.0, 20.0
    data.sensor_fit, data.shift_x, data.shift_y = fit, sx, sy
    cam = bpy.data.objects.new("c", data)
    scene.collection.objects.link(cam)
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = w, h, 100
    cam.matrix_world = Matrix(spec["world_from_camera"])
    bpy.context.view_layer.update()
    views = [list(world_to_camera_view(scene, cam, Vector(p))) for p in POINTS]
    out.append(
        {
            "fit": fit,
            "size": [w, h],
            "shift": [sx, sy],
            "matrix": [list(r) for r in cam.matrix_world],
            "points": POINTS,
            "views": views,
        }
    )
    bpy.data.objects.remove(cam)
with open(args[0], "w") as f:
    json.dump(out, f)
print("PROJECTION_DONE")
