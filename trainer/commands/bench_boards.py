"""`blendset bench boards`: rendered chessboards vs 26 real photos, for detection and keypoints."""

from __future__ import annotations

import click

from trainer.commands.options import device_option, out_option, quiet_option, seed_option


@click.command(short_help="Chessboard benchmark: detection and keypoints on 26 real photos.")
@out_option
@click.option(
    "--scale",
    type=click.Choice(["toy", "small", "full"]),
    default="small",
    show_default=True,
    help="toy: wiring check (minutes); small: the 2-core CPU run (untimed end to end, over 40 min); full: GPU.",
)
@seed_option
@device_option
@click.option(
    "--gap-loop/--no-gap-loop",
    default=True,
    show_default=True,
    help="End with the gap loop: analyze renders vs real, align a second config, render it, retrain, compare.",
)
@quiet_option
def boards(out: str, scale: str, seed: int, device: str, gap_loop: bool, quiet: bool) -> None:
    """Run the chessboard protocol and write results.json, results.md and the runs into OUT.

    \b
    Real data: the 26 photos of a hand-held 9 x 6 chessboard that Debian's opencv-doc package ships
    (`make real-photos` installs it); their ground truth (54 corners, board box, calibrated pose) is computed
    at run time with OpenCV. Synthetic: scenes/boards/build.py rendered by the engine. Rows: synthetic only,
    real only (pair-wise 2-fold cross-validation) and real + synthetic on the same folds, for a detector and a
    keypoint model, all measured on the real photos. An existing OUT is resumed.

    \b
    Example:
      blendset bench boards --out runs/boards --scale small
    """
    from trainer.bench.boards import run_boards_benchmark
    from trainer.commands.progress import note_printer

    results = run_boards_benchmark(out, scale=scale, seed=seed, device=device, gap_loop=gap_loop,
                                   note=note_printer(quiet))  # fmt: skip
    from trainer.bench.boards import results_markdown

    click.echo(results_markdown(results))
