"""Startup script for Blender with its UI (under Xvfb): a demo scene, the add-on installed from the built zip,
the Blendset tab open with every panel expanded, then screenshots and quit.

    run_ui_blender.sh 1100x3900 -P tests/ui/panel_screenshot.py -- ZIP OUT_DIR

Writes OUT_DIR/window.png (the whole window), OUT_DIR/preview.png (the "Blendset Preview" image after one
Preview click, saved from Blender) and OUT_DIR/regions.json (the sidebar's rectangle in window pixels, so the
test can crop the panel). Quits with status 0 when done; a failure prints a traceback and quits with 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback

import bpy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE = "bl_ext.user_default.blendset"
ZIP, OUT = sys.argv[sys.argv.index("--") + 1 :][:2]


def fail() -> None:
    traceback.print_exc()
    sys.stdout.flush()
    os._exit(1)


def build_scene() -> None:
    for ob in list(bpy.data.objects):
        bpy.data.objects.remove(ob)
    sys.path.insert(0, os.path.join(ROOT, "scenes", "basic"))
    import build

    build.build()
    for ob in bpy.data.objects:
        for key in ("blendset_class", "blendset_class_id"):
            if key in ob:
                del ob[key]


def label(names: list[str], name: str, class_id: int, color: tuple[float, float, float]) -> None:
    for ob in bpy.context.scene.objects:
        ob.select_set(ob.name in names)
    bpy.context.view_layer.objects.active = bpy.data.objects[names[0]]
    bpy.ops.blendset.label_selected(class_name=name, class_id=class_id, color=color)


def setup() -> None:
    bpy.context.preferences.view.show_splash = False
    bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default", enable_on_install=True)
    build_scene()
    label(["Cube"], "cube", 0, (0.9, 0.3, 0.1))
    label(["Sphere"], "sphere", 1, (0.2, 0.8, 0.3))
    label(["Cone"], "cone", 2, (0.2, 0.5, 0.95))
    scene = bpy.context.scene
    bpy.ops.blendset.apply_preset(preset="tabletop")
    pg = scene.blendset.config
    pg.name, pg.count = "tabletop_demo", 200
    pg.pose.enabled, pg.pose.surfaces = True, "Ground"
    pg.render.resolution, pg.render.samples = (160, 120), 4
    pg.background.mode = "color"
    scene.blendset.output_dir = os.path.join(OUT, "dataset") + os.sep
    add_cube_keypoints(pg)
    expand_all_panels()


def add_cube_keypoints(pg) -> None:
    """The cube class's keypoints block in use (its four top corners, a skeleton around them), drawn in the
    panel and over the preview."""
    pg.classes_index = 0
    kp = pg.classes[0].keypoints
    kp.enabled, kp.source = True, "local"
    names = ["c0", "c1", "c2", "c3"]
    kp.names = ",".join(names)
    for k, corner in enumerate([(-0.5, -0.5, 0.5), (0.5, -0.5, 0.5), (0.5, 0.5, 0.5), (-0.5, 0.5, 0.5)]):
        bpy.ops.blendset.row_edit(data_path=f"{kp.path_from_id()}.coordinates", action="ADD")
        kp.coordinates[k].value = corner
        bpy.ops.blendset.row_edit(data_path=f"{kp.path_from_id()}.skeleton", action="ADD")
        kp.skeleton[k].v0, kp.skeleton[k].v1 = names[k], names[(k + 1) % 4]


def expand_all_panels() -> None:
    """Blender has no API for a panel's open state: register the tab's panels again without DEFAULT_CLOSED
    (same classes, same order), which is what an artist clicking every header would see."""
    ui = sys.modules[f"{MODULE}.ui"]
    panels = [c for c in (*ui._head, *ui._sections, *ui._tail) if issubclass(c, bpy.types.Panel)]
    for cls in reversed(panels):
        bpy.utils.unregister_class(cls)
    for cls in panels:
        cls.bl_options = set(getattr(cls, "bl_options", set())) - {"DEFAULT_CLOSED"}
        bpy.utils.register_class(cls)


def view3d() -> tuple[bpy.types.Window, bpy.types.Area]:
    win = bpy.context.window_manager.windows[0]
    areas = [a for a in win.screen.areas if a.type == "VIEW_3D"]
    return win, max(areas, key=lambda a: a.width * a.height)


def open_tab() -> float | None:
    try:
        win, area = view3d()
        # the first-start "Quick Setup" splash would cover the panel: Esc closes it
        subprocess.run(["xdotool", "key", "Escape"], check=False, timeout=30)
        area.spaces.active.show_region_ui = True
        with bpy.context.temp_override(window=win, area=area):
            bpy.ops.screen.screen_full_area()  # the viewport gets the window's whole height for the tall tab
        bpy.app.timers.register(select_tab, first_interval=1.0)
    except Exception:
        fail()
    return None


def select_tab() -> float | None:
    try:
        _win, area = view3d()
        region = next(r for r in area.regions if r.type == "UI")
        region.active_panel_category = "Blendset"
        area.tag_redraw()
        with bpy.context.temp_override(window=_win, area=area, region=region):
            bpy.ops.blendset.preview()
        img = bpy.data.images["Blendset Preview"]
        img.save(filepath=os.path.join(OUT, "preview.png"))
        bpy.app.timers.register(shoot, first_interval=3.0)
    except Exception:
        fail()
    return None


def shoot() -> float | None:
    try:
        win, area = view3d()
        region = next(r for r in area.regions if r.type == "UI")
        rect = {
            "x": region.x,
            "y": region.y,
            "width": region.width,
            "height": region.height,
            "window_width": win.width,
            "window_height": win.height,
        }
        with open(os.path.join(OUT, "regions.json"), "w") as f:
            json.dump(rect, f)
        # Blender's own screenshot reads the GL front buffer, which is black under Xvfb's software GL: grab
        # the X display instead (ImageMagick's import, installed in the Blender chroot).
        subprocess.run(["import", "-window", "root", os.path.join(OUT, "window.png")], check=True, timeout=60)
        bpy.app.timers.register(start_generate, first_interval=0.5)
    except Exception:
        fail()
    return None


STATE = {"esc_sent": False}


def start_generate() -> float | None:
    """Generate through the modal operator (timer-driven, as a click runs it), then Esc after two frames."""
    try:
        win, area = view3d()
        region = next(r for r in area.regions if r.type == "UI")
        pg = bpy.context.scene.blendset.config
        pg.count, pg.render.resolution, pg.render.samples = 4, (64, 48), 1
        with bpy.context.temp_override(window=win, area=area, region=region):
            assert bpy.ops.blendset.generate("INVOKE_DEFAULT") == {"RUNNING_MODAL"}
        bpy.app.timers.register(watch_generate, first_interval=0.2)
    except Exception:
        fail()
    return None


def watch_generate() -> float | None:
    try:
        progress = bpy.context.window_manager.blendset_progress
        if progress.running and progress.done >= 2 and not STATE["esc_sent"]:  # after a redraw showed frame 1
            subprocess.run(["import", "-window", "root", os.path.join(OUT, "generating.png")], check=True, timeout=60)
            subprocess.run(["xdotool", "key", "Escape"], check=True, timeout=30)
            STATE["esc_sent"] = True
        if not progress.running:
            done = {
                "done": progress.done,
                "total": progress.total,
                "message": progress.message,
                "esc_sent": STATE["esc_sent"],
            }
            with open(os.path.join(OUT, "generate.json"), "w") as f:
                json.dump(done, f)
            bpy.app.timers.register(quit_blender, first_interval=0.2)
            return None
    except Exception:
        fail()
    return 0.2


def quit_blender() -> None:
    sys.stdout.flush()
    os._exit(0)


def watchdog() -> None:
    print("panel_screenshot.py: gave up after 150 s (a step never finished)")
    sys.stdout.flush()
    os._exit(3)


try:
    os.makedirs(OUT, exist_ok=True)
    bpy.app.timers.register(watchdog, first_interval=150.0)
    setup()
    bpy.app.timers.register(open_tab, first_interval=1.0)
except Exception:
    fail()
