"""Editing list settings from the panel: fill an object-name list from the selection, add or remove entries of
the classes and mixture lists and of tuple lists (keypoint coordinates, skeleton and flip pairs), fill a class's
keypoint names from the active object."""

from __future__ import annotations

from typing import Any

import bpy

from .. import props_config


class BLENDSET_OT_names_from_selection(bpy.types.Operator):
    """Fill this list of object names with the selected objects"""

    bl_idname = "blendset.names_from_selection"
    bl_label = "Use Selected Objects"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    data_path: bpy.props.StringProperty(description="Setting to fill, from the scene (blendset.config.pose.surfaces)")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if context.selected_objects:
            return True
        cls.poll_message_set("Select the objects first")
        return False

    def execute(self, context: bpy.types.Context) -> set[str]:
        owner_path, _, prop = self.data_path.rpartition(".")
        try:
            owner = context.scene.path_resolve(owner_path)
        except ValueError:
            self.report({"ERROR"}, f"No setting {self.data_path!r}")
            return {"CANCELLED"}
        names = sorted(ob.name for ob in context.selected_objects)
        bad = [n for n in names if props_config.NAME_SEPARATOR in n]
        if bad or not owner_path.startswith("blendset.config") or not hasattr(owner, prop):
            self.report({"ERROR"}, f"Cannot use object name {bad[0]!r} (it has a comma)" if bad else "Not a name list")
            return {"CANCELLED"}
        setattr(owner, prop, props_config.NAME_SEPARATOR.join(names))
        return {"FINISHED"}


class BLENDSET_OT_collection_edit(bpy.types.Operator):
    """Add or remove an entry of a list setting (classes, mixture components)"""

    bl_idname = "blendset.collection_edit"
    bl_label = "Edit List"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    field: bpy.props.EnumProperty(items=[("classes", "Classes", ""), ("mixture", "Mixture", "")])
    action: bpy.props.EnumProperty(items=[("ADD", "Add", ""), ("REMOVE", "Remove", "")])

    def execute(self, context: bpy.types.Context) -> set[str]:
        pg = context.scene.blendset.config
        coll, index_name = getattr(pg, self.field), f"{self.field}_index"
        if self.action == "ADD":
            item = coll.add()
            if self.field == "classes":
                used = {c.id for c in coll}
                item.name, item.id = f"class_{len(coll) - 1}", next(i for i in range(len(coll) + 1) if i not in used)
            else:
                item.name, item.weight = f"component_{len(coll) - 1}", 1.0
            setattr(pg, index_name, len(coll) - 1)
        else:
            i = getattr(pg, index_name)
            if not 0 <= i < len(coll):
                return {"CANCELLED"}
            coll.remove(i)
            setattr(pg, index_name, max(0, i - 1))
        return {"FINISHED"}


def _config_owner(op: bpy.types.Operator, context: bpy.types.Context, data_path: str) -> Any:
    """The setting at ``data_path`` (from the scene, inside ``blendset.config``), or None after reporting."""
    try:
        owner = context.scene.path_resolve(data_path) if data_path.startswith("blendset.config") else None
    except ValueError:
        owner = None
    if owner is None:
        op.report({"ERROR"}, f"No setting {data_path!r}")
    return owner


class BLENDSET_OT_row_edit(bpy.types.Operator):
    """Add an entry to this list, or remove this entry"""

    bl_idname = "blendset.row_edit"
    bl_label = "Edit Entries"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    data_path: bpy.props.StringProperty(description="List setting, from the scene")
    action: bpy.props.EnumProperty(items=[("ADD", "Add", ""), ("REMOVE", "Remove", "")])
    index: bpy.props.IntProperty(min=0)

    def execute(self, context: bpy.types.Context) -> set[str]:
        rows = _config_owner(self, context, self.data_path)
        if rows is None or not hasattr(rows, "add"):
            return {"CANCELLED"}
        if self.action == "ADD":
            rows.add()
        elif self.index < len(rows):
            rows.remove(self.index)
        else:
            return {"CANCELLED"}
        return {"FINISHED"}


class BLENDSET_OT_keypoint_names_from_active(bpy.types.Operator):
    """Fill the keypoint names from the active object: its vertex groups in order (source vertex_groups) or the
    empties among its descendants, sorted by name (source empties)"""

    bl_idname = "blendset.keypoint_names_from_active"
    bl_label = "Names from Active Object"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    data_path: bpy.props.StringProperty(description="A class's keypoints settings, from the scene")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if context.active_object is not None:
            return True
        cls.poll_message_set("Make the object with the keypoints active first")
        return False

    def execute(self, context: bpy.types.Context) -> set[str]:
        owner = _config_owner(self, context, self.data_path)
        if owner is None or not hasattr(owner, "source"):
            return {"CANCELLED"}
        ob = context.active_object
        if owner.source == "vertex_groups":
            names = [g.name for g in ob.vertex_groups]
        elif owner.source == "empties":
            names = sorted(o.name for o in ob.children_recursive if o.type == "EMPTY")
        else:
            self.report({"ERROR"}, "Source 'local' takes names and coordinates typed in")
            return {"CANCELLED"}
        bad = [n for n in names if props_config.NAME_SEPARATOR in n]
        if not names or bad:
            why = f"name {bad[0]!r} has a comma" if bad else f"{ob.name!r} has no {owner.source.replace('_', ' ')}"
            self.report({"ERROR"}, f"Cannot fill the keypoint names: {why}")
            return {"CANCELLED"}
        owner.names = props_config.NAME_SEPARATOR.join(names)
        return {"FINISHED"}


classes = (
    BLENDSET_OT_names_from_selection,
    BLENDSET_OT_collection_edit,
    BLENDSET_OT_row_edit,
    BLENDSET_OT_keypoint_names_from_active,
)
