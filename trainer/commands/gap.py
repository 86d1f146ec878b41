"""`blendset gap analyze|predict-metadata|filter|align|suggest|score`: the synthetic-to-real gap toolkit.

Thin wrappers: parse options, call ``trainer.gap.*`` (imported inside each command so ``blendset --help`` stays
fast) and draw progress on stderr. A :class:`trainer.gap.GapError` reaches the root group, which prints it as
one line (exit status 2).
"""

from __future__ import annotations

import click

from trainer.commands.options import (
    device_option,
    out_option,
    overwrite_option,
    quiet_option,
    real_option,
    resolve_device,
    seed_option,
    synthetic_option,
)
from trainer.commands.progress import TqdmProgress, note_printer

EXTRACTOR_HELP = "random | torchvision:NAME[:WEIGHTS_PATH] | detector:RUN (a Blendset run folder or .pth)."
size_option = click.option(
    "--size",
    default=96,
    show_default=True,
    type=click.IntRange(16, 1024),
    help="Extractor input size in pixels (images are squashed to size x size).",
)


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
@synthetic_option()
@real_option()
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

    with TqdmProgress(quiet=quiet, leave=False) as progress:
        result = run(
            synthetic,
            real,
            out,
            extractor=extractor,
            size=size,
            k=k,
            projection=projection,
            device=resolve_device(device),
            overwrite=overwrite,
            seed=seed,
            progress=progress,
        )
    for w in result["warnings"]:
        click.echo(f"warning: {w}", err=True)
    top = result["metadata"][:5]
    click.echo(
        "largest metadata gaps (Bhattacharyya): " + ", ".join(f"{r['name']}={r['bhattacharyya']:.3f}" for r in top),
        err=True,
    )
    click.echo(f"{out}/report.html")


@gap.command("filter", short_help="Drop synthetic images/boxes unlike the real set; write a filtered COCO.")
@synthetic_option()
@real_option()
@out_option
@click.option(
    "--keep",
    default="elbow",
    show_default=True,
    metavar="F|elbow",
    help="Share of samples to keep (0..1], or 'elbow' for the automatic knee cut.",
)
@click.option(
    "--method",
    type=click.Choice(["knn", "kde"]),
    default="knn",
    show_default=True,
    help="Likelihood under the real features: k-NN distance or Gaussian KDE.",
)
@click.option(
    "--level",
    type=click.Choice(["image", "box", "both"]),
    default="image",
    show_default=True,
    help="Score whole images, box crops, or both.",
)
@click.option(
    "--box-mode",
    type=click.Choice(["blackout", "ignore"]),
    default="blackout",
    show_default=True,
    help="A dropped box in a kept image: paint it black and remove the label, or keep it as iscrowd/ignore.",
)
@click.option(
    "--max-drop",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="The elbow never drops more than this share.",
)
@click.option("--extractor", default="random", show_default=True, help=EXTRACTOR_HELP)
@size_option
@click.option("--k", "k", default=5, show_default=True, type=click.IntRange(1))
@click.option("--link", is_flag=True, help="Hard-link unchanged images instead of copying them.")
@device_option
@overwrite_option
@quiet_option
def filter_cmd(
    synthetic, real, out, keep, method, level, box_mode, max_drop, extractor, size, k, link, device, overwrite, quiet
) -> None:
    """Score every synthetic image (and box) by its likelihood under the real feature distribution, cut at the
    elbow or keep a share, and write OUT/annotations.json + OUT/images/ + OUT/scores.csv + OUT/filter.json."""
    from trainer.gap.filter import filter_dataset

    keep_share = None
    if keep != "elbow":
        try:
            keep_share = float(keep)
        except ValueError:
            raise click.BadParameter(f"{keep!r} is neither a number nor 'elbow'", param_hint="--keep") from None
    with TqdmProgress(quiet=quiet, leave=False) as progress:
        s = filter_dataset(
            synthetic,
            real,
            out,
            extractor=extractor,
            method=method,
            keep=keep_share,
            level=level,
            box_mode=box_mode,
            k=k,
            size=size,
            max_drop=max_drop,
            link=link,
            device=resolve_device(device),
            overwrite=overwrite,
            progress=progress,
        )
    click.echo(
        f"kept {s['images_out']} of {s['images_in']} images ({s['image_rule']}); "
        f"{len(s['boxes_dropped'])} boxes dropped ({s['box_rule']}; {s['box_mode_explained']})",
        err=True,
    )
    click.echo(out)


@gap.command(short_help="Write a mixture config whose box areas and positions match the real set.")
@synthetic_option()
@real_option()
@click.option(
    "--config",
    "config",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Base config (the one that rendered --synthetic).",
)
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

    r = run(
        synthetic,
        real,
        config,
        out,
        components=components,
        max_components=max_components,
        seed=seed,
        overwrite=overwrite,
    )
    click.echo(f"{r['rule']}; object size {r['object_size_m']:.3g} m from {r['size_from_boxes']} boxes", err=True)
    for c in r["components"]:
        click.echo(
            f"  {c['name']}: weight {c['weight']:.2f}, distance {c['distance_min_m']:.2f}..{c['distance_max_m']:.2f} m",
            err=True,
        )
    click.echo(out)


@gap.command("predict-metadata", short_help="Learn depth/occlusion/background/shape from features; label real boxes.")
@synthetic_option()
@real_option()
@out_option
@click.option(
    "--extractor",
    "extractors",
    multiple=True,
    default=("random",),
    show_default=True,
    help=EXTRACTOR_HELP + " Repeat to benchmark several.",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    type=click.Choice(["depth_median", "occlusion", "background_similarity", "occlusion_ad2", "distance", "shape"]),
    default=("depth_median", "occlusion", "background_similarity", "shape"),
    show_default=True,
)
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2))
@size_option
@device_option
@seed_option
@overwrite_option
@quiet_option
def predict_metadata(synthetic, real, out, extractors, targets, folds, size, device, seed, overwrite, quiet) -> None:
    """Fit linear models from frozen synthetic box features to rendered-only metadata, report cross-validated
    R² / accuracy per extractor (the gap thesis's table 5.8), then label the real boxes (OUT/real_metadata.csv)."""
    from trainer.gap.predict import format_table
    from trainer.gap.predict import predict_metadata as run

    with TqdmProgress(quiet=quiet, leave=False) as progress:
        s = run(
            synthetic,
            real,
            out,
            extractors=extractors,
            targets=targets,
            folds=folds,
            size=size,
            device=resolve_device(device),
            seed=seed,
            overwrite=overwrite,
            progress=progress,
        )
    click.echo(format_table(s), err=True)
    click.echo(f"{out}/real_metadata.csv")


@gap.command(short_help="Error analysis of a trained model on real data -> rendering plan.")
@click.option(
    "--model",
    "model",
    required=True,
    type=click.Path(exists=True),
    help="Training run folder (RUN/eval/<real-name>/ results are used, or created).",
)
@real_option()
@out_option
@click.option(
    "--base-config",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Config the plan starts from (normally the one that rendered the training set).",
)
@click.option("--count", default=200, show_default=True, type=click.IntRange(1), help="Frames in the plan.")
@click.option(
    "--score-threshold",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Detection: a detection counts when its score is at least this.",
)
@device_option
@overwrite_option
@quiet_option
def suggest(model, real, out, base_config, count, score_threshold, device, overwrite, quiet) -> None:
    """Find the worst classes and the metadata bins where a trained model's errors on real data concentrate
    (small boxes, dark images, high elevation, ...), and write OUT/plan.json (a mixture config with per-class
    frame quotas and shifted ranges), OUT/plan.md (the reasons in words) and OUT/suggest.json."""
    from trainer.gap.suggest import suggest as run

    with TqdmProgress(quiet=quiet, leave=False) as progress:
        s = run(
            model,
            real,
            out,
            base_config=base_config,
            count=count,
            score_threshold=score_threshold,
            device=device,
            overwrite=overwrite,
            note=note_printer(quiet),
            progress=progress,
        )
    worst = s["classes"][0]
    click.echo(
        f"worst class: {worst['class']} ({s['metric']} {worst['rate']:.3f}); "
        f"{len(s['flagged_bins'])} metadata bin(s) with concentrated errors",
        err=True,
    )
    click.echo(f"{out}/plan.md")


@gap.command(short_help="Dataset quality score without training, with a bootstrap interval.")
@synthetic_option()
@real_option()
@click.option("--extractor", default="random", show_default=True, help=EXTRACTOR_HELP)
@size_option
@click.option("--bootstrap", "n_boot", default=200, show_default=True, type=click.IntRange(10))
@click.option("--k", "k", default=5, show_default=True, type=click.IntRange(1))
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Also write the result here.")
@device_option
@seed_option
@quiet_option
def score(synthetic, real, extractor, size, n_boot, k, json_out, device, seed, quiet) -> None:
    """The gap thesis, section 5.5: the mean of the metadata distances that matter and a feature-space KNN term.
    Lower is closer to the real set. Its correlation with mAP is weak when datasets are close."""
    from trainer.gap.score import score as run

    with TqdmProgress(quiet=quiet, leave=False) as progress:
        r = run(
            synthetic,
            real,
            extractor=extractor,
            n_boot=n_boot,
            k=k,
            size=size,
            device=resolve_device(device),
            seed=seed,
            progress=progress,
        )
    b = r["bootstrap"]
    for w in r["warnings"]:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"note: {r['caveat']}", err=True)
    if json_out:
        from shared.atomic import write_json

        write_json(json_out, r, indent=2)
    terms = ", ".join(f"{k2} {v:.3f}" for k2, v in r["terms"].items())
    click.echo(
        f"score {r['score']:.3f} (bootstrap {b['mean']:.3f} ± {b['std']:.3f}, 95% CI "
        f"{b['ci95'][0]:.3f}-{b['ci95'][1]:.3f}); terms: {terms}"
    )
