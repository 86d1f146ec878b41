"""Operators: thin adapters between the panel and the engine.

Each operator reads the scene's settings through ``props_config.config_from_scene`` (schema errors become
``self.report({'ERROR'}, ...)``), calls the engine, and reports. The engine is imported inside ``execute`` so
enabling the add-on stays fast. :func:`find_problems` is the validation the panel shows before anything runs;
``poll`` uses it to grey out Preview and Generate.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import bpy
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import properties, props_config
from .shared import config as cfg

PREVIEW_IMAGE = "Blendset Preview"


# ---------------------------------------------------------------------------------------------------------------
# Validation shown in the panel


@dataclass(frozen=True)
class Problem:
    """One reason the scene cannot run yet, and the fix operator's ``kind`` when there is a one-click fix."""

    message: str
    fix: str = ""
    fix_label: str = ""


def output_dir(scene: bpy.types.Scene) -> str:
    return bpy.path.abspath(scene.blendset.output_dir)


def _output_problem(scene: bpy.types.Scene) -> Problem | None:
    raw = scene.blendset.output_dir
    fix = ("OUTPUT_TEMP", "Use a temporary folder")
    if not raw.strip():
        return Problem("No output folder set", *fix)
    if raw.startswith("//") and not bpy.data.filepath:
        return Problem("Output folder is relative to the .blend, which is not saved yet", *fix)
    path = output_dir(scene)
    if os.path.exists(path) and not os.path.isdir(path):
        return Problem(f"Output folder {path} is a file", *fix)
    probe = path.rstrip(os.sep) or os.sep
    while not os.path.exists(probe):  # the nearest existing folder is where the new ones would be made
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        return Problem(f"Output folder {path} is not writable", *fix)
    return None


def has_labels(scene: bpy.types.Scene, config: cfg.DatasetConfig) -> bool:
    """Whether anything in the scene is labelled, by the config's classes or (if enabled) by custom properties."""
    if any(spec.objects or spec.collections for spec in config.classes):
        return True
    if not config.label_properties:
        return False
    if any(properties.label_of(ob) or "category_id" in ob for ob in scene.objects):
        return True
    return any(properties.label_of(c) and c.all_objects for c in bpy.data.collections)


def _dataset_problem(scene: bpy.types.Scene, config: cfg.DatasetConfig) -> Problem | None:
    """An output folder that already holds a dataset made with other settings cannot be resumed into."""
    import json

    path = os.path.join(output_dir(scene), "config.json")
    if not os.path.isfile(path):
        return None
    fix = ("OUTPUT_NEW", "Use a new folder")
    try:
        with open(path, encoding="utf-8") as f:
            existing = cfg.DatasetConfig.from_dict(json.load(f))
    except (OSError, ValueError) as err:
        return Problem(f"Output folder has an unreadable config.json ({err})", *fix)
    if cfg.config_hash(existing) != cfg.config_hash(config):
        return Problem("Output folder holds a dataset made with other settings", *fix)
    return None


def find_problems(scene: bpy.types.Scene, generate: bool = True) -> list[Problem]:
    """Everything that stops Generate (or, with ``generate=False``, Preview, which needs no output folder),
    each named, most with a fix button."""
    try:
        config = props_config.config_from_scene(scene)
    except cfg.ConfigError as err:
        return [Problem(f"Setting {err.path or 'config'}: {err.message}")]
    problems = []
    if not has_labels(scene, config):
        problems.append(
            Problem("No labelled object: select objects and mark them as a class", "LABEL", "Mark selected as class")
        )
    if generate:
        out = _output_problem(scene) or _dataset_problem(scene, config)
        if out is not None:
            problems.append(out)
    try:
        config.check_paths()
    except cfg.ConfigError as err:
        fixes = {
            "background.hdri_dir": ("HDRI_DEFAULT", "Use Blender's HDRIs"),
            "background.image_dir": ("BACKGROUND_HDRI", "Use HDRIs instead"),
            "distractors.mesh_dir": ("MESH_NONE", "Use primitives only"),
        }
        problems.append(Problem(f"{err.path}: {err.message}", *fixes.get(err.path, ("", ""))))
    return problems


def _blocked(cls: type, context: bpy.types.Context, generate: bool) -> bool:
    if context.window_manager.blendset_progress.running:
        cls.poll_message_set("A Generate job is running")
        return True
    problems = find_problems(context.scene, generate)
    if problems:
        cls.poll_message_set(problems[0].message)
        return True
    return False


def _config_or_report(op: bpy.types.Operator, scene: bpy.types.Scene) -> cfg.DatasetConfig | None:
    try:
        return props_config.config_from_scene(scene)
    except cfg.ConfigError as err:
        op.report({"ERROR"}, str(err))
        return None


# ---------------------------------------------------------------------------------------------------------------
# Labels


def _upsert_class(config_pg: Any, name: str, class_id: int, color: Any) -> str | None:
    """Add or update the class in the config's class list; returns an error message on an id clash."""
    for spec in config_pg.classes:
        if spec.name != name and spec.id == class_id:
            return f"class id {class_id} is already used by class {spec.name!r}"
    for spec in config_pg.classes:
        if spec.name == name:
            spec.id, spec.color = class_id, color
            return None
    spec = config_pg.classes.add()
    spec.name, spec.id, spec.color = name, class_id, color
    return None


def _class_in_use(name: str) -> bool:
    labelled = [properties.label_of(ob) for ob in bpy.data.objects] + [
        properties.label_of(c) for c in bpy.data.collections
    ]
    return any(lab and lab[0] == name for lab in labelled)


class BLENDSET_OT_label_selected(bpy.types.Operator):
    """Mark the selected objects (or the active collection) as one class"""

    bl_idname = "blendset.label_selected"
    bl_label = "Mark as Class"
    bl_options = {"REGISTER", "UNDO"}

    class_name: bpy.props.StringProperty(name="Class", description="Class name", default="object")
    class_id: bpy.props.IntProperty(name="Id", description="Class id (0 is a valid id)", min=0)
    color: bpy.props.FloatVectorProperty(
        name="Colour", subtype="COLOR", size=3, min=0.0, max=1.0, default=(0.9, 0.3, 0.1)
    )
    target: bpy.props.EnumProperty(
        name="Label",
        items=[
            ("OBJECTS", "Selected objects", "Label each selected object"),
            ("COLLECTION", "Active collection", "Label the active collection (all its objects)"),
        ],
        default="OBJECTS",
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if context.selected_objects or context.collection not in (None, context.scene.collection):
            return True
        cls.poll_message_set("Select objects (or make a collection active) first")
        return False

    def invoke(self, context: bpy.types.Context, event: Any) -> set[str]:
        s = context.scene.blendset
        self.class_name, self.class_id, self.color = s.label_name, s.label_id, s.label_color
        return self.execute(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        name = self.class_name.strip()
        if not name:
            self.report({"ERROR"}, "A class needs a name")
            return {"CANCELLED"}
        if self.target == "COLLECTION":
            coll = context.collection
            if coll is None or coll == context.scene.collection:
                self.report({"ERROR"}, "No active collection (the scene collection cannot be labelled)")
                return {"CANCELLED"}
            blocks: list[Any] = [coll]
        else:
            blocks = list(context.selected_objects)
        if not blocks:
            self.report({"ERROR"}, "Nothing selected")
            return {"CANCELLED"}
        error = _upsert_class(context.scene.blendset.config, name, self.class_id, self.color)
        if error:
            self.report({"ERROR"}, error)
            return {"CANCELLED"}
        for block in blocks:
            properties.write_label(block, name, self.class_id, tuple(self.color))
        self.report({"INFO"}, f"Labelled {len(blocks)} as {name!r} (id {self.class_id})")
        return {"FINISHED"}


class BLENDSET_OT_clear_label(bpy.types.Operator):
    """Remove the class label from the selected objects, or from the named object or collection"""

    bl_idname = "blendset.clear_label"
    bl_label = "Clear Label"
    bl_options = {"REGISTER", "UNDO"}

    object_name: bpy.props.StringProperty(
        name="Object", description="Object to clear (empty: the selection)", options={"SKIP_SAVE"}
    )
    collection_name: bpy.props.StringProperty(
        name="Collection", description="Collection to clear", options={"SKIP_SAVE"}
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        blocks: list[Any] = []
        if self.object_name:
            blocks.append(bpy.data.objects.get(self.object_name))
        if self.collection_name:
            blocks.append(bpy.data.collections.get(self.collection_name))
        if not (self.object_name or self.collection_name):
            blocks = list(context.selected_objects)
        if None in blocks:
            self.report({"ERROR"}, f"No object or collection named {self.object_name or self.collection_name!r}")
            return {"CANCELLED"}
        names = {lab[0] for lab in (properties.label_of(b) for b in blocks) if lab}
        for block in blocks:
            properties.clear_label(block)
        config_pg = context.scene.blendset.config
        for name in names:  # a class nothing carries any more leaves the list, unless the config names members
            for i, spec in enumerate(config_pg.classes):
                if spec.name == name and not spec.objects and not spec.collections and not _class_in_use(name):
                    config_pg.classes.remove(i)
                    break
        self.report({"INFO"}, f"Cleared {len(blocks)} label(s)")
        return {"FINISHED"}


class BLENDSET_OT_select_class(bpy.types.Operator):
    """Select every object of a class (empty: the class of the active row in the list)"""

    bl_idname = "blendset.select_class"
    bl_label = "Select Class"
    bl_options = {"REGISTER", "UNDO"}

    class_name: bpy.props.StringProperty(name="Class", options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        name = self.class_name
        if not name:
            objects = bpy.data.objects
            i = context.scene.blendset.object_index
            lab = properties.label_of(objects[i]) if 0 <= i < len(objects) else None
            if lab is None:
                self.report({"ERROR"}, "Pick a labelled object in the list first")
                return {"CANCELLED"}
            name = lab[0]
        members = set()
        for coll in bpy.data.collections:
            lab = properties.label_of(coll)
            if lab and lab[0] == name:
                members.update(ob.name for ob in coll.all_objects)
        members.update(ob.name for ob in context.scene.objects if (properties.label_of(ob) or ("",))[0] == name)
        for spec in context.scene.blendset.config.classes:
            if spec.name == name:
                members.update(n.strip() for n in spec.objects.split(props_config.NAME_SEPARATOR) if n.strip())
        view_layer = context.view_layer
        for ob in context.scene.objects:
            if ob.visible_get(view_layer=view_layer) or ob.name in members:
                ob.select_set(ob.name in members and ob.name in view_layer.objects)
        chosen = [ob for ob in context.scene.objects if ob.name in members]
        if chosen:
            view_layer.objects.active = chosen[0]
        self.report({"INFO"}, f"Selected {len(chosen)} object(s) of class {name!r}")
        return {"FINISHED"}


class BLENDSET_OT_names_from_selection(bpy.types.Operator):
    """Fill this list of object names with the selected objects"""

    bl_idname = "blendset.names_from_selection"
    bl_label = "Use Selected Objects"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    data_path: bpy.props.StringProperty(description="Setting to fill, from the scene (blendset.config.pose.surfaces)")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if context.selected_objects:
            return True
        cls.poll_message_set("Select the objects first")
        return False

    def execute(self, context: bpy.types.Context) -> set[str]:
        owner_path, _, prop = self.data_path.rpartition(".")
        try:
            owner = context.scene.path_resolve(owner_path)
        except ValueError:
            self.report({"ERROR"}, f"No setting {self.data_path!r}")
            return {"CANCELLED"}
        names = sorted(ob.name for ob in context.selected_objects)
        bad = [n for n in names if props_config.NAME_SEPARATOR in n]
        if bad or not owner_path.startswith("blendset.config") or not hasattr(owner, prop):
            self.report({"ERROR"}, f"Cannot use object name {bad[0]!r} (it has a comma)" if bad else "Not a name list")
            return {"CANCELLED"}
        setattr(owner, prop, props_config.NAME_SEPARATOR.join(names))
        return {"FINISHED"}


class BLENDSET_OT_collection_edit(bpy.types.Operator):
    """Add or remove an entry of a list setting (classes, mixture components)"""

    bl_idname = "blendset.collection_edit"
    bl_label = "Edit List"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    field: bpy.props.EnumProperty(items=[("classes", "Classes", ""), ("mixture", "Mixture", "")])
    action: bpy.props.EnumProperty(items=[("ADD", "Add", ""), ("REMOVE", "Remove", "")])

    def execute(self, context: bpy.types.Context) -> set[str]:
        pg = context.scene.blendset.config
        coll, index_name = getattr(pg, self.field), f"{self.field}_index"
        if self.action == "ADD":
            item = coll.add()
            if self.field == "classes":
                used = {c.id for c in coll}
                item.name, item.id = f"class_{len(coll) - 1}", next(i for i in range(len(coll) + 1) if i not in used)
            else:
                item.name, item.weight = f"component_{len(coll) - 1}", 1.0
            setattr(pg, index_name, len(coll) - 1)
        else:
            i = getattr(pg, index_name)
            if not 0 <= i < len(coll):
                return {"CANCELLED"}
            coll.remove(i)
            setattr(pg, index_name, max(0, i - 1))
        return {"FINISHED"}


# ---------------------------------------------------------------------------------------------------------------
# Presets, import, export, fixes


def _preset_items(_self: Any, _context: Any) -> list[tuple[str, str, str]]:
    text = {
        "none": "Seed 003 'none': one angle, grey background, fixed light",
        "angle": "Seed 003 'angle': azimuth within +-90 degrees, grey background",
        "angle_bg": "Seed 003 'angle_bg': varying angle over varying backgrounds",
        "all": "Seed 003 'all': angle, background, light, focal length, position and distance",
        "tabletop": "Objects upright on their support surfaces, camera above, some clutter",
        "closeups": "Half the frames are close-ups where one target fills most of the image",
    }
    return [
        (
            name,
            name.replace("_", " + ").capitalize() if name != "angle_bg" else "Angle + background",
            text.get(name, name),
        )
        for name in cfg.PRESETS
    ]


class BLENDSET_OT_apply_preset(bpy.types.Operator):
    """Set the randomizers to a preset (keeps classes, render and output settings)"""

    bl_idname = "blendset.apply_preset"
    bl_label = "Apply Preset"
    bl_options = {"REGISTER", "UNDO"}

    preset: bpy.props.EnumProperty(name="Preset", items=_preset_items)

    def execute(self, context: bpy.types.Context) -> set[str]:
        config = _config_or_report(self, context.scene)
        if config is None:
            return {"CANCELLED"}
        try:
            props_config.config_to_scene(cfg.apply_preset(config, self.preset), context.scene)
        except cfg.ConfigError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Preset {self.preset!r} applied")
        return {"FINISHED"}


class BLENDSET_OT_export_config(bpy.types.Operator, ExportHelper):
    """Write the settings as a config JSON that the headless runner and `blendset render` accept unchanged"""

    bl_idname = "blendset.export_config"
    bl_label = "Export Config"
    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        config = _config_or_report(self, context.scene)
        if config is None:
            return {"CANCELLED"}
        try:
            cfg.save_config(config, self.filepath)
        except OSError as err:
            self.report({"ERROR"}, f"Cannot write {self.filepath}: {err.strerror}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Config written to {self.filepath}")
        return {"FINISHED"}


class BLENDSET_OT_import_config(bpy.types.Operator, ImportHelper):
    """Load a config JSON into the panel (every setting is replaced)"""

    bl_idname = "blendset.import_config"
    bl_label = "Import Config"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            config = cfg.load_config(self.filepath)
            props_config.config_to_scene(config, context.scene)
        except cfg.ConfigError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Config loaded from {self.filepath}")
        return {"FINISHED"}


class BLENDSET_OT_fix(bpy.types.Operator):
    """Apply the suggested fix for a problem shown in the panel"""

    bl_idname = "blendset.fix"
    bl_label = "Fix"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    kind: bpy.props.EnumProperty(
        items=[
            ("OUTPUT_TEMP", "Use a temporary folder", "Write the dataset under the system's temporary folder"),
            ("HDRI_DEFAULT", "Use Blender's HDRIs", "Clear the HDRI folder: use the 8 HDRIs Blender ships"),
            ("BACKGROUND_HDRI", "Use HDRIs", "Switch the background to HDRI mode"),
            ("MESH_NONE", "Primitives only", "Clear the distractor mesh folder"),
            ("OUTPUT_NEW", "Use a new folder", "Write into a new folder next to the current one"),
        ]
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = context.scene.blendset
        if self.kind == "OUTPUT_TEMP":
            s.output_dir = os.path.join(tempfile.gettempdir(), "blendset_dataset") + os.sep
        elif self.kind == "HDRI_DEFAULT":
            s.config.background.hdri_dir = ""
        elif self.kind == "BACKGROUND_HDRI":
            s.config.background.mode = "hdri"
        elif self.kind == "MESH_NONE":
            s.config.distractors.mesh_dir = ""
        elif self.kind == "OUTPUT_NEW":
            s.output_dir = _next_free(output_dir(context.scene))
        return {"FINISHED"}


def _next_free(path: str) -> str:
    """``/x/data/`` -> ``/x/data_2/`` (or the next number not taken)."""
    base = path.rstrip(os.sep)
    n = 2
    while os.path.exists(f"{base}_{n}"):
        n += 1
    return f"{base}_{n}{os.sep}"


# ---------------------------------------------------------------------------------------------------------------
# Preview


def _pixels(path: str, non_color: bool) -> Any:
    """Top-down float array (H, W, 4) of an image file, read through Blender and removed again."""
    import numpy as np

    img = bpy.data.images.load(path, check_existing=False)
    try:
        if non_color:
            img.colorspace_settings.name = "Non-Color"
        w, h = img.size
        buf = np.empty(w * h * 4, dtype=np.float32)
        img.pixels.foreach_get(buf)
        return buf.reshape(h, w, 4)[::-1]
    finally:
        bpy.data.images.remove(img)


def show_preview(rgba: Any) -> bpy.types.Image:
    """Put a top-down (H, W, 4) array into the "Blendset Preview" image and show it in open Image Editors."""
    import numpy as np

    h, w = rgba.shape[:2]
    img = bpy.data.images.get(PREVIEW_IMAGE)
    if img is None:
        img = bpy.data.images.new(PREVIEW_IMAGE, w, h, alpha=True)
    elif tuple(img.size) != (w, h):
        img.scale(w, h)
    img.pixels.foreach_set(np.ascontiguousarray(rgba[::-1], dtype=np.float32).ravel())
    img.update()
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = img
                area.tag_redraw()
    return img


def render_preview(scene: bpy.types.Scene, config: cfg.DatasetConfig, seed: int) -> tuple[bpy.types.Image, dict]:
    """Render one frame through the engine and build the overlay image. Returns it and the engine's result
    (``{"record", "paths", "categories", "notes"}``); the engine's scratch folder is removed afterwards."""
    import shutil

    from . import overlay
    from .engine import preview_frame

    root = os.path.join(tempfile.gettempdir(), f"blendset_preview_{os.getpid()}")
    result = preview_frame(scene, config, seed, root)
    try:
        rgb = _pixels(result["paths"]["rgb"], non_color=False)
        instance = _pixels(result["paths"]["instance"], non_color=True)[..., 0]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    coco = {"categories": result["categories"], "annotations": result["record"]["annotations"]}
    ids = (instance * 65535.0 + 0.5).astype("uint16")
    colors = {c.name: tuple(c.color) for c in config.classes}
    return show_preview(overlay.compose(rgb, ids, coco, colors)), result


class BLENDSET_OT_preview(bpy.types.Operator):
    """Render one randomized frame with its boxes, masks and class names into the "Blendset Preview" image"""

    bl_idname = "blendset.preview"
    bl_label = "Preview"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not _blocked(cls, context, generate=False)

    def execute(self, context: bpy.types.Context) -> set[str]:
        from .engine import EngineError

        scene = context.scene
        config = _config_or_report(self, scene)
        if config is None:
            return {"CANCELLED"}
        s = scene.blendset
        if not s.keep_seed:
            s.preview_seed += 1
        try:
            _img, result = render_preview(scene, config, s.preview_seed)
        except EngineError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        count = len(result["record"]["annotations"])
        self.report({"INFO"}, f"Preview of sample {s.preview_seed}: {count} annotation(s) in image {PREVIEW_IMAGE!r}")
        for note in result.get("notes", []):
            self.report({"WARNING"}, note)
        return {"FINISHED"}


# ---------------------------------------------------------------------------------------------------------------
# Generate


class _Job:
    """One Generate run: the engine's renderer, the frames left, and timing for the ETA."""

    def __init__(self, scene: bpy.types.Scene, config: cfg.DatasetConfig, out_dir: str):
        from .engine import DatasetRenderer

        self.renderer = DatasetRenderer(scene, config, out_dir)
        self.renderer.open()
        self.pending = list(self.renderer.pending_frames())
        self.total = len(self.pending)
        self.done = 0
        self.started = time.monotonic()

    def step(self) -> None:
        self.renderer.render_frame(self.pending[self.done])
        self.done += 1

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    def eta(self) -> float:
        if not self.done:
            return 0.0
        return (time.monotonic() - self.started) / self.done * (self.total - self.done)

    def close(self) -> None:
        """Write annotations for what exists and give the artist's scene back, whatever happened."""
        try:
            self.renderer.finalize()
        finally:
            self.renderer.close()


def _status(job: _Job) -> str:
    return f"Blendset: frame {job.done}/{job.total}, about {job.eta():.0f} s left (Esc cancels)"


class BLENDSET_OT_generate(bpy.types.Operator):
    """Render the dataset into the output folder, one frame per step; Esc cancels and keeps finished frames, a
    rerun resumes"""

    bl_idname = "blendset.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}  # writes files and restores the scene itself: nothing for undo to track

    cancel_after: bpy.props.IntProperty(
        name="Cancel after",
        description="Stop as if Esc were pressed after this many frames (0: run to the end)",
        min=0,
        default=0,
        options={"SKIP_SAVE", "HIDDEN"},
    )

    _job: _Job | None = None
    _timer: Any = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not _blocked(cls, context, generate=True)

    def _start(self, context: bpy.types.Context) -> bool:
        from .engine import EngineError

        config = _config_or_report(self, context.scene)
        if config is None:
            return False
        try:
            self._job = _Job(context.scene, config, output_dir(context.scene))
        except EngineError as err:
            self.report({"ERROR"}, str(err))
            return False
        progress = context.window_manager.blendset_progress
        progress.running, progress.done, progress.total = True, 0, self._job.total
        progress.eta_s, progress.message = 0.0, "starting"
        return True

    def _step(self, context: bpy.types.Context) -> None:
        job = self._job
        job.step()
        progress = context.window_manager.blendset_progress
        progress.done, progress.eta_s, progress.message = job.done, job.eta(), _status(job)

    def _finish(self, context: bpy.types.Context, cancelled: bool) -> None:
        job, self._job = self._job, None
        progress = context.window_manager.blendset_progress
        try:
            job.close()
        finally:
            progress.running = False
            progress.message = (
                f"Cancelled after {job.done} new frame(s); rerun to resume"
                if cancelled
                else f"Done: {job.done} frame(s) written"
            )
        self.report({"WARNING" if cancelled else "INFO"}, progress.message)

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Synchronous run (background mode, scripts): every pending frame, or ``cancel_after`` of them."""
        from .engine import EngineError

        if not self._start(context):
            return {"CANCELLED"}
        cancelled = False
        try:
            while not self._job.finished:
                if self.cancel_after and self._job.done >= self.cancel_after:
                    cancelled = True
                    break
                self._step(context)
        except EngineError as err:
            self.report({"ERROR"}, str(err))
            cancelled = True
        finally:
            self._finish(context, cancelled)
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: Any) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        if not self._start(context):
            return {"CANCELLED"}
        wm = context.window_manager
        wm.progress_begin(0, max(self._job.total, 1))
        self._timer = wm.event_timer_add(0.05, window=context.window)
        wm.modal_handler_add(self)
        context.workspace.status_text_set(_status(self._job))
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: Any) -> set[str]:
        from .engine import EngineError

        if event.type == "ESC" or (self.cancel_after and self._job.done >= self.cancel_after):
            return self._end_modal(context, cancelled=True)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if self._job.finished:
            return self._end_modal(context, cancelled=False)
        try:
            self._step(context)
        except EngineError as err:
            self.report({"ERROR"}, str(err))
            return self._end_modal(context, cancelled=True)
        except Exception as err:  # never leave the job open: the scene would stay randomized
            self.report({"ERROR"}, f"Generate stopped: {type(err).__name__}: {err}")
            return self._end_modal(context, cancelled=True)
        context.window_manager.progress_update(self._job.done)
        context.workspace.status_text_set(_status(self._job))
        for area in context.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()
        return {"RUNNING_MODAL"}

    def _end_modal(self, context: bpy.types.Context, cancelled: bool) -> set[str]:
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        context.workspace.status_text_set(None)
        self._finish(context, cancelled)
        return {"FINISHED"}

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator (file load, window closed): finalize what exists and restore the scene."""
        if self._job is not None:
            wm = context.window_manager
            wm.event_timer_remove(self._timer)
            wm.progress_end()
            if context.workspace is not None:
                context.workspace.status_text_set(None)
            self._finish(context, cancelled=True)


classes = (
    BLENDSET_OT_label_selected,
    BLENDSET_OT_clear_label,
    BLENDSET_OT_select_class,
    BLENDSET_OT_names_from_selection,
    BLENDSET_OT_collection_edit,
    BLENDSET_OT_apply_preset,
    BLENDSET_OT_export_config,
    BLENDSET_OT_import_config,
    BLENDSET_OT_fix,
    BLENDSET_OT_preview,
    BLENDSET_OT_generate,
)
register, unregister = bpy.utils.register_classes_factory(classes)
