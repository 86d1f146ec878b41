"""Options shared by several commands, defined once so their names and meanings never drift apart.

\b
--out / -o     output folder               train *, eval, render, gap *, refine *, bench *, export
--device       cpu | cuda | cuda:N | auto  train *, eval, gap *, refine *, bench *
--seed         random seed                 train *, render, gap *, refine *, bench *
--overwrite    replace an existing output  export, gap *, bench *
--workers      data-loading processes      train *, eval, gap *
--synthetic/-s rendered dataset            gap *, refine train
--real/-r      real dataset                gap *, refine train
-q/--quiet     no progress bars or notes   every command that draws progress
"""

from __future__ import annotations

import click

out_option = click.option(
    "-o", "--out", "out", required=True, type=click.Path(file_okay=False), help="Output folder (created if missing)."
)
device_option = click.option(
    "--device", default="auto", show_default=True, help="cpu, cuda, cuda:N, or auto (GPU when there is one)."
)
seed_option = click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace an existing output instead of failing.")
workers_option = click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(0), help="Data-loading worker processes."
)


def _quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """``blendset -q CMD`` and ``blendset CMD -q`` mean the same: no progress bars or notes."""
    return bool(value or (ctx.find_root().obj or {}).get("quiet"))


quiet_option = click.option("-q", "--quiet", is_flag=True, callback=_quiet, help="No progress bars or notes.")


def synthetic_option(help: str = "Synthetic dataset folder (annotations.json + images/).", file_okay: bool = True):
    """``--synthetic/-s``: the rendered side of a comparison; ``help`` says what the command accepts there."""
    return click.option(
        "--synthetic", "-s", required=True, type=click.Path(exists=True, file_okay=file_okay), help=help
    )


def real_option(help: str = "Real dataset folder (annotations.json + images/).", file_okay: bool = True):
    """``--real/-r``: the real side of a comparison; ``help`` says what the command accepts there."""
    return click.option("--real", "-r", required=True, type=click.Path(exists=True, file_okay=file_okay), help=help)


def resolve_device(name: str) -> str:
    """``--device`` checked up front (``auto`` -> ``cuda`` when available, else ``cpu``): the one rule lives in
    ``trainer.training.loop.resolve_device``; its RunError becomes a usage error naming the flag."""
    from shared.errors import BlendsetError
    from trainer.training.loop import resolve_device as resolve

    try:
        return resolve(name)
    except BlendsetError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from exc
