"""``blendset render`` and ``blendset merge``: thin wrappers over the launcher and ``shared.merge``."""

from __future__ import annotations

import json
import os
import tempfile

import click

from shared.progress import Step
from trainer.commands.options import out_option, quiet_option
from trainer.commands.progress import TqdmProgress, note_printer


@click.command(short_help="Render a labelled dataset with Blender.")
@click.option(
    "--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False), help="Dataset config JSON."
)
@out_option
@click.option("--scene", type=click.Path(exists=True, dir_okay=False), help=".blend file to render.")
@click.option(
    "--scene-script",
    type=click.Path(exists=True, dir_okay=False),
    help="scenes/<name>/build.py that builds the scene into an empty file.",
)
@click.option(
    "--scene-args",
    default=None,
    metavar="JSON",
    help="Keyword arguments for the scene script's build(), as a JSON object, e.g. '{\"handwriting\": false}'.",
)
@click.option("--count", type=click.IntRange(0), default=None, help="Frames in the dataset [default: config].")
@click.option("--seed", type=int, default=None, help="Random seed [default: config].")
@click.option("--shard", default="0/1", show_default=True, metavar="I/N", help="Render the I-th of N frame blocks.")
@click.option(
    "--blender",
    "blender_path",
    default=None,
    metavar="PATH",
    help="Blender binary [default: env BLENDER, else blender on PATH, else the bpy module].",
)
@click.option("--in-process", is_flag=True, help="Use the bpy module of this Python (in a subprocess).")
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="Render shards as Ray tasks: a local cluster, or ADDRESS (auto, ray://host:10001).",
)
@click.option("--shards", type=click.IntRange(1), default=None, help="With --ray: number of shards [default: CPUs].")
@click.option("--num-cpus", type=float, default=1.0, show_default=True, help="With --ray: CPUs per shard task.")
@click.option("--num-gpus", type=float, default=0.0, show_default=True, help="With --ray: GPUs per shard task.")
@quiet_option
def render(
    config_path,
    out,
    scene,
    scene_script,
    scene_args,
    count,
    seed,
    shard,
    blender_path,
    in_process,
    ray_address,
    shards,
    num_cpus,
    num_gpus,
    quiet,
):
    """Render COUNT frames of the dataset described by --config into --out.

    \b
    Examples:
      blendset render --config cfg.json --out synth/ --scene-script scenes/basic/build.py --count 100
      blendset render --config cfg.json --out synth/ --scene shop.blend --shard 1/4
      blendset render --config cfg.json --out s3://bucket/synth --scene-script scenes/basic/build.py --ray --shards 8

    A rerun with the same arguments resumes: frames already written are kept. The output folder must not hold
    a dataset made with another config.
    """
    from shared.config import load_config
    from shared.merge import parse_shard

    config = load_config(config_path)  # a ConfigError names the field; nothing has started yet
    if scene and scene_script:
        raise click.UsageError("give --scene or --scene-script, not both")
    scene_args = _check_scene_args(scene_args, scene_script)
    count = config.count if count is None else count
    seed = config.seed if seed is None else seed
    if ray_address is not None:
        if scene_args:
            raise click.UsageError("--scene-args is not supported with --ray; bake the options into the scene script")
        return _render_ray(
            config_path,
            out,
            count,
            seed,
            shards,
            ray_address,
            scene,
            scene_script,
            blender_path,
            num_cpus,
            num_gpus,
            quiet,
        )
    parse_shard(shard)
    from trainer.rendering import launcher

    blender = None if in_process else launcher.find_blender(blender_path)
    if blender is None and not launcher.have_bpy_module():
        raise click.UsageError("no Blender binary found (--blender, env BLENDER, PATH) and no bpy module installed")
    if "://" in out:
        with tempfile.TemporaryDirectory(prefix="blendset-render-") as local:
            _render_local(
                launcher, config_path, local, scene, scene_script, scene_args, count, seed, shard, blender, quiet
            )
            from trainer.rendering import storage

            storage.publish(local, out)
        return None
    _render_local(launcher, config_path, out, scene, scene_script, scene_args, count, seed, shard, blender, quiet)
    return None


def _check_scene_args(scene_args: str | None, scene_script: str | None) -> str | None:
    if scene_args is None:
        return None
    if not scene_script:
        raise click.UsageError("--scene-args needs --scene-script")
    try:
        parsed = json.loads(scene_args)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not valid JSON: {e}", param_hint="--scene-args") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--scene-args")
    return json.dumps(parsed, sort_keys=True)


def _render_local(
    launcher, config_path, out, scene, scene_script, scene_args, count, seed, shard, blender, quiet
) -> None:
    job = launcher.RenderJob(config_path, out, scene, scene_script, count, seed, shard, scene_args)
    note = note_printer(quiet)
    with TqdmProgress(quiet=quiet) as progress:
        frames = {"done": 0, "total": None}

        def on_event(kind, payload):
            if kind == "START":
                frames.update(done=payload["total"] - payload["pending"], total=payload["total"])
                progress(Step("render", frames["done"], frames["total"]))
            elif kind == "PROGRESS" and frames["total"] is not None:
                frames["done"] += 1
                progress(Step("render", frames["done"], frames["total"], {"s_per_frame": payload["seconds"]}))
            elif kind == "NOTE":
                note(f"note: {payload}")

        done = launcher.run_render(job, blender, on_event)
    if done:
        note(f"{out}: {done['images']} images, {done['annotations']} annotations")


def _render_ray(
    config_path, out, count, seed, shards, address, scene, scene_script, blender, num_cpus, num_gpus, quiet
) -> None:
    from trainer.rendering.ray_cluster import render_with_ray

    num_shards = shards or max(1, os.cpu_count() or 1)
    with TqdmProgress(quiet=quiet) as progress:
        render_with_ray(
            config_path,
            out,
            count,
            seed,
            num_shards,
            None if address == "local" else address,
            scene,
            scene_script,
            blender,
            num_cpus,
            num_gpus,
            lambda done, total: progress(Step("render (ray)", done, total)),
        )


@click.command(short_help="Merge shard folders into one dataset.")
@click.argument("shard_dirs", nargs=-1, required=True)
@out_option
@click.option("--allow-missing", is_flag=True, help="Merge even when frames of 0..count-1 are missing.")
@quiet_option
def merge(shard_dirs, out, allow_missing, quiet):
    """Merge SHARD_DIRS (folders or URLs) rendered with the same config into --out.

    The result is byte-identical to a single-process run (with the YOLO export when the config asks for it).
    Refuses shards of different configs or categories, a frame present twice with different content, and
    missing frames (named as ranges).
    """
    from shared.merge import merge_datasets
    from trainer.rendering import storage

    inputs = []
    for d in shard_dirs:
        if storage.is_url(d):
            inputs.append(storage.localize(d))
        elif not os.path.isdir(d):
            raise click.BadParameter(f"{d!r} is not a folder", param_hint="SHARD_DIRS")
        else:
            inputs.append(d)
    with TqdmProgress(quiet=quiet) as progress:
        if storage.is_url(out):
            with tempfile.TemporaryDirectory(prefix="blendset-merge-") as local:
                coco = merge_datasets(inputs, local, progress, allow_missing)
                storage.publish(local, out)
        else:
            coco = merge_datasets(inputs, out, progress, allow_missing)
    note_printer(quiet)(f"{out}: {len(coco['images'])} images, {len(coco['annotations'])} annotations")
