"""Progress bars and notes on stderr for the commands; the library only calls the callbacks it is given.

``TqdmProgress`` is the one :data:`shared.progress.ProgressFn` the CLI uses: one bar per stage, with the
numbers that matter for that stage (loss, learning rate, images per second, data-wait share) in its postfix.
stdout stays free for the JSON summaries that commands print.
"""

from __future__ import annotations

import sys
from typing import IO, Any

import click

from shared.progress import Note, Step, silent

# The keys shown first, with their format, when a step carries them (training steps do).
_FORMATS = {
    "loss": "loss={:.4f}",
    "lr": "lr={:.2e}",
    "img_s": "{:.1f} img/s",
    "data_wait": "data={:.0%}",
}


def format_values(values: dict[str, Any]) -> str:
    """``loss=0.1234 lr=1.00e-02 12.3 img/s data=3%``; without those keys, every number as ``name=value``."""
    known = [fmt.format(values[k]) for k, fmt in _FORMATS.items() if isinstance(values.get(k), (int, float))]
    if known:
        return " ".join(known)
    return " ".join(f"{k}={v:.4g}" for k, v in values.items() if isinstance(v, (int, float)))


class TqdmProgress:
    """Draws one tqdm bar per stage on stderr; a no-op when ``quiet``. Use as a context manager (or call
    :meth:`close`) so the last bar is closed."""

    def __init__(self, quiet: bool = False, file: IO[str] | None = None, leave: bool = True):
        self.quiet = quiet
        self.file = file
        self.leave = leave
        self.bar = None
        self.stage: str | None = None

    def __call__(self, step: Step) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if self.bar is None or step.stage != self.stage:
            self.close()
            self.stage = step.stage
            self.bar = tqdm(total=step.total, desc=step.stage, file=self.file or sys.stderr, leave=self.leave,
                            dynamic_ncols=True)  # fmt: skip
        if step.total is not None and self.bar.total != step.total:
            self.bar.total = step.total
        if step.values:
            self.bar.set_postfix_str(format_values(dict(step.values)), refresh=False)
        self.bar.update(step.done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def note_printer(quiet: bool) -> Note:
    """The :data:`shared.progress.Note` of a command: one line on stderr, or nothing when ``quiet``."""
    if quiet:
        return silent
    return lambda message: click.echo(message, err=True)
