"""`blendset gap analyze|predict-metadata|filter|align|suggest|score`: the synthetic-to-real gap toolkit.

Thin wrappers: parse options, call ``trainer.gap.*`` (imported inside each command so ``blendset --help`` stays
fast), turn :class:`trainer.gap.GapError` into a click error, draw progress on stderr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from trainer.options import device_option, out_option, overwrite_option, seed_option

EXTRACTOR_HELP = "random | torchvision:NAME[:WEIGHTS_PATH] | detector:RUN (a Blendset run folder or .pth)."
synthetic_option = click.option("--synthetic", "-s", required=True, type=click.Path(exists=True),
                                help="Synthetic dataset folder (annotations.json + images/).")
real_option = click.option("--real", "-r", required=True, type=click.Path(exists=True),
                           help="Real dataset folder (annotations.json + images/).")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
size_option = click.option("--size", default=96, show_default=True, type=click.IntRange(16, 1024),
                           help="Extractor input size in pixels (images are squashed to size x size).")


@contextmanager
def _errors() -> Iterator[None]:
    from shared.config import ConfigError
    from trainer.gap import GapError

    try:
        yield
    except (GapError, ConfigError) as e:
        raise click.ClickException(str(e)) from e


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A stage-aware progress callback drawing one tqdm bar per stage on stderr."""
    if quiet:
        yield None
        return
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, leave=False, file=click.get_text_stream("stderr"))
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        for bar in bars.values():
            bar.close()


def _device(name: str) -> str:
    from trainer.options import resolve_device

    return resolve_device(name)


@click.group()
def gap() -> None:
    """Measure the synthetic-to-real gap, filter synthetic data, and write better generator configs.

    \b
      blendset gap analyze  -s synth/ -r real/ -o gap/            report.html + gap.json
      blendset gap predict-metadata -s synth/ -r real/ -o meta/   depth/occlusion/... for real boxes
      blendset gap filter   -s synth/ -r real/ -o synth_f/        drop synthetic images unlike real ones
      blendset gap align    -s synth/ -r real/ --config cfg.json --out aligned.json
      blendset gap suggest  --model runs/x -r real/ -o plan/      rendering plan from a model's errors
      blendset gap score    -s synth/ -r real/                    dataset quality without training
    """


@gap.command(short_help="Metadata and feature-space gap report (HTML + JSON).")
@synthetic_option
@real_option
@out_option
@click.option("--extractor", default="random", show_default=True, help=EXTRACTOR_HELP)
@size_option
@click.option("--k", "k", default=5, show_default=True, type=click.IntRange(1), help="Neighbours for KNN/PRDC.")
@click.option("--projection", type=click.Choice(["pca", "tsne"]), default="pca", show_default=True)
@device_option
@seed_option
@overwrite_option
@quiet_option
def analyze(synthetic, real, out, extractor, size, k, projection, device, seed, overwrite, quiet) -> None:
    """Compare per-image and per-box metadata (overlaid histograms, Bhattacharyya distances, ranked) and
    features (KNN, KDE, Fréchet, precision/recall/density/coverage, 2-D projection). Writes OUT/report.html
    and OUT/gap.json."""
    from trainer.gap.analyze import analyze as run

    with _errors(), _progress(quiet) as progress:
        result = run(synthetic, real, out, extractor=extractor, size=size, k=k, projection=projection,
                     device=_device(device), overwrite=overwrite, seed=seed, progress=progress)
    for w in result["warnings"]:
        click.echo(f"warning: {w}", err=True)
    top = result["metadata"][:5]
    click.echo("largest metadata gaps (Bhattacharyya): " + ", ".join(f"{r['name']}={r['bhattacharyya']:.3f}"
                                                                     for r in top), err=True)
    click.echo(f"{out}/report.html")
