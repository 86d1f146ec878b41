"""Runs inside Blender (bpy module or binary): exercises DatasetRenderer in-process and prints one
``RESULT {json}`` line for tests/blender/test_engine_scene_state.py.

    python engine_driver.py OUT_DIR          |  blender -b --factory-startup -P engine_driver.py -- OUT_DIR
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import bpy

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [ROOT, HERE]

from blender_addon.engine import DatasetRenderer, EngineError, preview_frame, scene_fingerprint  # noqa: E402
from blender_addon.engine.png import encode_png  # noqa: E402
from blender_addon.shared.config import ConfigError, DatasetConfig  # noqa: E402

TINY = {"render": {"resolution": [48, 36], "samples": 1}}


def fresh(builder: str, **kwargs) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if builder == "basic":
        sys.path.insert(0, os.path.join(ROOT, "scenes", "basic"))
        import build as basic

        basic.build()
    elif builder == "engine_scene":
        import engine_scene

        engine_scene.build(**kwargs)
    elif builder == "bare":
        cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
        bpy.context.scene.collection.objects.link(cam)
        bpy.context.scene.camera = cam
        cube = bpy.data.objects.new("Cube", bpy.data.meshes.new("Cube"))
        bpy.context.scene.collection.objects.link(cube)


def everything_config(assets: str) -> DatasetConfig:
    """Every randomizer on, mixture included, tiny render."""
    with open(os.path.join(ROOT, "scenes", "basic", "default_config.json")) as f:
        base = json.load(f)
    base.update(TINY)
    base.update(
        {
            "camera": {"closeup_share": 0.5},
            "materials": {"procedural_share": 0.5},
            "background": {"mode": "hdri"},
            "distractors": {"count": {"min": 1, "max": 3}, "mesh_dir": os.path.join(assets, "meshes")},
            "weather": {"kinds": ["fog", "rain", "snow"], "share": 1.0},
            "post": {"blur_share": 1.0, "noise_share": 1.0},
            "mixture": [
                {"weight": 1.0, "name": "all"},
                {
                    "weight": 1.0,
                    "name": "cubes",
                    "classes": ["cube"],
                    "background": {"mode": "images", "image_dir": os.path.join(assets, "photos")},
                },
            ],
        }
    )
    return DatasetConfig.from_dict(base)


def make_assets(folder: str) -> None:
    import numpy as np

    os.makedirs(os.path.join(folder, "photos"), exist_ok=True)
    os.makedirs(os.path.join(folder, "meshes"), exist_ok=True)
    img = (np.indices((40, 60)).sum(axis=0) % 2 * 200).astype(np.uint8)
    with open(os.path.join(folder, "photos", "checker.png"), "wb") as f:
        f.write(encode_png(np.stack([img, img // 2, 255 - img], axis=-1)))
    with open(os.path.join(folder, "meshes", "tetra.obj"), "w") as f:
        f.write("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 3 2\nf 1 2 4\nf 2 3 4\nf 1 4 3\n")


def select_some() -> None:
    vl = bpy.context.view_layer
    bpy.data.objects["Cube"].select_set(True)
    vl.objects.active = bpy.data.objects["Sphere"]


def case_restore(out: str) -> dict:
    """Render with every randomizer; the scene fingerprint before and after must match."""
    fresh("basic")
    select_some()
    assets = os.path.join(out, "assets")
    make_assets(assets)
    before = scene_fingerprint(bpy.context.scene)
    cfg = everything_config(assets)
    records = []
    with DatasetRenderer(bpy.context.scene, cfg, os.path.join(out, "everything"), count=6) as job:
        during = scene_fingerprint(bpy.context.scene)
        for frame in job.pending_frames():
            records.append(job.render_frame(frame))
        coco = job.finalize()
    after = scene_fingerprint(bpy.context.scene)
    return {
        "before": before,
        "during": during,
        "after": after,
        "components": [r["image"]["blendset"]["component"] for r in records],
        "hidden": [r["image"]["blendset"]["hidden"] for r in records],
        "classes_per_frame": [sorted({a["category_id"] for a in r["annotations"]}) for r in records],
        "params": [r["image"]["blendset"]["params"] for r in records],
        "images": len(coco["images"]),
    }


def case_restore_after_error(out: str) -> dict:
    """A frame that fails (a scene hook raising) still leaves the scene exactly as it was."""
    fresh("basic")
    before = scene_fingerprint(bpy.context.scene)
    cfg = DatasetConfig.from_dict(
        {**json.load(open(os.path.join(ROOT, "scenes", "basic", "default_config.json"))), **TINY}
    )

    def hook(scene, rng, frame, classes):
        raise RuntimeError("hook failed on purpose")

    message = None
    try:
        with DatasetRenderer(bpy.context.scene, cfg, os.path.join(out, "failing"), count=2, frame_hook=hook) as job:
            job.render_frame(0)
    except RuntimeError as e:
        message = str(e)
    return {"before": before, "after": scene_fingerprint(bpy.context.scene), "message": message}


def case_preview(out: str) -> dict:
    fresh("basic")
    before = scene_fingerprint(bpy.context.scene)
    cfg = DatasetConfig.from_dict(
        {**json.load(open(os.path.join(ROOT, "scenes", "basic", "default_config.json"))), **TINY}
    )
    result = preview_frame(bpy.context.scene, cfg, 7, os.path.join(out, "preview"))
    return {
        "before": before,
        "after": scene_fingerprint(bpy.context.scene),
        "paths": result["paths"],
        "seed": result["record"]["image"]["blendset"]["seed"],
        "annotations": len(result["record"]["annotations"]),
    }


def case_labels(out: str) -> dict:
    """Labels from config classes, collection and object custom properties, and BlenderProc's category_id."""
    from blender_addon.engine.targets import resolve_targets

    fresh("bare")
    scene = bpy.context.scene
    coll = bpy.data.collections.new("Fruit")
    scene.collection.children.link(coll)
    coll["blendset_class"] = "fruit"
    for name in ("Apple", "Pear"):
        coll.objects.link(bpy.data.objects.new(name, bpy.data.meshes.new(name)))
    for name, props in (
        ("Bproc", {"category_id": 7}),
        ("Zero", {"blendset_class_id": 0}),
        ("Named", {"blendset_class": "cube"}),
        ("Seven", {"blendset_class_id": 6}),
    ):
        ob = bpy.data.objects.new(name, bpy.data.meshes.new(name))
        for k, v in props.items():
            ob[k] = v
        scene.collection.objects.link(ob)
    parent = bpy.data.objects.new("Chair", bpy.data.meshes.new("Chair"))
    leg = bpy.data.objects.new("Leg", bpy.data.meshes.new("Leg"))
    leg.parent = parent
    parent["blendset_class"] = "chair"
    for ob in (parent, leg):
        scene.collection.objects.link(ob)
    cfg = DatasetConfig.from_dict({"classes": [{"name": "cube", "id": 5, "objects": ["Cube"]}]})
    targets, cats, _ = resolve_targets(scene, cfg)
    return {
        "targets": {t.name: [t.category.id, t.category.name, sorted(p.name for p in t.parts)] for t in targets},
        "categories": [[c.id, c.name] for c in cats],
    }


def _error(builder: str, config: dict, out: str, **kwargs) -> str | None:
    fresh(builder, **kwargs)
    before = scene_fingerprint(bpy.context.scene)
    try:
        cfg = DatasetConfig.from_dict({**TINY, **config})
        with DatasetRenderer(bpy.context.scene, cfg, out, count=1) as job:
            job.render_frame(0)
    except (EngineError, ConfigError) as e:
        assert scene_fingerprint(bpy.context.scene) == before, "scene changed by a failed open()"
        return f"{type(e).__name__}: {e}"
    return None


def case_errors(out: str) -> dict:
    os.makedirs(out, exist_ok=True)
    blocker = os.path.join(out, "a_file")
    open(blocker, "w").close()
    return {
        "target_without_label": _error("engine_scene", {}, os.path.join(out, "e1"), variant="unlabelled_target"),
        "no_labels": _error("bare", {}, os.path.join(out, "e2")),
        "missing_object": _error(
            "bare", {"classes": [{"name": "x", "id": 0, "objects": ["Nope"]}]}, os.path.join(out, "e3")
        ),
        "missing_image_dir": _error(
            "basic", {"background": {"mode": "images", "image_dir": "/no/such/dir"}}, os.path.join(out, "e4")
        ),
        "unwritable_out": _error("basic", {}, os.path.join(blocker, "sub")),
        "missing_surface": _error("basic", {"pose": {"surfaces": ["Table"]}}, os.path.join(out, "e6")),
        "eevee": _error("basic", {"render": {"engine": "BLENDER_WORKBENCH"}}, os.path.join(out, "e7")),
    }


def main() -> None:
    args = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    out = args[0]
    os.makedirs(out, exist_ok=True)
    result = {}
    for name, fn in (
        ("restore", case_restore),
        ("restore_after_error", case_restore_after_error),
        ("preview", case_preview),
        ("labels", case_labels),
        ("errors", case_errors),
    ):
        try:
            result[name] = fn(os.path.join(out, name))
        except Exception:
            result[name] = {"crash": traceback.format_exc()}
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
