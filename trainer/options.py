"""Options shared by several commands, defined once so their names and meanings never drift apart.

\b
--out / -o     output folder               train *, eval, render, gap *, refine *, bench *, export
--device       cpu | cuda | cuda:N | auto  train *, eval, gap *, refine *, bench *
--seed         random seed                 train *, render, gap *, refine *, bench *
--overwrite    replace an existing output  export, gap *, bench *
--workers      data-loading processes      train *, eval, gap *
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


def resolve_device(name: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; anything else is checked and returned."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise click.BadParameter(f"{name!r} asked for, but no CUDA device is available", param_hint="--device")
    return name
