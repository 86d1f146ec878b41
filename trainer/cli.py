"""The `blendset` command line.

Every subcommand lives in its own module under ``trainer/commands/`` and is a thin wrapper: it parses options
and calls a library function, which raises domain errors and takes a progress callback. Commands are listed
here and imported lazily, so ``blendset --help`` stays fast.
"""

from __future__ import annotations

import logging

import click

from trainer import __version__
from trainer.commands.errors import domain_errors
from trainer.commands.lazy import LazyGroup

COMMANDS = {
    "render": "trainer.commands.render:render",
    "merge": "trainer.commands.render:merge",
    "train": "trainer.commands.train:train",
    "eval": "trainer.commands.evaluate:eval_cmd",
    "export": "trainer.commands.export:export",
    "gap": "trainer.commands.gap:gap",
    "refine": "trainer.commands.refine:refine",
    "bench": "trainer.commands.bench:bench",
    "demo": "trainer.commands.demo:demo",
}


class BlendsetGroup(LazyGroup):
    """The root group: every command runs inside :func:`trainer.commands.errors.domain_errors`."""

    def invoke(self, ctx: click.Context):
        # -v is read when an error happens: the group's own callback (which stores it) runs inside this call
        with domain_errors(lambda: (ctx.obj or {}).get("verbose", 0)):
            return super().invoke(ctx)


@click.group(cls=BlendsetGroup, lazy_subcommands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="blendset")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
@click.option("-q", "--quiet", count=True, help="No progress bars or notes (every command), and less log output.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int) -> None:
    """Blendset: render labelled datasets in Blender, train on them, and measure the gap to real data.

    \b
    The loop:
      blendset render   --config cfg.json --out synth/     render a dataset
      blendset train    detect --train synth/ --val real/  train a detector
      blendset eval     --model runs/x --data real/        measure on real images
      blendset gap      suggest --model runs/x --real real/  plan what to render next
    """
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logging.basicConfig(level=max(logging.DEBUG, level), format="%(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj.update(verbose=verbose, quiet=quiet > 0)


def main() -> None:
    cli(prog_name="blendset")


if __name__ == "__main__":
    main()
