"""Operators: thin adapters between the panel and the engine, one module per thing the artist does.

=============  ===================================================================================
labels         mark the selection (or the active collection) as a class, clear labels, select a class
settings       fill an object-name list from the selection, add/remove list entries
config_io      presets, config JSON export and import
checks         the validation the panel shows (:func:`checks.find_problems`) and its fix buttons
preview        one randomized frame with its annotations drawn, in the "Blendset Preview" image
generate       the modal dataset render (progress, Esc cancels, a rerun resumes)
=============  ===================================================================================

Each operator reads the scene's settings through ``props_config.config_from_scene``, calls the engine, and
reports: a :class:`~shared.errors.BlendsetError` (a config field, the scene, the output folder) becomes
``self.report({'ERROR'}, ...)``; anything else is a bug and keeps its traceback. The engine is imported inside
``execute`` so enabling the add-on stays fast. ``poll`` uses the validation to grey out Preview and Generate.
"""

from __future__ import annotations

import bpy

from . import checks, config_io, generate, labels, preview, settings

classes = (
    *labels.classes,
    *settings.classes,
    *config_io.classes,
    *checks.classes,
    *preview.classes,
    *generate.classes,
)
register, unregister = bpy.utils.register_classes_factory(classes)
