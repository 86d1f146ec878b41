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


@gap.command("filter", short_help="Drop synthetic images/boxes unlike the real set; write a filtered COCO.")
@synthetic_option
@real_option
@out_option
@click.option("--keep", default="elbow", show_default=True, metavar="F|elbow",
              help="Share of samples to keep (0..1], or 'elbow' for the automatic knee cut.")
@click.option("--method", type=click.Choice(["knn", "kde"]), default="knn", show_default=True,
              help="Likelihood under the real features: k-NN distance or Gaussian KDE.")
@click.option("--level", type=click.Choice(["image", "box", "both"]), default="image", show_default=True,
              help="Score whole images, box crops, or both.")
@click.option("--box-mode", type=click.Choice(["blackout", "ignore"]), default="blackout", show_default=True,
              help="A dropped box in a kept image: paint it black and remove the label, or keep it as iscrowd/ignore.")
@click.option("--max-drop", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="The elbow never drops more than this share.")
@click.option("--extractor", default="random", show_default=True, help=EXTRACTOR_HELP)
@size_option
@click.option("--k", "k", default=5, show_default=True, type=click.IntRange(1))
@click.option("--link", is_flag=True, help="Hard-link unchanged images instead of copying them.")
@device_option
@overwrite_option
@quiet_option
def filter_cmd(synthetic, real, out, keep, method, level, box_mode, max_drop, extractor, size, k, link, device,
               overwrite, quiet) -> None:
    """Score every synthetic image (and box) by its likelihood under the real feature distribution, cut at the
    elbow or keep a share, and write OUT/annotations.json + OUT/images/ + OUT/scores.csv + OUT/filter.json."""
    from trainer.gap.filter import filter_dataset

    keep_share = None
    if keep != "elbow":
        try:
            keep_share = float(keep)
        except ValueError:
            raise click.BadParameter(f"{keep!r} is neither a number nor 'elbow'", param_hint="--keep") from None
    with _errors(), _progress(quiet) as progress:
        s = filter_dataset(synthetic, real, out, extractor=extractor, method=method, keep=keep_share, level=level,
                           box_mode=box_mode, k=k, size=size, max_drop=max_drop, link=link,
                           device=_device(device), overwrite=overwrite, progress=progress)
    click.echo(f"kept {s['images_out']} of {s['images_in']} images ({s['image_rule']}); "
               f"{len(s['boxes_dropped'])} boxes dropped ({s['box_rule']}; {s['box_mode_explained']})", err=True)
    click.echo(out)


@gap.command(short_help="Write a mixture config whose box areas and positions match the real set.")
@synthetic_option
@real_option
@click.option("--config", "config", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Base config (the one that rendered --synthetic).")
@click.option("--out", "-o", "out", required=True, type=click.Path(dir_okay=False), help="Aligned config (.json).")
@click.option("--components", default=None, type=click.IntRange(1), help="Fixed component count (default: silhouette).")
@click.option("--max-components", default=6, show_default=True, type=click.IntRange(2))
@seed_option
@overwrite_option
def align(synthetic, real, config, out, components, max_components, seed, overwrite) -> None:
    """Fit a Gaussian mixture to the real boxes' (area, vertical position), map each component to a camera
    distance range through the pinhole model and the object size measured on --synthetic, and write a config
    whose weighted `mixture` components render that distribution. Also writes <out>.align.json."""
    from trainer.gap.align import align as run

    with _errors():
        r = run(synthetic, real, config, out, components=components, max_components=max_components, seed=seed,
                overwrite=overwrite)
    click.echo(f"{r['rule']}; object size {r['object_size_m']:.3g} m from {r['size_from_boxes']} boxes", err=True)
    for c in r["components"]:
        click.echo(f"  {c['name']}: weight {c['weight']:.2f}, distance {c['distance_min_m']:.2f}.."
                   f"{c['distance_max_m']:.2f} m", err=True)
    click.echo(out)
