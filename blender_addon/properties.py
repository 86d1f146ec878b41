"""Where the add-on's state lives: labels on objects and collections, settings on the scene, run progress on the
window manager (transient: it never lands in the .blend).

A label is edited through ``Object.blendset`` / ``Collection.blendset`` and mirrored into the custom properties
``blendset_class`` and ``blendset_class_id`` that the engine reads (the same keys a script or another tool can
set), so a .blend labelled here renders headless with no add-on installed.
"""

from __future__ import annotations

import bpy

from . import props_config

LABEL_KEY = "blendset_class"
LABEL_ID_KEY = "blendset_class_id"


def write_label(idblock: bpy.types.ID, name: str, class_id: int, color: tuple[float, float, float]) -> None:
    """Label an object or collection (both the panel's group and the engine's custom properties)."""
    idblock.blendset.class_name = name
    idblock.blendset.class_id = class_id
    idblock.blendset.color = color
    _mirror(idblock)


def clear_label(idblock: bpy.types.ID) -> None:
    idblock.blendset.class_name = ""
    _mirror(idblock)


def label_of(idblock: bpy.types.ID) -> tuple[str, int] | None:
    """The (class name, id) the engine will read from this object or collection, or None."""
    name = idblock.get(LABEL_KEY)
    if not isinstance(name, str) or not name:
        return None
    return name, int(idblock.get(LABEL_ID_KEY, 0))


def _mirror(idblock: bpy.types.ID) -> None:
    label = idblock.blendset
    if label.class_name:
        idblock[LABEL_KEY] = label.class_name
        idblock[LABEL_ID_KEY] = label.class_id
    else:
        for key in (LABEL_KEY, LABEL_ID_KEY):
            if key in idblock:
                del idblock[key]


def _on_label_edit(self: bpy.types.PropertyGroup, _context: bpy.types.Context) -> None:
    _mirror(self.id_data)


class BLENDSET_PG_label(bpy.types.PropertyGroup):
    class_name: bpy.props.StringProperty(
        name="Class",
        description="Class name written to the COCO categories (empty: not labelled)",
        update=_on_label_edit,
    )
    class_id: bpy.props.IntProperty(
        name="Id", description="Class id in the COCO categories (0 is a valid id)", min=0, update=_on_label_edit
    )
    color: bpy.props.FloatVectorProperty(
        name="Colour",
        description="Colour of this class in the preview",
        subtype="COLOR",
        size=3,
        min=0.0,
        max=1.0,
        default=(1.0, 0.0, 0.0),
    )


class BLENDSET_PG_progress(bpy.types.PropertyGroup):
    """State of the running Generate job (on the window manager, so never saved)."""

    running: bpy.props.BoolProperty(name="Running", default=False)
    done: bpy.props.IntProperty(name="Done", default=0)
    total: bpy.props.IntProperty(name="Total", default=0)
    eta_s: bpy.props.FloatProperty(name="ETA", default=0.0, subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE")
    message: bpy.props.StringProperty(name="Status", default="")

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class BLENDSET_PG_scene(bpy.types.PropertyGroup):
    """Everything Blendset keeps on a scene: the dataset config (generated from the schema; annotation added in
    ``register``) and the run settings that are not part of a config."""

    output_dir: bpy.props.StringProperty(
        name="Output folder",
        description="Dataset folder Generate writes into; rerun to resume an interrupted run",
        subtype="DIR_PATH",
        default="//blendset_dataset/",
    )
    keep_seed: bpy.props.BoolProperty(
        name="Keep seed", description="Preview the same sample again instead of drawing a new one", default=False
    )
    preview_seed: bpy.props.IntProperty(
        name="Preview seed", description="Seed of the last preview sample", default=0, min=0
    )
    label_name: bpy.props.StringProperty(
        name="Class", description="Class name to give the selected objects", default="object"
    )
    label_id: bpy.props.IntProperty(name="Id", description="Class id to give the selected objects", min=0)
    label_color: bpy.props.FloatVectorProperty(
        name="Colour",
        description="Preview colour of the class",
        subtype="COLOR",
        size=3,
        min=0.0,
        max=1.0,
        default=(0.9, 0.3, 0.1),
    )
    object_index: bpy.props.IntProperty(name="Active labelled object", default=0)


_static = (BLENDSET_PG_label, BLENDSET_PG_progress)


def register() -> None:
    for cls in _static:
        bpy.utils.register_class(cls)
    generated = props_config.generate()
    for cls in generated:  # children before parents: a PointerProperty needs its type registered
        bpy.utils.register_class(cls)
    BLENDSET_PG_scene.__annotations__["config"] = bpy.props.PointerProperty(type=props_config.root_class())
    bpy.utils.register_class(BLENDSET_PG_scene)
    bpy.types.Scene.blendset = bpy.props.PointerProperty(type=BLENDSET_PG_scene)
    bpy.types.Object.blendset = bpy.props.PointerProperty(type=BLENDSET_PG_label)
    bpy.types.Collection.blendset = bpy.props.PointerProperty(type=BLENDSET_PG_label)
    bpy.types.WindowManager.blendset_progress = bpy.props.PointerProperty(type=BLENDSET_PG_progress)


def unregister() -> None:
    del bpy.types.WindowManager.blendset_progress
    del bpy.types.Collection.blendset
    del bpy.types.Object.blendset
    del bpy.types.Scene.blendset
    bpy.utils.unregister_class(BLENDSET_PG_scene)
    for cls in reversed(props_config.generated_classes()):
        bpy.utils.unregister_class(cls)
    props_config.clear()
    for cls in reversed(_static):
        bpy.utils.unregister_class(cls)
