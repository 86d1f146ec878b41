"""Launching Blender renders: the local launcher, the Ray cluster runner and object-store storage."""
