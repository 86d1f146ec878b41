"""Where every domain error becomes what the user sees: one line naming the problem, exit status 2.

The root group (``trainer/cli.py``) runs every command inside :func:`domain_errors`, so no command catches
errors of its own. A :class:`shared.errors.BlendsetError` prints as ``Error: <message>`` without a traceback;
with ``-vv`` the traceback is kept for debugging. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import click

from shared.errors import BlendsetError

EXIT_STATUS = 2


class DomainError(click.ClickException):
    """A BlendsetError on its way out of the CLI."""

    exit_code = EXIT_STATUS


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


@contextlib.contextmanager
def domain_errors(verbosity: Callable[[], int] = lambda: 0) -> Iterator[None]:
    """Turn a BlendsetError raised inside the block into :class:`DomainError` (re-raised as is when
    ``verbosity()`` is 2 or more, so the traceback shows)."""
    try:
        yield
    except BlendsetError as exc:
        if verbosity() >= 2:
            raise
        raise DomainError(one_line(exc)) from exc
