"""``blendset train ... --nproc N``: start the same command under torchrun, N processes on this machine.

torchrun (``torch.distributed.run``) does the work: it sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_*``,
restarts nothing by default, and tears every process down when one fails. This module only rebuilds the command
line without ``--nproc`` and runs ``python -m torch.distributed.run --standalone --nproc-per-node N -m trainer
...``; the children see ``RANK`` and train with DDP (``trainer.training.distributed``). Multi-node runs call torchrun
directly (docs/scale-out.md).
"""

from __future__ import annotations

import os
import subprocess
import sys

import click

__all__ = ["strip_nproc", "torchrun_command", "nproc_option"]


def strip_nproc(args: list[str]) -> list[str]:
    """``args`` without ``--nproc N`` / ``--nproc=N`` (the children must not relaunch again)."""
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        out.append(a)
    return out


def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    """The torchrun command line that runs ``blendset ARGS`` (without ``--nproc``) in ``nproc`` processes."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
        "-m", "trainer", *strip_nproc(args),
    ]  # fmt: skip


def _relaunch(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    if value is None or value <= 1 or ctx.resilient_parsing:
        return
    if "RANK" in os.environ:  # already a torchrun child: the world size is torchrun's, not ours to change
        world = os.environ.get("WORLD_SIZE")
        if world is not None and int(world) != value:
            raise click.BadParameter(f"running under torchrun with WORLD_SIZE={world}", param_hint="--nproc")
        return
    args = sys.argv[1:]
    if not any(a == "--nproc" or a.startswith("--nproc=") for a in args):
        raise click.UsageError("--nproc re-runs the command line under torchrun; call it from a shell (or torchrun)")
    click.echo(f"note: starting {value} processes with torchrun", err=True)
    returncode = subprocess.call(torchrun_command(value, args))
    ctx.exit(returncode)


nproc_option = click.option(
    "--nproc",
    type=click.IntRange(1),
    default=None,
    is_eager=True,
    expose_value=False,
    callback=_relaunch,
    metavar="N",
    help="Train with N processes on this machine (DDP through torchrun; --batch-size is per process).",
)
