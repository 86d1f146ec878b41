"""The "Blendset" tab of the 3D Viewport's sidebar.

Panels: Labels (mark objects, the list of labelled objects, the config's classes), Dataset (name, seed, count,
presets, import/export), Settings with one sub-panel per config section (generated from the schema, like the
properties they draw), and Preview & Generate (validation with fix buttons, progress). Every field is drawn by
:func:`draw_fields` according to its kind from ``props_config.fields_of``, so a new schema field shows up here
with its tooltip and unit and no hand-written UI.
"""

from __future__ import annotations

from typing import Any

import bpy

from . import properties, props_config
from .operators import checks
from .shared import config as cfg

CATEGORY = "Blendset"
LABEL_FACTOR = 0.5  # share of the sidebar width taken by field labels

SECTION_TITLES = {
    "render": "Render",
    "output": "Output Files",
    "camera": "Camera",
    "pose": "Object Pose",
    "lights": "Lights",
    "materials": "Materials",
    "background": "Background",
    "distractors": "Distractors",
    "weather": "Weather",
    "post": "Post-processing",
    "filters": "Annotation Filters",
    "keypoints": "Keypoints",
}
DATASET_FIELDS = ("name", "seed", "count")
OBJECT_NAME_FIELDS = ("surfaces", "objects")  # name lists of objects: a button fills them from the selection
KEYPOINT_NAMES = "classes.keypoints.names"  # a button fills it from the active object's groups or empties


def _split(layout: bpy.types.UILayout, text: str) -> bpy.types.UILayout:
    """A labelled row: the label on the left, the returned layout on the right."""
    split = layout.split(factor=LABEL_FACTOR, align=True)
    left = split.row()
    left.alignment = "RIGHT"
    left.label(text=text)
    return split.row(align=True)


def draw_field(layout: bpy.types.UILayout, pg: Any, field: props_config.Field) -> None:
    k, name, text = field.kind, field.name, props_config.label(field)
    if k == "bool":  # checkbox text needs more room than the value column
        split = layout.split(factor=0.2)
        split.label(text="")
        split.prop(pg, name, text=text)
    elif k in ("int", "float", "str", "optional_str", "names", "enum"):
        right = _split(layout, text)
        right.prop(pg, name, text="")
        if k == "names" and name in OBJECT_NAME_FIELDS:
            op = right.operator("blendset.names_from_selection", text="", icon="RESTRICT_SELECT_OFF")
            op.data_path = f"{pg.path_from_id()}.{name}"
        elif k == "names" and field.path == KEYPOINT_NAMES:
            op = right.operator("blendset.keypoint_names_from_active", text="", icon="EYEDROPPER")
            op.data_path = pg.path_from_id()
    elif k == "enum_set":
        right = _split(layout, text)
        grid = right.grid_flow(
            row_major=True, columns=2 if len(field.choices) > 3 else len(field.choices), even_columns=True, align=True
        )
        grid.prop(pg, name)
    elif k == "vector":
        _split(layout, text).column(align=True).prop(pg, name, text="")
    elif k == "rows":
        _draw_rows(layout, pg, field, text)
    elif k == "literal_or_point":
        right = _split(layout, text).column(align=True)
        right.prop(pg, name, text="")
        if getattr(pg, name) == props_config.POINT_ITEM:
            right.prop(pg, f"{name}_point", text="")
    elif k in ("range", "int_range"):
        sub = getattr(pg, name)
        split = layout.split(factor=LABEL_FACTOR, align=True)
        left = split.row(align=True)
        left.alignment = "RIGHT"
        left.label(text=text)
        if k == "range":  # the distribution as a small icon menu next to the label: the values get the room
            left.prop(sub, "distribution", text="", icon_only=True, emboss=False)
        right = split.row(align=True)
        right.prop(sub, "min", text="")
        right.prop(sub, "max", text="")
    elif k == "group":
        box = layout.box()
        box.label(text=text)
        draw_fields(box, getattr(pg, name), field.elem, field.path + ".")
    elif k == "optional_group":
        sub = getattr(pg, name)
        # open at first sight when in use (a class's keypoints, a mixture component's own section)
        header, body = layout.panel(f"blendset_{field.path.replace('.', '_')}", default_closed=not sub.enabled)
        header.prop(sub, "enabled", text=SECTION_TITLES.get(name, text))
        if body is not None:
            body.enabled = sub.enabled
            draw_fields(body, sub, field.elem, field.path + ".")
    elif k == "collection":  # only the root's classes/mixture, drawn by their own panels
        layout.label(text=f"{text}: {len(getattr(pg, name))}")


def _draw_rows(layout: bpy.types.UILayout, pg: Any, field: props_config.Field, text: str) -> None:
    """A list of tuples (keypoint coordinates, name pairs): one line per entry with a remove button, and an add
    button after the label."""
    rows = getattr(pg, field.name)
    path = f"{pg.path_from_id()}.{field.name}"
    right = _split(layout, f"{text} ({len(rows)})")
    op = right.operator("blendset.row_edit", text="Add", icon="ADD")
    op.data_path, op.action = path, "ADD"
    col = layout.column(align=True)
    for i, item in enumerate(rows):
        line = col.row(align=True)
        if field.elem is float:
            line.prop(item, "value", text="")
        else:
            for j in range(field.size):
                line.prop(item, f"v{j}", text="")
        op = line.operator("blendset.row_edit", text="", icon="X")
        op.data_path, op.action, op.index = path, "REMOVE", i


def draw_fields(layout: bpy.types.UILayout, pg: Any, cls: type, prefix: str, skip: tuple[str, ...] = ()) -> None:
    col = layout.column(align=False)
    for field in props_config.fields_of(cls, prefix):
        if field.name not in skip:
            draw_field(col, pg, field)


def _settings(context: bpy.types.Context) -> Any:
    return context.scene.blendset


# ---------------------------------------------------------------------------------------------------------------
# Lists


class BLENDSET_UL_labels(bpy.types.UIList):
    """Every labelled object in the file (labels as the engine reads them)."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):  # noqa: ANN001
        lab = properties.label_of(item)
        row = layout.row(align=True)
        row.label(text=item.name, icon="OBJECT_DATA")
        row.label(text=f"{lab[0]} ({lab[1]})" if lab else "")
        row.operator("blendset.clear_label", text="", icon="X", emboss=False).object_name = item.name

    def filter_items(self, context, data, propname):  # noqa: ANN001
        objects = getattr(data, propname)
        flags = [self.bitflag_filter_item if properties.label_of(ob) else 0 for ob in objects]
        return flags, []


class BLENDSET_UL_classes(bpy.types.UIList):
    """The config's classes: name, id, colour."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):  # noqa: ANN001
        row = layout.row(align=True)
        row.prop(item, "color", text="")
        row.prop(item, "name", text="", emboss=False)
        row.prop(item, "id", text="Id")


class BLENDSET_UL_mixture(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):  # noqa: ANN001
        row = layout.row(align=True)
        row.prop(item, "name", text="", emboss=False)
        row.prop(item, "weight", text="Weight")


# ---------------------------------------------------------------------------------------------------------------
# Panels


class _Tab:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY


class VIEW3D_PT_blendset_labels(_Tab, bpy.types.Panel):
    bl_label = "Labels"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        s = _settings(context)
        col = layout.column(align=True)
        col.label(text="Class for the selection (name, id, colour)")
        row = col.row(align=True)
        row.prop(s, "label_name", text="")
        row.prop(s, "label_id", text="Id")
        row.prop(s, "label_color", text="")
        row = col.row(align=True)
        row.operator("blendset.label_selected", text="Mark Selected", icon="BOOKMARKS")
        row.operator("blendset.clear_label", text="Clear", icon="X")
        layout.label(text="Labelled objects")
        layout.template_list("BLENDSET_UL_labels", "", bpy.data, "objects", s, "object_index", rows=3)
        layout.operator("blendset.select_class", text="Select Class of Active Row", icon="RESTRICT_SELECT_OFF")
        draw_field(layout, s.config, props_config.field_kind("label_properties", "label_properties", bool))


def _draw_editable_list(layout: bpy.types.UILayout, pg: bpy.types.PropertyGroup, field: str, rows: int) -> None:
    """A config list (``classes``, ``mixture``) with add/remove buttons beside it."""
    row = layout.row()
    row.template_list(f"BLENDSET_UL_{field}", "", pg, field, pg, f"{field}_index", rows=rows)
    col = row.column(align=True)
    for action, icon in (("ADD", "ADD"), ("REMOVE", "REMOVE")):
        op = col.operator("blendset.collection_edit", text="", icon=icon)
        op.field, op.action = field, action


class VIEW3D_PT_blendset_classes(_Tab, bpy.types.Panel):
    bl_label = "Classes"
    bl_parent_id = "VIEW3D_PT_blendset_labels"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        pg = _settings(context).config
        _draw_editable_list(layout, pg, "classes", rows=3)
        if 0 <= pg.classes_index < len(pg.classes):
            draw_fields(layout, pg.classes[pg.classes_index], cfg.ClassSpec, "classes.", skip=("name", "id", "color"))


class VIEW3D_PT_blendset_dataset(_Tab, bpy.types.Panel):
    bl_label = "Dataset"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        pg = _settings(context).config
        for field in props_config.fields_of(cfg.DatasetConfig):
            if field.name in DATASET_FIELDS:
                draw_field(layout, pg, field)
        right = _split(layout, "Preset")
        right.operator_menu_enum("blendset.apply_preset", "preset", text=pg.preset or "Apply a preset", icon="PRESET")
        row = layout.row(align=True)
        row.operator("blendset.import_config", text="Import JSON", icon="IMPORT")
        row.operator("blendset.export_config", text="Export JSON", icon="EXPORT")


class VIEW3D_PT_blendset_settings(_Tab, bpy.types.Panel):
    bl_label = "Settings"

    def draw(self, context: bpy.types.Context) -> None:
        self.layout.label(text="Unticked: scene left as is", icon="INFO")


class VIEW3D_PT_blendset_mixture(_Tab, bpy.types.Panel):
    bl_label = "Mixture"
    bl_parent_id = "VIEW3D_PT_blendset_settings"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        pg = _settings(context).config
        _draw_editable_list(layout, pg, "mixture", rows=2)
        if not pg.mixture:
            layout.label(text="Optional: weighted sub-configs", icon="INFO")
        if 0 <= pg.mixture_index < len(pg.mixture):
            draw_fields(layout, pg.mixture[pg.mixture_index], cfg.MixtureComponent, "mixture.", skip=("name",))


class VIEW3D_PT_blendset_run(_Tab, bpy.types.Panel):
    bl_label = "Preview & Generate"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        s = _settings(context)
        progress = context.window_manager.blendset_progress
        problems = [] if progress.running else checks.find_problems(context.scene)
        if problems:
            box = layout.box()
            for p in problems:
                row = box.row()
                row.alert = True
                row.label(text=p.message, icon="ERROR")
                if p.fix == "LABEL":
                    box.operator("blendset.label_selected", text=p.fix_label, icon="BOOKMARKS")
                elif p.fix:
                    box.operator("blendset.fix", text=p.fix_label, icon="TOOL_SETTINGS").kind = p.fix
        _split(layout, "Output folder").prop(s, "output_dir", text="")
        row = layout.row(align=True)
        row.operator("blendset.preview", icon="RESTRICT_RENDER_OFF")
        row.prop(s, "keep_seed", toggle=True, icon="LOCKED" if s.keep_seed else "UNLOCKED")
        row = layout.row()
        row.scale_y = 1.4
        row.operator("blendset.generate", icon="RENDER_ANIMATION")
        if progress.running or progress.message:
            if not progress.running:
                text = progress.message
            elif progress.done:
                text = f"{progress.done}/{progress.total} frames, about {progress.eta_s:.0f} s left"
            else:
                text = f"0/{progress.total} frames, estimating time"
            layout.progress(factor=progress.fraction, type="BAR", text=text)


def _section_panel(field: props_config.Field) -> type:
    """A sub-panel of Settings for one config section; an optional section has its switch in the header."""

    def draw_header(self: Any, context: bpy.types.Context) -> None:
        self.layout.prop(getattr(_settings(context).config, field.name), "enabled", text="")

    def draw(self: Any, context: bpy.types.Context) -> None:
        sub = getattr(_settings(context).config, field.name)
        col = self.layout.column()
        if field.kind == "optional_group":
            col.enabled = sub.enabled
        draw_fields(col, sub, field.elem, field.name + ".")

    attrs = {
        "bl_label": SECTION_TITLES.get(field.name, field.name.capitalize()),
        "bl_parent_id": "VIEW3D_PT_blendset_settings",
        "bl_options": {"DEFAULT_CLOSED"},
        "bl_description": props_config.config_docs.tooltip(field.path),
        "draw": draw,
    }
    if field.kind == "optional_group":
        attrs["draw_header"] = draw_header
    return type(f"VIEW3D_PT_blendset_{field.name}", (_Tab, bpy.types.Panel), attrs)


def section_fields() -> list[props_config.Field]:
    return [f for f in props_config.fields_of(cfg.DatasetConfig) if f.kind in ("group", "optional_group")]


_head = (
    BLENDSET_UL_labels,
    BLENDSET_UL_classes,
    BLENDSET_UL_mixture,
    VIEW3D_PT_blendset_labels,
    VIEW3D_PT_blendset_classes,
    VIEW3D_PT_blendset_dataset,
    VIEW3D_PT_blendset_settings,
)
_tail = (VIEW3D_PT_blendset_mixture, VIEW3D_PT_blendset_run)
_sections: list[type] = []


def register() -> None:
    _sections[:] = [_section_panel(f) for f in section_fields()]
    for cls in (*_head, *_sections, *_tail):  # panel order in the tab is registration order
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed((*_head, *_sections, *_tail)):
        bpy.utils.unregister_class(cls)
    _sections.clear()
