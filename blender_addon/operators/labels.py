"""Labelling: mark the selected objects (or the active collection) as a class, clear labels, select a class.

A label is the custom properties ``blendset_class`` / ``blendset_class_id`` (``properties.write_label``), so a
labelled ``.blend`` renders headless without the add-on; the config's class list follows the labels.
"""

from __future__ import annotations

from typing import Any

import bpy

from .. import properties, props_config


def _upsert_class(config_pg: Any, name: str, class_id: int, color: Any) -> str | None:
    """Add or update the class in the config's class list; returns an error message on an id clash."""
    for spec in config_pg.classes:
        if spec.name != name and spec.id == class_id:
            return f"class id {class_id} is already used by class {spec.name!r}"
    for spec in config_pg.classes:
        if spec.name == name:
            spec.id, spec.color = class_id, color
            return None
    spec = config_pg.classes.add()
    spec.name, spec.id, spec.color = name, class_id, color
    return None


def _class_in_use(name: str) -> bool:
    labelled = [properties.label_of(ob) for ob in bpy.data.objects] + [
        properties.label_of(c) for c in bpy.data.collections
    ]
    return any(lab and lab[0] == name for lab in labelled)


class BLENDSET_OT_label_selected(bpy.types.Operator):
    """Mark the selected objects (or the active collection) as one class"""

    bl_idname = "blendset.label_selected"
    bl_label = "Mark as Class"
    bl_options = {"REGISTER", "UNDO"}

    class_name: bpy.props.StringProperty(name="Class", description="Class name", default="object")
    class_id: bpy.props.IntProperty(name="Id", description="Class id (0 is a valid id)", min=0)
    color: bpy.props.FloatVectorProperty(
        name="Colour", subtype="COLOR", size=3, min=0.0, max=1.0, default=(0.9, 0.3, 0.1)
    )
    target: bpy.props.EnumProperty(
        name="Label",
        items=[
            ("OBJECTS", "Selected objects", "Label each selected object"),
            ("COLLECTION", "Active collection", "Label the active collection (all its objects)"),
        ],
        default="OBJECTS",
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if context.selected_objects or context.collection not in (None, context.scene.collection):
            return True
        cls.poll_message_set("Select objects (or make a collection active) first")
        return False

    def invoke(self, context: bpy.types.Context, event: Any) -> set[str]:
        s = context.scene.blendset
        self.class_name, self.class_id, self.color = s.label_name, s.label_id, s.label_color
        return self.execute(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        name = self.class_name.strip()
        if not name:
            self.report({"ERROR"}, "A class needs a name")
            return {"CANCELLED"}
        if self.target == "COLLECTION":
            coll = context.collection
            if coll is None or coll == context.scene.collection:
                self.report({"ERROR"}, "No active collection (the scene collection cannot be labelled)")
                return {"CANCELLED"}
            blocks: list[Any] = [coll]
        else:
            blocks = list(context.selected_objects)
        if not blocks:
            self.report({"ERROR"}, "Nothing selected")
            return {"CANCELLED"}
        error = _upsert_class(context.scene.blendset.config, name, self.class_id, self.color)
        if error:
            self.report({"ERROR"}, error)
            return {"CANCELLED"}
        for block in blocks:
            properties.write_label(block, name, self.class_id, tuple(self.color))
        self.report({"INFO"}, f"Labelled {len(blocks)} as {name!r} (id {self.class_id})")
        return {"FINISHED"}


class BLENDSET_OT_clear_label(bpy.types.Operator):
    """Remove the class label from the selected objects, or from the named object or collection"""

    bl_idname = "blendset.clear_label"
    bl_label = "Clear Label"
    bl_options = {"REGISTER", "UNDO"}

    object_name: bpy.props.StringProperty(
        name="Object", description="Object to clear (empty: the selection)", options={"SKIP_SAVE"}
    )
    collection_name: bpy.props.StringProperty(
        name="Collection", description="Collection to clear", options={"SKIP_SAVE"}
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        blocks: list[Any] = []
        if self.object_name:
            blocks.append(bpy.data.objects.get(self.object_name))
        if self.collection_name:
            blocks.append(bpy.data.collections.get(self.collection_name))
        if not (self.object_name or self.collection_name):
            blocks = list(context.selected_objects)
        if None in blocks:
            self.report({"ERROR"}, f"No object or collection named {self.object_name or self.collection_name!r}")
            return {"CANCELLED"}
        names = {lab[0] for lab in (properties.label_of(b) for b in blocks) if lab}
        for block in blocks:
            properties.clear_label(block)
        config_pg = context.scene.blendset.config
        for name in names:  # a class nothing carries any more leaves the list, unless the config names members
            for i, spec in enumerate(config_pg.classes):
                if spec.name == name and not spec.objects and not spec.collections and not _class_in_use(name):
                    config_pg.classes.remove(i)
                    break
        self.report({"INFO"}, f"Cleared {len(blocks)} label(s)")
        return {"FINISHED"}


class BLENDSET_OT_select_class(bpy.types.Operator):
    """Select every object of a class (empty: the class of the active row in the list)"""

    bl_idname = "blendset.select_class"
    bl_label = "Select Class"
    bl_options = {"REGISTER", "UNDO"}

    class_name: bpy.props.StringProperty(name="Class", options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        name = self.class_name
        if not name:
            objects = bpy.data.objects
            i = context.scene.blendset.object_index
            lab = properties.label_of(objects[i]) if 0 <= i < len(objects) else None
            if lab is None:
                self.report({"ERROR"}, "Pick a labelled object in the list first")
                return {"CANCELLED"}
            name = lab[0]
        members = set()
        for coll in bpy.data.collections:
            lab = properties.label_of(coll)
            if lab and lab[0] == name:
                members.update(ob.name for ob in coll.all_objects)
        members.update(ob.name for ob in context.scene.objects if (properties.label_of(ob) or ("",))[0] == name)
        for spec in context.scene.blendset.config.classes:
            if spec.name == name:
                members.update(n.strip() for n in spec.objects.split(props_config.NAME_SEPARATOR) if n.strip())
        view_layer = context.view_layer
        for ob in context.scene.objects:
            if ob.visible_get(view_layer=view_layer) or ob.name in members:
                ob.select_set(ob.name in members and ob.name in view_layer.objects)
        chosen = [ob for ob in context.scene.objects if ob.name in members]
        if chosen:
            view_layer.objects.active = chosen[0]
        self.report({"INFO"}, f"Selected {len(chosen)} object(s) of class {name!r}")
        return {"FINISHED"}


classes = (BLENDSET_OT_label_selected, BLENDSET_OT_clear_label, BLENDSET_OT_select_class)
