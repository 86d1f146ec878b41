"""`blendset train detect|classify|regress`."""

import click

from trainer.commands.lazy import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy_subcommands={
        "detect": "trainer.commands.train_detect:detect",
        "classify": "trainer.commands.train_classify:classify",
        "regress": "trainer.commands.train_regress:regress",
    },
)
def train() -> None:
    """Train a detector, classifier or render-parameter regressor on COCO datasets."""
