"""Validation shown in the panel before anything runs, and the one-click fixes it offers.

:func:`find_problems` names everything that stops Generate (or Preview); the panel lists it, ``poll`` uses it
through :func:`blocked` to grey out Preview and Generate, and ``blendset.fix`` applies a problem's fix.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import bpy

from .. import properties, props_config
from ..shared import config as cfg
from .common import output_dir


@dataclass(frozen=True)
class Problem:
    """One reason the scene cannot run yet, and the fix operator's ``kind`` when there is a one-click fix."""

    message: str
    fix: str = ""
    fix_label: str = ""


def _output_problem(scene: bpy.types.Scene) -> Problem | None:
    raw = scene.blendset.output_dir
    fix = ("OUTPUT_TEMP", "Use a temporary folder")
    if not raw.strip():
        return Problem("No output folder set", *fix)
    if raw.startswith("//") and not bpy.data.filepath:
        return Problem("Output folder is relative to the .blend, which is not saved yet", *fix)
    path = output_dir(scene)
    if os.path.exists(path) and not os.path.isdir(path):
        return Problem(f"Output folder {path} is a file", *fix)
    probe = path.rstrip(os.sep) or os.sep
    while not os.path.exists(probe):  # the nearest existing folder is where the new ones would be made
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        return Problem(f"Output folder {path} is not writable", *fix)
    return None


def has_labels(scene: bpy.types.Scene, config: cfg.DatasetConfig) -> bool:
    """Whether anything in the scene is labelled, by the config's classes or (if enabled) by custom properties."""
    if any(spec.objects or spec.collections for spec in config.classes):
        return True
    if not config.label_properties:
        return False
    if any(properties.label_of(ob) or "category_id" in ob for ob in scene.objects):
        return True
    return any(properties.label_of(c) and c.all_objects for c in bpy.data.collections)


def _dataset_problem(scene: bpy.types.Scene, config: cfg.DatasetConfig) -> Problem | None:
    """An output folder that already holds a dataset made with other settings cannot be resumed into."""
    import json

    path = os.path.join(output_dir(scene), "config.json")
    if not os.path.isfile(path):
        return None
    fix = ("OUTPUT_NEW", "Use a new folder")
    try:
        with open(path, encoding="utf-8") as f:
            existing = cfg.DatasetConfig.from_dict(json.load(f))
    except (OSError, ValueError) as err:
        return Problem(f"Output folder has an unreadable config.json ({err})", *fix)
    if cfg.config_hash(existing) != cfg.config_hash(config):
        return Problem("Output folder holds a dataset made with other settings", *fix)
    return None


def find_problems(scene: bpy.types.Scene, generate: bool = True) -> list[Problem]:
    """Everything that stops Generate (or, with ``generate=False``, Preview, which needs no output folder),
    each named, most with a fix button."""
    try:
        config = props_config.config_from_scene(scene)
    except cfg.ConfigError as err:
        return [Problem(f"Setting {err.path or 'config'}: {err.message}")]
    problems = []
    if not has_labels(scene, config):
        problems.append(
            Problem("No labelled object: select objects and mark them as a class", "LABEL", "Mark selected as class")
        )
    if generate:
        out = _output_problem(scene) or _dataset_problem(scene, config)
        if out is not None:
            problems.append(out)
    try:
        config.check_paths()
    except cfg.ConfigError as err:
        fixes = {
            "background.hdri_dir": ("HDRI_DEFAULT", "Use Blender's HDRIs"),
            "background.image_dir": ("BACKGROUND_HDRI", "Use HDRIs instead"),
            "distractors.mesh_dir": ("MESH_NONE", "Use primitives only"),
        }
        problems.append(Problem(f"{err.path}: {err.message}", *fixes.get(err.path, ("", ""))))
    return problems


def blocked(cls: type, context: bpy.types.Context, generate: bool) -> bool:
    """For ``poll``: True (with the reason as the poll message) while a job runs or a problem stands."""
    if context.window_manager.blendset_progress.running:
        cls.poll_message_set("A Generate job is running")
        return True
    problems = find_problems(context.scene, generate)
    if problems:
        cls.poll_message_set(problems[0].message)
        return True
    return False


class BLENDSET_OT_fix(bpy.types.Operator):
    """Apply the suggested fix for a problem shown in the panel"""

    bl_idname = "blendset.fix"
    bl_label = "Fix"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    kind: bpy.props.EnumProperty(
        items=[
            ("OUTPUT_TEMP", "Use a temporary folder", "Write the dataset under the system's temporary folder"),
            ("HDRI_DEFAULT", "Use Blender's HDRIs", "Clear the HDRI folder: use the 8 HDRIs Blender ships"),
            ("BACKGROUND_HDRI", "Use HDRIs", "Switch the background to HDRI mode"),
            ("MESH_NONE", "Primitives only", "Clear the distractor mesh folder"),
            ("OUTPUT_NEW", "Use a new folder", "Write into a new folder next to the current one"),
        ]
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = context.scene.blendset
        if self.kind == "OUTPUT_TEMP":
            s.output_dir = os.path.join(tempfile.gettempdir(), "blendset_dataset") + os.sep
        elif self.kind == "HDRI_DEFAULT":
            s.config.background.hdri_dir = ""
        elif self.kind == "BACKGROUND_HDRI":
            s.config.background.mode = "hdri"
        elif self.kind == "MESH_NONE":
            s.config.distractors.mesh_dir = ""
        elif self.kind == "OUTPUT_NEW":
            s.output_dir = _next_free(output_dir(context.scene))
        return {"FINISHED"}


def _next_free(path: str) -> str:
    """``/x/data/`` -> ``/x/data_2/`` (or the next number not taken)."""
    base = path.rstrip(os.sep)
    n = 2
    while os.path.exists(f"{base}_{n}"):
        n += 1
    return f"{base}_{n}{os.sep}"


classes = (BLENDSET_OT_fix,)
