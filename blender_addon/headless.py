"""Render a dataset without the UI.

\b
    blender -b scene.blend -P blender_addon/headless.py -- --config cfg.json --out DIR [--count N] [--seed S]
        [--shard i/n] [--scene-script scenes/x/build.py]
    python blender_addon/headless.py --config cfg.json --out DIR ...      (the bpy module, no binary)

One Blender process renders every frame of its shard (persistent data on). Progress goes to stdout as
``BLENDSET_PROGRESS {json}`` lines, notes as ``BLENDSET_NOTE text``; an error prints ``BLENDSET_ERROR text`` on
stderr and exits with status 2. A rerun with the same arguments resumes (frames with a record are skipped).
Works from the repository and from an installed extension folder: the add-on folder's parent goes on sys.path
and the package is imported by its folder name.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import sys
import time

ADDON_DIR = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="headless.py", description="Render a Blendset dataset headless.")
    p.add_argument("--config", required=True, help="dataset config JSON")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--count", type=int, default=None, help="frames in the dataset (default: config count)")
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument("--shard", default="0/1", help="i/n: render the i-th of n contiguous frame blocks")
    p.add_argument("--scene", default=None, help=".blend to open (the bpy module; the binary takes it before -b)")
    p.add_argument("--scene-script", default=None, help="scenes/<name>/build.py: build() into an empty scene")
    p.add_argument("--scene-args", default="{}", help="JSON object of keyword arguments for build()")
    p.add_argument("--no-finalize", action="store_true", help="skip writing annotations.json")
    return p.parse_args(argv)


def script_args() -> list[str]:
    return sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]


def import_addon():
    parent, name = os.path.split(ADDON_DIR)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    return (
        importlib.import_module(f"{name}.engine"),
        importlib.import_module(f"{name}.shared.config"),
        importlib.import_module(f"{name}.shared.merge"),
    )


def load_scene_script(path: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"scene script {path!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"blendset_scene_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "build", None)):
        raise AttributeError(f"scene script {path!r} defines no build() function")
    return module


def emit(kind: str, payload) -> None:
    text = json.dumps(payload, separators=(",", ":")) if not isinstance(payload, str) else payload
    print(f"BLENDSET_{kind} {text}", flush=True)


def emit_step(step) -> None:
    """One ``BLENDSET_PROGRESS`` line per rendered frame, the engine's :class:`~shared.progress.Step` in the form
    the launcher parses (``trainer/rendering/launcher.py``): ``{"done", "total", "frame", "seconds"}``."""
    emit("PROGRESS", {"done": step.done, "total": step.total, **step.values})


def run(args: argparse.Namespace) -> int:
    import bpy

    engine, config_mod, merge = import_addon()
    try:
        shard = merge.parse_shard(args.shard)
    except ValueError as e:
        raise engine.EngineError(str(e), "--shard") from None
    config = config_mod.load_config(args.config)
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    count = args.count if args.count is not None else config.count
    config = dataclasses.replace(config, count=count)
    if args.scene:
        if not os.path.isfile(args.scene):
            raise engine.EngineError(f"{args.scene!r} does not exist", "--scene")
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.scene))
    hook = None
    if args.scene_script:
        module = load_scene_script(args.scene_script)
        bpy.ops.wm.read_factory_settings(use_empty=True)
        module.build(**json.loads(args.scene_args))
        hook = getattr(module, "randomize", None)
    scene = bpy.context.scene
    with engine.DatasetRenderer(
        scene, config, args.out, shard=shard, count=count, frame_hook=hook, progress=emit_step
    ) as job:
        for note in job.notes:
            emit("NOTE", note)
        pending = job.pending_frames()
        emit(
            "START",
            {
                "pending": len(pending),
                "total": len(merge.frames_of_shard(count, *shard)),
                "frames": [pending[0], pending[-1]] if pending else None,
            },
        )
        t0 = time.perf_counter()
        for frame in pending:
            job.render_frame(frame)
        if not args.no_finalize:
            coco = job.finalize()
            emit(
                "DONE",
                {
                    "images": len(coco["images"]),
                    "annotations": len(coco["annotations"]),
                    "seconds": round(time.perf_counter() - t0, 3),
                },
            )
    return 0


def main() -> int:
    try:
        args = parse_args(script_args())
    except SystemExit as e:
        return int(e.code or 0)
    try:
        return run(args)
    except Exception as e:  # the message is the interface here; the traceback only with BLENDSET_DEBUG
        if os.environ.get("BLENDSET_DEBUG"):
            import traceback

            traceback.print_exc()
        print(f"BLENDSET_ERROR {e}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    if code:
        sys.exit(code)
