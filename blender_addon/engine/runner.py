"""The engine's entry point: :class:`DatasetRenderer` renders the frames of one shard into a dataset folder.

Lifecycle (the modal operator, the headless runner and the preview all use it)::

    with DatasetRenderer(scene, config, out_dir, shard=(0, 1)) as job:   # open(): validate, snapshot, passes
        for frame in job.pending_frames():                               # frames without a record: resume
            job.render_frame(frame)                                      # randomize, render, annotate, write
        job.finalize()                                                   # annotations.json (+ YOLO)
    # close(): the artist's scene is back exactly as it was

Each frame starts from the state ``open()`` set up: the per-frame changes are undone after every frame, so a
frame's content depends only on (config, seed, frame), whichever process renders it and in which order.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import bpy
import numpy as np

from ..shared import layout
from ..shared.annotate import InstanceInfo, annotate_frame
from ..shared.coco import write_json_atomic
from ..shared.config import ConfigError, DatasetConfig, config_hash, resolve_component
from ..shared.keypoints import category_fields, frame_keypoints
from ..shared.merge import coco_from_records, frames_of_shard, read_frame_records
from ..shared.progress import ProgressFn, Step
from ..shared.sampling import choose_component, frame_rng
from . import post, randomize
from .errors import EngineError
from .geometry import MeshCache, camera_matrices, silhouette_counts
from .keypoints import KeypointPlan, plan_keypoints, world_keypoints
from .passes import read_passes, set_exr_output, set_image_output, setup_render
from .png import strip_png_metadata
from .scene_state import SceneState
from .targets import Target, realize_instances, resolve_targets
from .writer import frame_paths, make_scratch_dir, prepare_output, write_config, write_frame

FrameHook = Callable[..., dict[str, float]]


class DatasetRenderer:
    """Renders ``count`` frames (default ``config.count``) of ``config`` into ``out_dir``; this process renders
    shard ``shard[0]`` of ``shard[1]`` (a contiguous block of frame numbers, see ``shared.merge``).

    ``progress`` gets one :class:`~shared.progress.Step` per finished frame: stage ``"render"``, ``done`` frames
    rendered by this renderer so far, ``total`` frames in the shard, ``values`` ``{"frame", "seconds"}``.
    ``frame_hook`` is a scene script's ``randomize(scene, rng, frame, classes)``, called after the built-in
    randomizers; what it returns is recorded as ``scene.<name>`` params.
    """

    def __init__(
        self,
        scene: Any,
        config: DatasetConfig,
        out_dir: str,
        shard: tuple[int, int] = (0, 1),
        count: int | None = None,
        progress: ProgressFn | None = None,
        frame_hook: FrameHook | None = None,
    ):
        self.scene = scene
        self.config = config
        self.out_dir = os.path.abspath(out_dir)
        self.shard = shard
        self.count = config.count if count is None else count
        self.progress = progress
        self.frame_hook = frame_hook
        self.targets: list[Target] = []
        self._keypoints: dict[int, KeypointPlan] = {}
        self.categories: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self._base: SceneState | None = None
        self._frame_state: SceneState | None = None
        self._meshes = MeshCache()
        self._caches = randomize.Caches()
        self._done = 0
        self.last_timings: dict[str, float] = {}
        self._tmp: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def __enter__(self) -> DatasetRenderer:
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open(self) -> None:
        """Check config, scene and output folder; then set the scene up for rendering (all undone by close)."""
        self._check_arguments()
        try:
            self.config.check_paths()
        except ConfigError as e:
            raise EngineError(e.message, e.path) from None
        self._base = SceneState()
        try:
            self._setup_scene()  # scene problems first: a folder is created only for a run that can start
            prepare_output(self.out_dir, self.config.output.normals)
            write_config(self.out_dir, self.config, self.count)
            self._tmp = make_scratch_dir(self.out_dir)
        except BaseException:
            self.close()
            raise

    def _check_arguments(self) -> None:
        i, n = self.shard
        if n < 1 or not 0 <= i < n:
            raise EngineError(f"shard must be i/n with 0 <= i < n, got {i}/{n}", "shard")
        if self.count < 0:
            raise EngineError(f"must be >= 0, got {self.count}", "count")
        if self.scene is None:
            raise EngineError("no scene to render")

    def _setup_scene(self) -> None:
        scene, state = self.scene, self._base
        targets, cats, notes = resolve_targets(scene, self.config)
        self.notes.extend(notes)
        if not targets:
            raise EngineError(
                "no labelled objects: mark objects with the custom property blendset_class (class name) and/or "
                "blendset_class_id, or list objects/collections under classes in the config",
                "classes",
            )
        scratch = state.track(bpy.data.collections.new("blendset_scratch"))
        scene.collection.children.link(scratch)
        self._scratch = scratch
        view_layer = setup_render(scene, self.config, state)
        self._view_layer = view_layer
        self.targets = realize_instances(scene, view_layer, targets, state, scratch)
        if len(self.targets) > 65535:
            raise EngineError(f"{len(self.targets)} instances: the 16-bit instance map holds at most 65535")
        self._assign_pass_indices()
        self._keypoints = plan_keypoints(self.config, self.targets)
        kp_fields = {c.name: category_fields(c.keypoints) for c in self.config.classes if c.keypoints is not None}
        self.categories = [
            {"id": c.id, "name": c.name, "supercategory": "blendset", **kp_fields.get(c.name, {})} for c in cats
        ]
        randomize.prepare(self._context(state), self.config)
        if scene.camera is None:
            raise EngineError("the scene has no camera: add one or configure the camera randomizer", "camera")

    def _assign_pass_indices(self) -> None:
        """Instance ids 1..N on the rendered parts; everything else 0, so distractors occlude but are never
        annotated."""
        state = self._base
        owned: dict[str, int] = {}
        for k, t in enumerate(self.targets, start=1):
            t.instance_id = k
            for part in t.parts:
                owned[part.name] = k
        for ob in self.scene.objects:
            state.set(ob, "pass_index", owned.get(ob.name, 0))

    def pending_frames(self) -> list[int]:
        """Frames of this shard that have no frame record yet (a rerun resumes where a kill stopped it)."""
        frames = frames_of_shard(self.count, *self.shard)
        return [f for f in frames if not os.path.exists(layout.frame_record_path(self.out_dir, f))]

    def close(self) -> None:
        """Restore the scene exactly and remove temporary files. Safe to call twice, and after errors."""
        if self._frame_state is not None:
            self._frame_state.restore()
            self._frame_state = None
        if self._base is not None:
            self._caches.release()
            problems = self._base.restore()
            self._base = None
            self.notes.extend(problems)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # -- one frame ------------------------------------------------------------------------------------------
    def render_frame(self, frame: int) -> dict[str, Any]:
        """Randomize (seeded by ``frame_rng(config.seed, frame)``), render, annotate, write; returns the record."""
        if self._base is None:
            raise EngineError("render_frame() before open(): use the renderer as a context manager")
        t0 = time.perf_counter()
        self.last_timings = {}
        self._frame_state = SceneState()
        try:
            record = self._render_frame(frame, self._frame_state)
        finally:
            self._frame_state.restore()
            self._frame_state = None
        self._done += 1
        if self.progress is not None:
            total = len(frames_of_shard(self.count, *self.shard))
            seconds = time.perf_counter() - t0
            self.progress(Step("render", self._done, total, {"frame": frame, "seconds": seconds}))
        return record

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        """Seconds per pipeline step of the last frame, in ``last_timings`` (benchmarks, never in records)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.last_timings[name] = self.last_timings.get(name, 0.0) + time.perf_counter() - t0

    def _context(self, state: SceneState) -> randomize.Context:
        return randomize.Context(
            scene=self.scene,
            view_layer=self._view_layer,
            targets=self.targets,
            state=state,
            base=self._base,
            scratch=self._scratch,
            caches=self._caches,
        )

    @contextmanager
    def apply_frame(self, frame: int) -> Iterator[dict[str, Any]]:
        """Set the scene up as ``render_frame(frame)`` would, without rendering, and undo it on exit. Yields
        the frame's params. For viewport previews and for timing Blender's own render of the same scene."""
        if self._base is None:
            raise EngineError("apply_frame() before open(): use the renderer as a context manager")
        state = SceneState()
        try:
            _, params, _, _ = self._randomize(frame, state)
            yield params
        finally:
            state.restore()

    def _randomize(self, frame: int, state: SceneState) -> tuple[DatasetConfig, dict[str, Any], int | None, Any]:
        """Apply the frame's randomization; returns (resolved config, params, component index, post rng)."""
        self._view_layer.update()  # matrix_world is stale after the last frame's restore until evaluated
        rngs = frame_rng(self.config.seed, frame).spawn(4)  # component, randomizers, scene hook, post
        component_index = None
        config = self.config
        if self.config.mixture:
            component_index = choose_component(rngs[0], config.mixture)
            config = resolve_component(config, config.mixture[component_index])
        ctx = self._context(state)
        classes = self.config.mixture[component_index].classes if component_index is not None else ()
        randomize.restrict_classes(ctx, classes)
        with self._timed("randomize"):
            params = randomize.apply_all(ctx, config, rngs[1])
            if self.frame_hook is not None:
                extra = self.frame_hook(self.scene, rngs[2], frame, tuple(classes))
                params.update({f"scene.{k}": float(v) for k, v in (extra or {}).items()})
        return config, params, component_index, rngs[3]

    def _render_frame(self, frame: int, state: SceneState) -> dict[str, Any]:
        config, params, component_index, post_rng = self._randomize(frame, state)
        return self._render_and_write(frame, config, params, component_index, post_rng)

    def _render_and_write(
        self, frame: int, config: DatasetConfig, params: dict[str, float], component: int | None, rng: Any
    ) -> dict[str, Any]:
        scene, tmp = self.scene, self._tmp
        with self._timed("silhouettes"):
            depsgraph = self._view_layer.depsgraph
            depsgraph.update()
            cams = camera_matrices(scene, scene.camera)
            visible_targets = [t for t in self.targets if any(not p.hide_render for p in t.parts)]
            infos = self._instance_infos(visible_targets, depsgraph, cams)
        kp_world = None
        if self._keypoints:  # frames of configs without keypoints do none of this
            with self._timed("keypoints"):
                kp_world = {
                    t.instance_id: world_keypoints(self._keypoints[t.instance_id], depsgraph, self._meshes)
                    for t in visible_targets
                    if t.instance_id in self._keypoints
                }
        with self._timed("render"):
            bpy.ops.render.render(write_still=False, scene=scene.name, layer=self._view_layer.name)
        with self._timed("save"):
            result = bpy.data.images["Render Result"]
            stem = layout.frame_stem(frame)
            exr = os.path.join(tmp, stem + ".exr")
            set_exr_output(scene, self._base)
            result.save_render(exr, scene=scene)
            ext = set_image_output(scene, config, self._base)
            rgb_file = os.path.join(tmp, stem + ext)
            result.save_render(rgb_file, scene=scene)
        with self._timed("read"):
            passes = read_passes(exr, self._view_layer.name, config.output.normals)
            if ext == ".png":
                strip_png_metadata(rgb_file)
        with self._timed("post"):
            rgb = post.post_process(rgb_file, config, rng, params, passes["depth"])
        with self._timed("annotate"):
            record, arrays, paths = self._annotate(
                frame,
                config,
                cams,
                params,
                component,
                infos,
                passes,
                rgb,
                visible_targets,
                ext,
                rgb_file,
                exr,
                kp_world,
            )
        with self._timed("write"):
            write_frame(paths, arrays, record)
            if os.path.exists(exr):
                os.unlink(exr)
        return record

    def _annotate(
        self, frame, config, cams, params, component, infos, passes, rgb, visible_targets, ext, rgb_file, exr, kp_world
    ):
        """Annotations, the frame record, and the arrays and paths the writer needs. ``kp_world``: instance id ->
        world keypoints (K x 3) of the frame's instances with keypoints, or None."""
        index = passes["index"]
        lut = np.zeros(len(self.targets) + 1, dtype=np.uint16)
        for t in self.targets:
            lut[t.instance_id] = t.category.id + 1
        if index.max(initial=0) > len(self.targets):
            index = np.where(index > len(self.targets), 0, index).astype(np.uint16)
        keypoints = None
        if kp_world:  # projected and tested against this frame's depth (planar Z, like the projection's depth)
            keypoints = frame_keypoints(kp_world, cams["K"], cams["world_from_camera"], passes["depth"])
        annotations, dropped = annotate_frame(
            index,
            infos,
            passes["depth"],
            rgb,
            config.filters,
            frame,
            polygons=config.output.polygons,
            keypoints=keypoints,
        )
        record = self._record(frame, config, cams, params, component, annotations, dropped, visible_targets, ext)
        arrays: dict[str, Any] = {"rgb_file": rgb_file, "instance": index, "semantic": lut[index]}
        arrays["depth"] = passes["depth"]
        if "normal" in passes:  # world space from Cycles -> camera space (Blender camera axes)
            arrays["normal"] = passes["normal"] @ cams["world_from_camera"][:3, :3]
        if config.output.depth_float == "exr":
            arrays["depth_exr_file"] = exr
        paths = frame_paths(self.out_dir, frame, ext, config)
        if config.filters.drop_empty_frames and not annotations:
            record["image"]["blendset"]["empty_dropped"] = True
        return record, arrays, paths

    def _instance_infos(self, targets: list[Target], depsgraph: Any, cams: dict[str, Any]) -> list[InstanceInfo]:
        cam_pos = cams["world_from_camera"][:3, 3]
        infos = []
        for t in targets:
            parts = [p for p in t.parts if not p.hide_render]
            vertices, triangles = self._meshes.world(parts, depsgraph)
            total, inframe, _ = silhouette_counts(vertices, triangles, cams)
            anchor = t.root if t.root in t.parts or t.root.type == "EMPTY" else t.parts[0]
            origin = np.array(anchor.matrix_world.translation, dtype=np.float64)
            infos.append(
                InstanceInfo(
                    instance_id=t.instance_id,
                    class_id=t.category.id,
                    class_name=t.category.name,
                    object_name=t.name,
                    silhouette_total=total,
                    silhouette_inframe=inframe,
                    distance=float(np.linalg.norm(origin - cam_pos)),
                )
            )
        return infos

    def _record(
        self,
        frame: int,
        config: DatasetConfig,
        cams: dict[str, Any],
        params: dict[str, float],
        component: int | None,
        annotations: list[dict[str, Any]],
        dropped: list[dict[str, Any]],
        visible: list[Target],
        ext: str,
    ) -> dict[str, Any]:
        shown = {t.name for t in visible}
        image = {
            "id": layout.image_id(frame),
            "file_name": layout.frame_stem(frame) + ext,
            "width": cams["width"],
            "height": cams["height"],
            "blendset": {
                "frame": frame,
                "seed": self.config.seed,
                "component": component,
                "camera": {
                    "K": cams["K"].tolist(),
                    "world_from_camera": cams["world_from_camera"].tolist(),
                    "focal_length_mm": cams["focal_length_mm"],
                    "sensor_width_mm": cams["sensor_width_mm"],
                },
                "params": {k: params[k] for k in sorted(params)},
                "dropped": dropped,
                "hidden": sorted(t.name for t in self.targets if t.name not in shown),
            },
        }
        return {
            "config_hash": config_hash(self.config),
            "image": image,
            "annotations": annotations,
            "categories": self.categories,
        }

    # -- the whole dataset ----------------------------------------------------------------------------------
    def finalize(self) -> dict[str, Any]:
        """Write ``annotations.json`` from every frame record in the folder (this shard's and any other's
        already there), plus the YOLO export when the config asks. Returns the COCO dict."""
        records = read_frame_records(self.out_dir)
        coco = coco_from_records(records, self.config, self.categories)
        write_json_atomic(os.path.join(self.out_dir, "annotations.json"), coco)
        if self.config.output.yolo:
            from ..shared.yolo import export_yolo

            export_yolo(coco, os.path.join(self.out_dir, "images"), os.path.join(self.out_dir, "yolo"))
        return coco


def preview_frame(scene: Any, config: DatasetConfig, frame_seed: int, out_dir: str) -> dict[str, Any]:
    """Render one frame with seed ``frame_seed`` into ``out_dir/preview-<seed>/`` (a fresh folder each call)
    and return ``{"record", "paths": {rgb, instance, semantic, depth}, "categories", "notes"}``; the scene is
    restored afterwards. The panel draws its overlay from these files."""
    cfg = dataclasses.replace(
        config, seed=int(frame_seed), count=1, output=dataclasses.replace(config.output, yolo=False)
    )
    folder = tempfile.mkdtemp(prefix=f"preview-{int(frame_seed)}-", dir=_ensure_dir(out_dir))
    with DatasetRenderer(scene, cfg, folder, count=1) as job:
        record = job.render_frame(0)
        paths = {
            k: v for k, v in frame_paths(folder, 0, os.path.splitext(record["image"]["file_name"])[1], cfg).items()
        }
        return {"record": record, "paths": paths, "categories": job.categories, "notes": list(job.notes)}


def _ensure_dir(path: str) -> str:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise EngineError(f"cannot create {path!r}: {e.strerror or e}", "out") from None
    return path
