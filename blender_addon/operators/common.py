"""What every operator module needs: the output folder as Blender resolves it, and the scene's config (or a
report saying which setting is wrong)."""

from __future__ import annotations

import bpy

from .. import props_config
from ..shared import config as cfg
from ..shared.errors import BlendsetError


def output_dir(scene: bpy.types.Scene) -> str:
    return bpy.path.abspath(scene.blendset.output_dir)


def config_or_report(op: bpy.types.Operator, scene: bpy.types.Scene) -> cfg.DatasetConfig | None:
    """The scene's settings as a validated config; ``None`` after reporting the error that names the field."""
    try:
        return props_config.config_from_scene(scene)
    except BlendsetError as err:
        op.report({"ERROR"}, str(err))
        return None
