"""`blendset eval`: score a run on a dataset and write metrics, tables, plots and predictions."""

from __future__ import annotations

import click

from trainer.commands.options import device_option, quiet_option, workers_option


@click.command("eval", short_help="Evaluate a run on a dataset (metrics.json, CSVs, PNGs).")
@click.option(
    "--model",
    "run",
    required=True,
    type=click.Path(exists=True),
    metavar="RUN",
    help="Run folder (best.pth, else checkpoint.pth) or a checkpoint file.",
)
@click.option("--data", required=True, type=click.Path(exists=True), help="COCO folder or ImageFolder root.")
@click.option("--name", default=None, help="Report folder name under RUN/eval/ (default: the data folder name).")
@click.option(
    "--by-attribute",
    multiple=True,
    metavar="ATTR[:BINS]",
    help="Slice metrics by an annotation attribute or image field, e.g. occlusion:4 or "
    "camera.elevation_deg:0,30,60,90 (repeatable).",
)
@click.option(
    "--score-threshold",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Detections counted for precision/recall/F1 and the confusion matrix.",
)
@click.option("--iou-threshold", default=0.5, show_default=True, type=click.FloatRange(0, 1))
@click.option(
    "--resamples",
    default=500,
    show_default=True,
    type=click.IntRange(1),
    help="Bootstrap resamples per class (classification).",
)
@click.option(
    "--resample-size",
    default=None,
    type=click.IntRange(1),
    help="Images per class in each resample (default: the class's count; the bias-fix study used 200).",
)
@click.option("--batch-size", default=4, show_default=True, type=click.IntRange(1))
@click.option("--skip-bad", is_flag=True, help="Leave out bad images/annotations (listed) instead of stopping.")
@device_option
@workers_option
@quiet_option
def eval_cmd(
    run,
    data,
    name,
    by_attribute,
    score_threshold,
    iou_threshold,
    resamples,
    resample_size,
    batch_size,
    skip_bad,
    device,
    workers,
    quiet,
):
    """Write RUN/eval/<name>/: metrics.json, per_class.csv, confusion_matrix.csv/.png, pr_curves.png (detection),
    by_<attr>.csv/.png, and detections.json (detection) or predictions.csv (classification). A keypoint run
    writes metrics.json, keypoints.json, per_keypoint.csv, keypoints_overlay.png (and board_pose.csv).

    \b
      blendset eval --model runs/finetune --data real_test/ --by-attribute occlusion:4
    """
    from trainer.commands.progress import note_printer
    from trainer.evaluation.evaluate import evaluate_run

    metrics = evaluate_run(
        run,
        data,
        by_attribute=by_attribute,
        device=device,
        name=name,
        batch_size=batch_size,
        workers=workers,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        n_resamples=resamples,
        resample_size=resample_size,
        skip_bad=skip_bad,
        note=note_printer(quiet),
    )
    click.echo(summary_text(metrics))


def summary_text(metrics: dict) -> str:
    """A few lines for the terminal; metrics.json has everything."""
    lines = [f"{metrics.get('task')} on {metrics.get('dataset')}: report in {metrics.get('out_dir')}"]
    if metrics.get("task") == "detect":
        c, a = metrics["coco"], metrics["at_iou"]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
        lines.append(
            "mAP {} AP50 {} AP75 {} | P {} R {} F1 {} @IoU{}".format(
                fmt(c["mAP"]),
                fmt(c["AP50"]),
                fmt(c["AP75"]),
                fmt(a["precision"]),
                fmt(a["recall"]),
                fmt(a["f1"]),
                metrics["iou_threshold"],
            )
        )
        for row in metrics["per_class"][:5]:
            lines.append(f"  {row['name']:<20} AP {fmt(row['AP'])}  recall {fmt(row['recall'])}")
    elif metrics.get("task") == "keypoints":
        fmt = lambda v, spec=".3f": "n/a" if v is None else format(v, spec)
        box, kp, err = metrics["box"], metrics["keypoints"]["oks"], metrics["keypoints"]["errors"]
        pck = " ".join(f"PCK@{t} {fmt(v)}" for t, v in err["pck"].items())
        lines.append(
            f"keypoints on {metrics['images']} images: OKS AP {fmt(kp['AP'])} AP50 {fmt(kp['AP50'])} "
            f"AP75 {fmt(kp['AP75'])} (sigma {metrics['oks_sigma']:g}) | box mAP {fmt(box['mAP'])} "
            f"AP50 {fmt(box['AP50'])}"
        )
        lines.append(
            f"error px: mean {fmt(err['mean_px'], '.2f')} median {fmt(err['median_px'], '.2f')} | {pck} | "
            f"{err['matched']} matched, {err['unmatched_gt']} missed"
        )
        pose = metrics["keypoints"]["pose"]
        if pose:
            r, t = pose["rotation_deg"], pose["translation_mm"]
            lines.append(
                f"board pose ({pose['solved']}/{pose['images']} solved): rotation median {fmt(r['median'], '.2f')} "
                f"deg, translation median {fmt(t['median'], '.1f')} mm"
            )
    elif metrics.get("task") == "classify":
        lines.append(f"accuracy {metrics['accuracy']:.3f} (worst classes first):")
        for row in metrics["per_class"][:5]:
            if row["accuracy"] is not None:
                lines.append(
                    f"  {row['name']:<20} {row['accuracy']:.3f} "
                    f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}] n={row['n']}"
                )
    return "\n".join(lines)
