"""Blendset: label objects, set up randomizers, preview and generate synthetic datasets from Blender's UI.

Installed as a Blender 4.2+ extension, ``blender_manifest.toml`` describes it and ``bl_info`` is ignored; the
legacy add-on route (a zip of this folder) still reads ``bl_info``. Importing this package does no work and
imports no ``bpy``: everything happens in :func:`register`, and :func:`unregister` undoes it in reverse.
"""

bl_info = {
    "name": "Blendset",
    "author": "Blendset contributors",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "3D Viewport > Sidebar > Blendset",
    "description": "Randomized, labelled synthetic datasets (RGB, masks, depth, COCO)",
    "category": "Render",
}

_MODULES = ("properties", "operators", "ui")


def _modules() -> list:
    import importlib

    return [importlib.import_module(f"{__package__}.{name}") for name in _MODULES]


def register() -> None:
    for module in _modules():
        module.register()


def unregister() -> None:
    for module in reversed(_modules()):
        module.unregister()
