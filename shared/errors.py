"""The root of every error Blendset raises on purpose.

A ``BlendsetError`` means the input or the situation is wrong, not the code: a config field out of range, a
dataset that does not parse, a run folder that already holds a run. Its message is one line that names the
problem (and the field, file or flag at fault). The command line turns every ``BlendsetError`` into that line
and exit status 2 (``trainer/commands/errors.py``); the add-on turns it into ``self.report({'ERROR'}, ...)``.
Anything else that escapes is a bug and keeps its traceback.

Domain errors subclass it together with the builtin they replaced (``ConfigError(BlendsetError, ValueError)``),
so code that caught the builtin still works.
"""

from __future__ import annotations

__all__ = ["BlendsetError"]


class BlendsetError(Exception):
    """Bad input or a run that cannot go on; ``str(err)`` is one line naming the problem."""
