"""The bpy layer of the generation engine (see runner.py for the lifecycle).

Public API, used by the add-on's operators, the headless runner and the preview::

    from blender_addon.engine import DatasetRenderer, EngineError, preview_frame, scene_fingerprint
"""

from .errors import EngineError
from .runner import DatasetRenderer, preview_frame
from .scene_state import SceneState, preserved, scene_fingerprint

__all__ = ["DatasetRenderer", "EngineError", "SceneState", "preserved", "preview_frame", "scene_fingerprint"]
