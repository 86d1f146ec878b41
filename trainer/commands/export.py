"""`blendset export yolo|imagefolder`: convert a dataset for other trainers."""

from __future__ import annotations

import json

import click

from trainer.commands.options import overwrite_option


def _call(fn, **kwargs) -> None:
    summary = fn(**kwargs)
    skipped = summary.get("skipped", [])
    if isinstance(skipped, dict):  # shared.yolo counts skips per reason
        skipped = [f"{n} x {reason}" for reason, n in skipped.items()]
    for s in list(skipped) + summary.get("skipped_on_load", []):
        click.echo(f"skipped {s}", err=True)
    click.echo(json.dumps(summary, indent=2, default=str))


@click.group("export")
def export() -> None:
    """Convert a Blendset or COCO dataset for other trainers."""


@export.command("yolo", short_help="YOLO images/, labels/ and data.yaml.")
@click.option("--data", required=True, type=click.Path(exists=True), help="COCO folder.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--copy-images", is_flag=True, help="Copy images instead of linking them.")
@click.option("--segments/--boxes", default=None, help="Polygon labels or box labels (default: by the data).")
@click.option("--skip-bad", is_flag=True, help="Leave out bad images/annotations (listed) instead of stopping.")
@overwrite_option
def yolo(data, out, copy_images, segments, skip_bad, overwrite):
    """Write OUT/images, OUT/labels (one .txt per image, class index and normalised box or polygon) and
    OUT/data.yaml."""
    from trainer.data.export import export_yolo_dataset

    _call(
        export_yolo_dataset,
        data=data,
        out=out,
        link_images=not copy_images,
        segments=segments,
        skip_bad=skip_bad,
        overwrite=overwrite,
    )


@export.command("imagefolder", short_help="Box crops as OUT/<class>/<image>_<ann>.png.")
@click.option("--data", required=True, type=click.Path(exists=True), help="COCO folder.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--padding",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0),
    help="Grow each box by this share of its size on every side.",
)
@click.option(
    "--min-size",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Boxes with a side below this many pixels are skipped (and listed).",
)
@click.option("--skip-bad", is_flag=True, help="Leave out bad images/annotations (listed) instead of stopping.")
@overwrite_option
def imagefolder(data, out, padding, min_size, skip_bad, overwrite):
    """Crop every box into an ImageFolder tree, for classifiers that read one."""
    from trainer.data.export import export_imagefolder

    _call(
        export_imagefolder,
        data=data,
        out=out,
        padding=padding,
        min_size=min_size,
        skip_bad=skip_bad,
        overwrite=overwrite,
    )
