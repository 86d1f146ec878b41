"""The digits scene script in Blender (the bpy module, in process): build, per-frame hook, deformation."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

pytestmark = pytest.mark.blender

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scenes", "digits", "build.py")


def _load():
    spec = importlib.util.spec_from_file_location("digits_scene_build", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def scene_module():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return _load()


def _digits():
    return [bpy.data.objects[f"blendset_digit_{d}"] for d in range(10)]


def _evaluated_xz(obj) -> np.ndarray:
    dg = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(dg)
    mesh = ev.to_mesh()
    co = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", co)
    ev.to_mesh_clear()
    return co.reshape(-1, 3)


def test_build_labels_ten_digits_with_all_fonts(scene_module):
    scene_module.build()
    objs = _digits()
    assert [o["blendset_class"] for o in objs] == [str(d) for d in range(10)]
    assert [o["blendset_class_id"] for o in objs] == list(range(10))
    assert [o.data.body for o in objs] == [str(d) for d in range(10)]
    assert not any(o.hide_render for o in objs)  # the engine only collects targets that render
    fonts = [f for f in bpy.data.fonts if "blendset_digit_font" in f]
    assert len(fonts) == 22
    assert bpy.context.scene.camera is not None


def test_randomize_shows_one_digit_and_respects_classes(scene_module):
    scene_module.build()
    scene = bpy.context.scene
    seen = set()
    for frame in range(30):
        values = scene_module.randomize(scene, np.random.default_rng(frame), frame, ())
        visible = [d for d, o in enumerate(_digits()) if not o.hide_render]
        assert visible == [int(values["digit"])]
        seen.add(visible[0])
        d = scene_module.DEFAULTS
        for key in ("extrude", "bevel_depth", "shear", "offset", "rotation_deg", "aspect", "deform_sigma"):
            lo, hi = d[key]
            assert lo <= values[key] <= hi, key
        assert 0 <= values["font"] < 22
    assert len(seen) >= 8
    for frame in range(10):
        values = scene_module.randomize(scene, np.random.default_rng(frame), frame, ("3", "8"))
        assert int(values["digit"]) in (3, 8)
    with pytest.raises(scene_module.SceneBuildError, match="none of the classes"):
        scene_module.randomize(scene, np.random.default_rng(0), 0, ("cat",))


def test_randomize_is_deterministic_per_rng(scene_module):
    scene_module.build()
    scene = bpy.context.scene
    a = scene_module.randomize(scene, np.random.default_rng(42), 7, ())
    pts_a = _evaluated_xz(bpy.data.objects[f"blendset_digit_{int(a['digit'])}"])
    scene_module.randomize(scene, np.random.default_rng(1), 8, ())
    b = scene_module.randomize(scene, np.random.default_rng(42), 7, ())
    pts_b = _evaluated_xz(bpy.data.objects[f"blendset_digit_{int(b['digit'])}"])
    assert a == b
    assert np.allclose(pts_a, pts_b)


def test_handwriting_lattice_deforms_the_strokes(scene_module):
    scene_module.build(
        deform_sigma=(0.15, 0.15),
        shear=(0.0, 0.0),
        rotation_deg=(0.0, 0.0),
        tilt_deg=(0.0, 0.0),
        aspect=(1.0, 1.0),
        offset=(0.0, 0.0),
        digits=[4],
    )
    scene = bpy.context.scene
    obj = bpy.data.objects["blendset_digit_4"]
    scene_module.randomize(scene, np.random.default_rng(0), 0, ())
    deformed = _evaluated_xz(obj)
    obj.modifiers["handwriting"].show_render = obj.modifiers["handwriting"].show_viewport = False
    plain = _evaluated_xz(obj)
    assert deformed.shape == plain.shape
    shift = np.linalg.norm(deformed[:, :2] - plain[:, :2], axis=1)
    assert 0.01 < shift.mean() < 0.3  # a visible but bounded warp, in glyph units (glyph height ~0.73)


def test_no_handwriting_option_and_bad_options(scene_module):
    scene_module.build(handwriting=False)
    assert not any(o.modifiers for o in _digits())
    values = scene_module.randomize(bpy.context.scene, np.random.default_rng(0), 0, ())
    assert values["deform_sigma"] == 0.0
    bpy.ops.wm.read_factory_settings(use_empty=True)
    with pytest.raises(scene_module.SceneBuildError, match="unknown digits scene option"):
        scene_module.build(wobble=3)
    with pytest.raises(scene_module.SceneBuildError, match="no matplotlib font folder|not found"):
        scene_module.build(font_dir="/nonexistent", fonts=["nope.ttf"])


def test_scene_renders_through_the_blender_binary(tmp_path):
    """The Blender binary (5.2 in CI) builds the scene from its own Python (no matplotlib: the fonts are found in
    the repository's .venv) and every annotation's class is the digit the hook showed."""
    import json
    import shutil
    import subprocess

    from trainer.bench.digits import SCALES, digits_config

    blender = os.environ.get("BLENDER") or shutil.which("blender")
    if not blender:
        pytest.skip("no Blender binary (set BLENDER)")
    from shared.config import save_config

    save_config(digits_config(SCALES["toy"]), str(tmp_path / "cfg.json"))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [
            blender,
            "-b",
            "--factory-startup",
            "-P",
            os.path.join(repo, "blender_addon", "headless.py"),
            "--",
            "--config",
            str(tmp_path / "cfg.json"),
            "--out",
            str(tmp_path / "out"),
            "--count",
            "3",
            "--seed",
            "1",
            "--scene-script",
            SCRIPT,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=repo,
    )
    assert "BLENDSET_DONE" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    coco = json.load(open(tmp_path / "out" / "annotations.json"))
    assert len(coco["images"]) == 3 and len(coco["annotations"]) == 3
    digit_of = {im["id"]: int(im["blendset"]["params"]["scene.digit"]) for im in coco["images"]}
    assert all(a["category_id"] == digit_of[a["image_id"]] for a in coco["annotations"])
