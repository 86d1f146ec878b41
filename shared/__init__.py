"""Code both sides use: the config schema, COCO I/O, annotation math and samplers.

Standard library and numpy only: Blender's bundled Python must import this with no extra packages.
"""
