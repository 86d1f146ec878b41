"""The artist's scene comes back exactly (fingerprint), also after a failing frame and a preview; every
randomizer and the mixture run on both Blenders; bad input stops with one message naming the field."""

from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from blendset_testing import BASIC_SCENE, BLENDER_KINDS, HEADLESS, TINY, run_blender, write_config  # noqa: E402

pytestmark = pytest.mark.blender
DRIVER = os.path.join(os.path.dirname(__file__), "engine_driver.py")


@pytest.fixture(scope="module", params=BLENDER_KINDS)
def driver(request, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp(f"driver-{request.param}")
    proc = run_blender(request.param, DRIVER, [str(out)])
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    for name, value in result.items():
        assert "crash" not in value, f"{name}:\n{value.get('crash')}"
    return result


def test_scene_restored_after_every_randomizer(driver):
    r = driver["restore"]
    assert r["before"] == r["after"]
    assert r["before"] != r["during"]  # the run did change the scene while open
    assert r["images"] == 6


def test_mixture_component_restricts_classes(driver):
    r = driver["restore"]
    assert set(r["components"]) == {0, 1}
    for comp, hidden, classes in zip(r["components"], r["hidden"], r["classes_per_frame"], strict=True):
        if comp == 1:  # the "cubes" component
            assert hidden == ["Cone", "Sphere"] and set(classes) <= {0}
        else:
            assert hidden == []


def test_every_section_recorded_its_params(driver):
    keys = set().union(*(p.keys() for p in driver["restore"]["params"]))
    for k in (
        "camera.distance",
        "camera.closeup",
        "lights.count",
        "materials.roughness",
        "background.strength",
        "distractors.count",
        "weather.rain",
        "post.blur_sigma_px",
        "post.noise_std",
    ):
        assert k in keys, k


def test_scene_restored_after_a_failing_frame(driver):
    r = driver["restore_after_error"]
    assert r["message"] == "hook failed on purpose"
    assert r["before"] == r["after"]


def test_preview_writes_files_and_restores(driver):
    r = driver["preview"]
    assert r["before"] == r["after"] and r["seed"] == 7
    for key in ("rgb", "instance", "semantic", "depth", "record"):
        assert os.path.isfile(r["paths"][key]), key


def test_labels_from_config_properties_and_blenderproc(driver):
    r = driver["labels"]
    assert r["targets"] == {
        "Cube": [5, "cube", ["Cube"]],  # config class
        "Named": [5, "cube", ["Named"]],  # property name matching a config class
        "Apple": [8, "fruit", ["Apple"]],  # collection property, name only: next free id after explicit ids
        "Pear": [8, "fruit", ["Pear"]],
        "Bproc": [7, "class_7", ["Bproc"]],  # BlenderProc's category_id
        "Zero": [0, "class_0", ["Zero"]],  # id 0 is a class like any other
        "Seven": [6, "class_6", ["Seven"]],
        "Chair": [9, "chair", ["Chair", "Leg"]],  # unlabelled children are parts of the labelled parent
    }
    assert r["categories"] == [[0, "class_0"], [5, "cube"], [6, "class_6"], [7, "class_7"], [8, "fruit"], [9, "chair"]]


@pytest.mark.parametrize(
    "case, field",
    [
        ("target_without_label", "BoxA"),
        ("no_labels", "blendset_class"),
        ("missing_object", "classes[0].objects[0]"),
        ("missing_image_dir", "background.image_dir"),
        ("unwritable_out", "out"),
        ("missing_surface", "pose.surfaces[0]"),
        ("eevee", "render.engine"),
    ],
)
def test_bad_input_names_the_problem(driver, case, field):
    message = driver["errors"][case]
    assert message is not None, f"{case}: no error raised"
    assert field in message and "\n" not in message


@pytest.mark.parametrize("kind", BLENDER_KINDS)
def test_headless_rejects_bad_configs_with_one_line(kind, tmp_path):
    cases = {
        "unknown key": ({"camera": {"distanse": 3}}, "camera.distanse"),
        "wrong type": ({"render": {"resolution": [96, 72], "samples": "many"}}, "render.samples"),
        "negative range": ({"camera": {"distance": {"min": 5.0, "max": 2.0}}}, "camera.distance"),
    }
    for name, (override, field) in cases.items():
        cfg = write_config(str(tmp_path / f"{name}.json"), {**TINY, **override})
        args = ["--config", cfg, "--out", str(tmp_path / "out"), "--scene-script", BASIC_SCENE]
        proc = run_blender(kind, HEADLESS, args, check=False)
        errors = [x for x in proc.stderr.splitlines() if x.startswith("BLENDSET_ERROR ")]
        assert proc.returncode != 0, name
        assert len(errors) == 1 and field in errors[0], (name, proc.stderr[-500:])
