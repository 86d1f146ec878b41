"""Generate: render the dataset into the output folder, one frame per step of a modal operator, with the
progress on the window's bar and the status line; Esc cancels and keeps the finished frames, a rerun resumes.

In background mode and from scripts (``bpy.ops.blendset.generate()``) the same steps run synchronously.
"""

from __future__ import annotations

import time
from typing import Any

import bpy

from ..shared import config as cfg
from ..shared.errors import BlendsetError
from ..shared.progress import Step
from .checks import blocked
from .common import config_or_report, output_dir


class _Job:
    """One Generate run: the engine's renderer, the frames left, and timing for the ETA."""

    def __init__(self, scene: bpy.types.Scene, config: cfg.DatasetConfig, out_dir: str):
        from ..engine import DatasetRenderer

        self.renderer = DatasetRenderer(scene, config, out_dir, progress=self._on_frame)
        self.renderer.open()
        self.pending = list(self.renderer.pending_frames())
        self.total = len(self.pending)
        self.done = 0
        self.started = time.monotonic()

    def _on_frame(self, step: Step) -> None:
        """The engine's report after each finished frame: frames rendered by this job so far."""
        self.done = step.done

    def step(self) -> None:
        self.renderer.render_frame(self.pending[self.done])

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
        return not blocked(cls, context, generate=True)

    def _start(self, context: bpy.types.Context) -> bool:
        config = config_or_report(self, context.scene)
        if config is None:
            return False
        try:
            self._job = _Job(context.scene, config, output_dir(context.scene))
        except BlendsetError as err:
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
        if not self._start(context):
            return {"CANCELLED"}
        cancelled = False
        try:
            while not self._job.finished:
                if self.cancel_after and self._job.done >= self.cancel_after:
                    cancelled = True
                    break
                self._step(context)
        except BlendsetError as err:
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
        if event.type == "ESC" or (self.cancel_after and self._job.done >= self.cancel_after):
            return self._end_modal(context, cancelled=True)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if self._job.finished:
            return self._end_modal(context, cancelled=False)
        try:
            self._step(context)
        except BlendsetError as err:
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


classes = (BLENDSET_OT_generate,)
