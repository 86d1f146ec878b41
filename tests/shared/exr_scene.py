"""Render one 16x12 frame with Depth and object-index passes and save it as multilayer EXRs with several codecs
and bit depths, plus each as a plain (single-layer) EXR, plus Blender's own reading of the plain files
(RGBA, bottom row first) as .npy. Blender cannot hand back the pixels of a multilayer file it loads, so its
reading of the plain file is the reference for the Combined pass.

Run by test_exr.py through the bpy module or a Blender binary:
``python exr_scene.py -- OUT_DIR`` or ``blender -b --factory-startup -P exr_scene.py -- OUT_DIR``.
Writes ``OUT_DIR/<CODEC>_<DEPTH>.exr``, ``...single.exr`` and ``...bpy.npy``.
"""

import os
import sys

import bpy
import numpy as np

VARIANTS = [("NONE", "32"), ("NONE", "16"), ("ZIP", "16"), ("ZIPS", "32"), ("RLE", "16"), ("PIZ", "16")]

out_dir = (sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:])[0]
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.samples = 1
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 16, 12, 100
world = bpy.data.worlds.new("w")
world.color = (0.2, 0.4, 0.8)
scene.world = world
cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))  # 50 mm lens, 36 mm sensor (defaults)
scene.collection.objects.link(cam)
scene.camera = cam
cam.location = (0.0, 0.0, 5.0)
mesh = bpy.data.meshes.new("plane")
mesh.from_pydata([(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0)], [], [(0, 1, 2, 3)])
plane = bpy.data.objects.new("plane", mesh)
scene.collection.objects.link(plane)
plane.pass_index = 7
layer = scene.view_layers[0]
layer.use_pass_z = True
layer.use_pass_object_index = True
bpy.ops.render.render()
result = bpy.data.images["Render Result"]
settings = scene.render.image_settings


def set_format(multilayer: bool) -> None:
    if hasattr(settings, "media_type"):  # Blender 5: multilayer EXR is a media type
        settings.media_type = "MULTI_LAYER_IMAGE" if multilayer else "IMAGE"
    settings.file_format = "OPEN_EXR_MULTILAYER" if multilayer else "OPEN_EXR"


for codec, depth in VARIANTS:
    stem = os.path.join(out_dir, f"{codec}_{depth}")
    for multilayer, path in ((True, stem + ".exr"), (False, stem + ".single.exr")):
        set_format(multilayer)
        settings.exr_codec = codec
        settings.color_depth = depth
        result.save_render(path, scene=scene)
    image = bpy.data.images.load(stem + ".single.exr")
    pixels = np.empty(image.size[0] * image.size[1] * 4, np.float32)
    image.pixels.foreach_get(pixels)
    np.save(stem + ".bpy.npy", pixels.reshape(image.size[1], image.size[0], 4))
print("EXR_SCENE_DONE", bpy.app.version_string)
