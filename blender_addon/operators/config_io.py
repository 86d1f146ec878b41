"""The config as a file and as presets: export the panel to a config JSON (the file the headless runner and
``blendset render`` take unchanged), import one back, set the randomizers to a preset."""

from __future__ import annotations

from typing import Any

import bpy
from bpy_extras.io_utils import ExportHelper, ImportHelper

from .. import props_config
from ..shared import config as cfg
from ..shared.errors import BlendsetError
from .common import config_or_report


def _preset_items(_self: Any, _context: Any) -> list[tuple[str, str, str]]:
    study = "(the variability study)"
    text = {
        "none": f"Variability preset 'none' {study}: one angle, grey background, fixed light",
        "angle": f"Variability preset 'angle' {study}: azimuth within +-90 degrees, grey background",
        "angle_bg": f"Variability preset 'angle_bg' {study}: varying angle over varying backgrounds",
        "all": f"Variability preset 'all' {study}: angle, background, light, focal length, position and distance",
        "tabletop": "Objects upright on their support surfaces, camera above, some clutter",
        "closeups": "Half the frames are close-ups where one target fills most of the image",
    }
    return [
        (
            name,
            name.replace("_", " + ").capitalize() if name != "angle_bg" else "Angle + background",
            text.get(name, name),
        )
        for name in cfg.PRESETS
    ]


class BLENDSET_OT_apply_preset(bpy.types.Operator):
    """Set the randomizers to a preset (keeps classes, render and output settings)"""

    bl_idname = "blendset.apply_preset"
    bl_label = "Apply Preset"
    bl_options = {"REGISTER", "UNDO"}

    preset: bpy.props.EnumProperty(name="Preset", items=_preset_items)

    def execute(self, context: bpy.types.Context) -> set[str]:
        config = config_or_report(self, context.scene)
        if config is None:
            return {"CANCELLED"}
        try:
            props_config.config_to_scene(cfg.apply_preset(config, self.preset), context.scene)
        except BlendsetError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Preset {self.preset!r} applied")
        return {"FINISHED"}


class BLENDSET_OT_export_config(bpy.types.Operator, ExportHelper):
    """Write the settings as a config JSON that the headless runner and `blendset render` accept unchanged"""

    bl_idname = "blendset.export_config"
    bl_label = "Export Config"
    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        config = config_or_report(self, context.scene)
        if config is None:
            return {"CANCELLED"}
        try:
            cfg.save_config(config, self.filepath)
        except OSError as err:
            self.report({"ERROR"}, f"Cannot write {self.filepath}: {err.strerror}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Config written to {self.filepath}")
        return {"FINISHED"}


class BLENDSET_OT_import_config(bpy.types.Operator, ImportHelper):
    """Load a config JSON into the panel (every setting is replaced)"""

    bl_idname = "blendset.import_config"
    bl_label = "Import Config"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            config = cfg.load_config(self.filepath)
            props_config.config_to_scene(config, context.scene)
        except BlendsetError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Config loaded from {self.filepath}")
        return {"FINISHED"}


classes = (BLENDSET_OT_apply_preset, BLENDSET_OT_export_config, BLENDSET_OT_import_config)
