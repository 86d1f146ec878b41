"""Runs inside Blender (the bpy module or the binary): install the built add-on zip, enable it, and drive every
operator through ``bpy.ops`` the way an artist's clicks would. Used by tests/blender/test_addon.py.

    python addon_driver.py ZIP WORKDIR                     (bpy module)
    blender -b --factory-startup -P addon_driver.py -- ZIP WORKDIR

Checks what only Blender can see (registration, properties, the preview image, the scene fingerprint) with
assertions, and writes WORKDIR/result.json for the pytest side to check the files (COCO, round-trip configs).
Exits non-zero on the first failed check.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback

import bpy

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLASS_COLOR = (0.9, 0.3, 0.1)


def args() -> tuple[str, str]:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    return argv[0], argv[1]


def build_scene() -> None:
    """scenes/basic without its labels: the driver labels through the panel's operator instead."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sys.path.insert(0, os.path.join(ROOT, "scenes", "basic"))
    import build

    build.build()
    for ob in bpy.data.objects:
        for key in ("blendset_class", "blendset_class_id"):
            if key in ob:
                del ob[key]


def install(zip_path: str) -> str:
    """Blender 4.2+'s "Install from Disk" for extensions; returns the add-on's module name."""
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    assert result == {"FINISHED"}, result
    return "bl_ext.user_default.blendset"


def check_enable_cycle(module: str) -> None:
    assert hasattr(bpy.types.Scene, "blendset") and hasattr(bpy.ops.blendset, "generate")
    generated = {c.__name__: c for c in props_config_of(module).generated_classes()}
    assert generated["BLENDSET_PG_classes_keypoints_skeleton"].is_registered
    bpy.ops.preferences.addon_disable(module=module)
    assert not any(c.is_registered for c in generated.values()), "disable left a generated class registered"
    assert not hasattr(bpy.types.Scene, "blendset"), "disable left Scene.blendset behind"
    assert not hasattr(bpy.types, "VIEW3D_PT_blendset_camera"), "disable left a panel registered"
    assert "BLENDSET_PG_camera_distance" not in dir(bpy.types)
    bpy.ops.preferences.addon_enable(module=module)
    assert hasattr(bpy.types.Scene, "blendset"), "enable after disable did not register"
    assert hasattr(bpy.types, "VIEW3D_PT_blendset_camera")
    again = {c.__name__: c for c in props_config_of(module).generated_classes()}
    assert again.keys() == generated.keys() and all(c.is_registered for c in again.values())


def select_only(names: list[str]) -> None:
    for ob in bpy.context.scene.objects:
        ob.select_set(ob.name in names)
    bpy.context.view_layer.objects.active = bpy.data.objects[names[0]]


def props_config_of(module: str):
    return importlib.import_module(f"{module}.props_config")


def preview_pixels() -> list[float]:
    img = bpy.data.images["Blendset Preview"]
    return list(img.pixels[:])


def main() -> None:
    zip_path, work = args()
    os.makedirs(work, exist_ok=True)
    result: dict = {"blender": bpy.app.version_string}
    build_scene()
    module = install(zip_path)
    check_enable_cycle(module)
    addon = sys.modules[module]
    fingerprint = importlib.import_module(f"{module}.engine.scene_state").scene_fingerprint
    operators = importlib.import_module(f"{module}.operators.checks")
    scene = bpy.context.scene
    s = scene.blendset
    pg = s.config

    # -- validation before anything runs ----------------------------------------------------------------------
    blocker = os.path.join(work, "a_file")
    open(blocker, "w").close()
    s.output_dir = os.path.join(blocker, "dataset") + os.sep  # a folder cannot be made inside a file
    problems = operators.find_problems(scene)
    texts = [p.message for p in problems]
    assert any("No labelled object" in t for t in texts), texts
    assert any("not writable" in t for t in texts), texts
    assert not bpy.ops.blendset.generate.poll() and not bpy.ops.blendset.preview.poll()
    bpy.ops.blendset.fix(kind="OUTPUT_TEMP")
    assert not any("writable" in p.message for p in operators.find_problems(scene))
    empty = os.path.join(work, "no_hdris")
    os.makedirs(empty, exist_ok=True)
    pg.background.enabled, pg.background.mode, pg.background.hdri_dir = True, "hdri", empty
    hdri = [p for p in operators.find_problems(scene) if "hdri_dir" in p.message]
    assert hdri and hdri[0].fix == "HDRI_DEFAULT", [p.message for p in operators.find_problems(scene)]
    bpy.ops.blendset.fix(kind="HDRI_DEFAULT")
    assert pg.background.hdri_dir == "" and not any("hdri" in p.message for p in operators.find_problems(scene))
    result["problems_seen"] = texts

    # -- label ------------------------------------------------------------------------------------------------
    select_only(["Cube", "Cone"])
    assert bpy.ops.blendset.label_selected(class_name="thing", class_id=0, color=CLASS_COLOR) == {"FINISHED"}
    select_only(["Sphere"])
    bpy.ops.blendset.label_selected(class_name="ball", class_id=1, color=(0.1, 0.4, 0.9))
    assert bpy.data.objects["Cube"]["blendset_class"] == "thing" and bpy.data.objects["Cube"]["blendset_class_id"] == 0
    assert [c.name for c in pg.classes] == ["thing", "ball"]
    # an id already taken by another class is refused, nothing changes
    select_only(["Ground"])
    try:
        bpy.ops.blendset.label_selected(class_name="floor", class_id=1)
        raise AssertionError("a clashing class id was accepted")
    except RuntimeError as err:
        assert "already used" in str(err), err
    assert "blendset_class" not in bpy.data.objects["Ground"]
    bpy.ops.blendset.select_class(class_name="thing")
    assert sorted(o.name for o in bpy.context.selected_objects) == ["Cone", "Cube"]
    select_only(["Ground"])
    s.object_index = list(bpy.data.objects).index(bpy.data.objects["Cone"])  # the list's active row
    bpy.ops.blendset.select_class()
    assert sorted(o.name for o in bpy.context.selected_objects) == ["Cone", "Cube"]
    bpy.ops.blendset.clear_label(object_name="Sphere")
    assert "blendset_class" not in bpy.data.objects["Sphere"] and [c.name for c in pg.classes] == ["thing"]
    select_only(["Sphere"])
    bpy.ops.blendset.label_selected(class_name="ball", class_id=1, color=(0.1, 0.4, 0.9))
    assert not any("labelled" in p.message for p in operators.find_problems(scene))

    # -- keypoints: the per-class block, its list editing and the names button ----------------------------------
    cube = bpy.data.objects["Cube"]
    for name in ("tip", "base"):
        cube.vertex_groups.new(name=name)
    kp = pg.classes[0].keypoints
    kp.enabled, kp.source = True, "vertex_groups"
    select_only(["Cube"])
    assert bpy.ops.blendset.keypoint_names_from_active(data_path=kp.path_from_id()) == {"FINISHED"}
    assert kp.names == "tip,base", kp.names
    skeleton = f"{kp.path_from_id()}.skeleton"
    for _ in range(2):
        bpy.ops.blendset.row_edit(data_path=skeleton, action="ADD")
    kp.skeleton[0].v0, kp.skeleton[0].v1 = "tip", "base"
    bpy.ops.blendset.row_edit(data_path=skeleton, action="REMOVE", index=1)
    got = props_config_of(module).config_from_scene(scene).classes[0].keypoints
    assert got.names == ("tip", "base") and got.skeleton == (("tip", "base"),), got
    kp.skeleton[0].v1 = "nope"
    try:
        props_config_of(module).config_from_scene(scene)
        raise AssertionError("a skeleton naming an unknown keypoint was accepted")
    except Exception as err:  # the schema's ConfigError, naming the field
        assert "classes[0].keypoints.skeleton[0][1]" in str(err), err
    kp.enabled = False  # Cone has no such groups: the rest of the run labels without keypoints
    for name in ("tip", "base"):
        cube.vertex_groups.remove(cube.vertex_groups[name])

    # -- preset -----------------------------------------------------------------------------------------------
    bpy.ops.blendset.apply_preset(preset="angle")
    assert pg.camera.enabled and (pg.camera.azimuth_deg.min, pg.camera.azimuth_deg.max) == (-90.0, 90.0)
    assert pg.background.mode == "color" and pg.lights.types == {"SUN"} and pg.preset == "angle"
    pg.render.resolution = (64, 48)
    pg.render.samples = 1
    pg.pose.enabled, pg.pose.mode = True, "on_surface"
    select_only(["Ground"])
    bpy.ops.blendset.names_from_selection(data_path=f"{pg.pose.path_from_id()}.surfaces")
    assert pg.pose.surfaces == "Ground", pg.pose.surfaces
    pg.count = 3
    pg.camera.distance.min, pg.camera.distance.max = 7.0, 9.5  # keep all three objects in the tiny frame

    # -- export / import round trip -----------------------------------------------------------------------------
    exported = os.path.join(work, "exported.json")
    again = os.path.join(work, "exported_again.json")
    assert bpy.ops.blendset.export_config(filepath=exported) == {"FINISHED"}
    bpy.ops.blendset.apply_preset(preset="all")  # change many settings, then load the file back
    assert pg.preset == "all"
    assert bpy.ops.blendset.import_config(filepath=exported) == {"FINISHED"}
    bpy.ops.blendset.export_config(filepath=again)
    bad = os.path.join(work, "bad.json")
    with open(bad, "w") as f:
        json.dump({"camera": {"distance": {"min": 5, "max": 1}}}, f)
    try:
        bpy.ops.blendset.import_config(filepath=bad)
        raise AssertionError("a bad config was imported")
    except RuntimeError as err:
        assert "camera.distance" in str(err), err
    assert pg.camera.distance.min == 7.0  # the failed import changed nothing
    with open(bad, "w") as f:  # valid for the engine, but a name the panel's comma-separated field cannot hold
        json.dump({"seed": 5, "pose": {"surfaces": ["Table, left"]}}, f)
    try:
        bpy.ops.blendset.import_config(filepath=bad)
        raise AssertionError("a name with a comma was imported")
    except RuntimeError as err:
        assert "pose.surfaces" in str(err), err
    assert pg.seed == 0 and pg.pose.surfaces == "Ground"  # all or nothing
    result["exported"], result["exported_again"] = exported, again

    # -- every kind of setting survives scene -> config -> scene (a config using all of them) ---------------------
    props_config = importlib.import_module(f"{module}.props_config")
    config_mod = importlib.import_module(f"{module}.shared.config")
    rich = {
        "name": "rich",
        "seed": 12345,
        "count": 7,
        "label_properties": False,
        "classes": [
            {"name": "a", "id": 0, "objects": ["Cube", "Cone"], "collections": ["Set"], "color": [0.25, 0.5, 1]},
            {
                "name": "b",
                "id": 3,
                "keypoints": {
                    "source": "local",
                    "names": ["l", "r", "c"],
                    "coordinates": [[0.0125, -1.25, 0.5], [-0.0125, -1.25, 0.5], [0.0, 0.3, 2.0]],
                    "skeleton": [["l", "c"], ["r", "c"]],
                    "flip_pairs": [["l", "r"]],
                },
            },
            {  # same layout as "b": the rich config's YOLO export holds one
                "name": "e",
                "id": 4,
                "keypoints": {"source": "empties", "names": ["l", "r", "c"], "flip_pairs": [["r", "l"]]},
            },
        ],
        "render": {
            "engine": "BLENDER_WORKBENCH",
            "resolution": [33, 17],
            "samples": 3,
            "denoise": True,
            "alpha_threshold": 0.125,
            "threads": 2,
        },
        "output": {"image_format": "JPEG", "jpeg_quality": 77, "depth_float": "npy", "normals": True, "yolo": True},
        "camera": {
            "mode": "orbit",
            "look_at": [0.5, -1.25, 2.0],
            "distance": {"min": 0.3, "max": 12.7, "distribution": "loguniform"},
            "closeup_share": 0.35,
            "roll_deg": {"min": -5, "max": 5, "distribution": "normal"},
        },
        "lights": {"types": ["SUN", "SPOT"], "count": {"min": 0, "max": 9}, "keep_scene_lights": True},
        "background": {"mode": "images", "image_dir": "/somewhere/photos", "hdri_dir": "/x/hdr"},
        "distractors": {"primitives": ["monkey", "torus"], "mesh_dir": "/m", "region_min": [-3.5, -2, 0.1]},
        "weather": {"kinds": ["fog"], "share": 0.1},
        "post": {"noise_std": {"min": 0.001, "max": 0.002}},
        "filters": {"min_visible_pixels": 9, "max_occlusion": 0.75, "drop_empty_frames": True},
        "mixture": [
            {"weight": 2.5, "name": "close", "camera": {"closeup_share": 1.0}, "classes": ["a"]},
            {"weight": 0.5, "post": {"blur_share": 1.0}},
        ],
        "preset": "all",
    }
    rich_config = config_mod.DatasetConfig.from_dict(rich)
    scratch = bpy.data.scenes.new("roundtrip")
    scratch.blendset.config.camera.distance.min = 1.0  # touch it so the group exists
    props_config.config_to_scene(rich_config, scratch)
    got, want = props_config.config_from_scene(scratch).to_dict(), rich_config.to_dict()
    assert got == want, [(k, got[k], want[k]) for k in want if got[k] != want[k]]
    lights = scratch.blendset.config.lights  # toggling buttons keeps the list's order: kept ones stay, new go last
    lights.types = {"SPOT", "AREA"}
    assert lights.types == {"SPOT", "AREA"} and lights.types_order == "SPOT,AREA", lights.types_order
    bpy.data.scenes.remove(scratch)

    # -- preview ------------------------------------------------------------------------------------------------
    s.output_dir = os.path.join(work, "dataset") + os.sep
    before = fingerprint(scene)
    assert bpy.ops.blendset.preview() == {"FINISHED"}
    img = bpy.data.images["Blendset Preview"]
    assert tuple(img.size) == (64, 48), tuple(img.size)
    first = preview_pixels()
    seed_first = s.preview_seed
    bpy.ops.blendset.preview()
    second = preview_pixels()
    assert s.preview_seed == seed_first + 1 and second != first, "a second click must draw a new sample"
    s.keep_seed = True
    bpy.ops.blendset.preview()
    assert s.preview_seed == seed_first + 1 and preview_pixels() == second, "Keep seed must reproduce the sample"
    px = [tuple(second[i : i + 3]) for i in range(0, len(second), 4)]
    result["preview_class_pixels"] = sum(
        1 for p in px if all(abs(a - b) < 0.003 for a, b in zip(p, CLASS_COLOR, strict=True))
    )
    assert result["preview_class_pixels"] > 0, "no box or label drawn in the class colour"
    bpy.data.images.remove(img)
    assert fingerprint(scene) == before, "preview changed the scene"
    # a preview of a class with keypoints (local: every labelled object has them) renders and draws them
    kp = pg.classes[0].keypoints
    kp.enabled, kp.source, kp.names = True, "local", "top"
    rows = f"{kp.path_from_id()}.coordinates"
    bpy.ops.blendset.row_edit(data_path=rows, action="ADD")
    kp.coordinates[0].value = (0.0, 0.0, 1.0)
    assert bpy.ops.blendset.preview() == {"FINISHED"}
    bpy.data.images.remove(bpy.data.images["Blendset Preview"])
    bpy.ops.blendset.row_edit(data_path=rows, action="REMOVE", index=0)
    kp.enabled, kp.names = False, ""
    assert fingerprint(scene) == before, "a keypoint preview changed the scene"

    # -- generate: cancel after one frame, then resume ------------------------------------------------------------
    assert bpy.ops.blendset.generate(cancel_after=1) == {"FINISHED"}
    out = bpy.path.abspath(s.output_dir)
    frames = sorted(os.listdir(os.path.join(out, "frames")))
    assert len(frames) == 1, frames
    with open(os.path.join(out, "annotations.json")) as f:
        assert len(json.load(f)["images"]) == 1, "cancel must finalize the frames that exist"
    progress = bpy.context.window_manager.blendset_progress
    assert not progress.running and "Cancelled" in progress.message, progress.message
    assert fingerprint(scene) == before, "a cancelled Generate changed the scene"
    assert bpy.ops.blendset.generate() == {"FINISHED"}
    assert len(os.listdir(os.path.join(out, "frames"))) == 3
    assert progress.done == 2 and progress.total == 2, (progress.done, progress.total)  # resumed: 2 new frames
    assert fingerprint(scene) == before, "Generate changed the scene"
    result["dataset"] = out
    # other settings into the same folder cannot resume: the panel says so and offers a new folder
    pg.seed = 99
    stale = [p for p in operators.find_problems(scene) if "other settings" in p.message]
    assert stale and stale[0].fix == "OUTPUT_NEW" and not bpy.ops.blendset.generate.poll()
    assert bpy.ops.blendset.preview.poll()  # Preview writes no dataset: not blocked by the folder
    bpy.ops.blendset.fix(kind="OUTPUT_NEW")
    assert bpy.path.abspath(s.output_dir).rstrip(os.sep) == out.rstrip(os.sep) + "_2"
    assert not operators.find_problems(scene) and bpy.ops.blendset.generate.poll()
    pg.seed = 0

    # the .blend for the headless hand-off (saved as a copy: the session's file path stays as it was)
    blend = os.path.join(work, "scene.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend, copy=True)
    result["blend"] = blend
    # a collection as a class: every object inside belongs to it; clearing removes the class again
    crates = bpy.data.collections.new("Crates")
    scene.collection.children.link(crates)
    crate = bpy.data.objects.new("Crate", bpy.data.meshes.new("Crate"))
    crates.objects.link(crate)
    bpy.context.view_layer.active_layer_collection = bpy.context.view_layer.layer_collection.children["Crates"]
    select_only(["Ground"])
    assert bpy.ops.blendset.label_selected(class_name="crate", class_id=4, target="COLLECTION") == {"FINISHED"}
    assert crates["blendset_class"] == "crate" and "blendset_class" not in bpy.data.objects["Ground"]
    bpy.ops.blendset.select_class(class_name="crate")
    assert [o.name for o in bpy.context.selected_objects] == ["Crate"]
    bpy.ops.blendset.clear_label(collection_name="Crates")
    assert "blendset_class" not in crates and "crate" not in [c.name for c in pg.classes]

    bpy.ops.preferences.addon_disable(module=module)
    assert not hasattr(bpy.types.Scene, "blendset")
    del addon
    # the legacy add-on route (manifest ignored, bl_info read) installs the same zip as module "blendset"
    assert bpy.ops.preferences.addon_install(filepath=zip_path) == {"FINISHED"}
    bpy.ops.preferences.addon_enable(module="blendset")
    assert hasattr(bpy.types.Scene, "blendset") and sys.modules["blendset"].bl_info["name"] == "Blendset"
    select_only(["Ground"])
    assert bpy.ops.blendset.label_selected(class_name="floor", class_id=5) == {"FINISHED"}
    bpy.ops.preferences.addon_disable(module="blendset")
    assert not hasattr(bpy.types.Scene, "blendset")
    result["legacy_install"] = True
    with open(os.path.join(work, "result.json"), "w") as f:
        json.dump(result, f, indent=2)
    print("ADDON_DRIVER_OK")


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)
