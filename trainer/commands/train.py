"""`blendset train detect|keypoints|classify|regress`."""

import click

from trainer.commands.lazy import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy_subcommands={
        "detect": "trainer.commands.train_detect:detect",
        "keypoints": "trainer.commands.train_keypoints:keypoints",
        "classify": "trainer.commands.train_classify:classify",
        "regress": "trainer.commands.train_regress:regress",
    },
)
def train() -> None:
    """Train a detector, keypoint detector, classifier or render-parameter regressor on COCO datasets."""
