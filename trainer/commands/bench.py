"""`blendset bench boards|digits|variability`: the real-data protocols behind Blendset's claims."""

import click

from trainer.commands.lazy import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy_subcommands={
        "boards": "trainer.commands.bench_boards:boards",
        "digits": "trainer.commands.bench_digits:digits",
        "variability": "trainer.commands.bench_variability:variability",
    },
)
def bench() -> None:
    """Run a benchmark protocol end to end and write its table and plots."""
