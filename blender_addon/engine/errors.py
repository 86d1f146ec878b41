"""The engine's one domain error. Operators turn it into ``self.report({'ERROR'}, str(err))``; the headless
runner prints it and exits non-zero."""

from __future__ import annotations

from ..shared.errors import BlendsetError


class EngineError(BlendsetError, RuntimeError):
    """Something about the scene, the config or the output folder stops the run. ``field`` names the config
    field (``classes[0].objects``) or the thing (``--out``) at fault, when there is one. A ``BlendsetError``
    (the root of every domain error) and, as before, a ``RuntimeError``."""

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)
