"""Render one dataset on a Ray cluster: one Blender process per shard, retried elsewhere when it dies.

Why Ray and not a home-made scheduler: Ray already places tasks by resource (``num_cpus``, ``num_gpus``; it sets
``CUDA_VISIBLE_DEVICES`` for GPU tasks), notices dead workers and nodes, and re-runs their tasks. What Blendset
adds is what makes a re-run safe:

- Frames are split into contiguous ranges (shard ``i/n``). Every frame draws from
  ``shared.sampling.frame_rng(seed, frame)``, so a frame is the same whichever node renders it, and a retried
  shard gives the same frames as the first attempt.
- Each shard task runs the ordinary single-shard command (``blendset render --shard i/n --out SHARD_DIR``) in
  a child process. That command resumes from the frame records already in ``SHARD_DIR``, so a retry after a
  kill re-renders only the unfinished frames. The child dies with the Ray worker (``PR_SET_PDEATHSIG``), so a
  killed worker never leaves a second writer behind.
- A child killed by a signal (preemption, OOM killer) raises :class:`ShardPreempted`, which Ray retries; a child
  that exits with an error (bad scene, bad config) raises :class:`ShardFailed`, which is not retried, because
  the next attempt would fail the same way.
- Progress comes from a small actor that every task reports its frame-record count to, so it covers every node.
- At the end the shard folders are merged with ``shared.merge`` (ids renumbered, categories and config hash
  checked). With an fsspec URL as ``out``, each shard renders to a local folder, is published to
  ``OUT/shards/..`` with a completion marker (:mod:`trainer.rendering.storage`), and the merge reads them back.

The worker side (one shard task) and the driver side (placing, watching, merging) are one retry protocol and are
read together, which is why they share this module of about 470 lines.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from shared.atomic import is_temp, write_text
from shared.errors import BlendsetError
from shared.merge import ShardError
from trainer.rendering import storage

__all__ = [
    "ShardFailed",
    "ShardPreempted",
    "RenderClusterError",
    "MissingInputError",
    "shard_frames",
    "shard_name",
    "shard_location",
    "blender_command",
    "render_with_ray",
    "check_shards",
]

DEFAULT_MAX_RETRIES = 3
POLL_SECONDS = 0.5
LOG_TAIL_CHARS = 3000


class ShardFailed(BlendsetError, RuntimeError):
    """A shard's render exited with an error; retrying would fail the same way."""


class ShardPreempted(BlendsetError, RuntimeError):
    """A shard's render process was killed by a signal (preemption, OOM killer); Ray retries these."""


class RenderClusterError(BlendsetError, RuntimeError):
    """The cluster render could not finish; the message names the shard and its log."""


class MissingInputError(BlendsetError, FileNotFoundError):
    """A scene, scene script or Blender binary given to :func:`render_with_ray` does not exist."""


# ---------------------------------------------------------------------------------------------------------------
# Pure helpers: the shard plan


def shard_frames(count: int, index: int, num_shards: int) -> range:
    """The global frames of shard ``index`` of ``num_shards``: the engine's contiguous block (``shared.merge``)."""
    from shared.merge import frames_of_shard

    if num_shards < 1 or not 0 <= index < num_shards:
        raise ShardError(f"shard {index}/{num_shards}: need 0 <= index < num_shards")
    frames = frames_of_shard(count, index, num_shards)
    start = frames[0] if frames else index * count // num_shards
    return range(start, start + len(frames))


def shard_name(index: int, num_shards: int) -> str:
    """Folder name of one shard; zero-padded so listings sort in frame order."""
    return f"shard-{index:05d}-of-{num_shards:05d}"


def shard_location(out: str, index: int, num_shards: int) -> str:
    """Where shard ``index`` lives under the output (a local path or a URL prefix)."""
    if storage.is_url(out):
        return f"{out.rstrip('/')}/shards/{shard_name(index, num_shards)}"
    return os.path.join(out, "shards", shard_name(index, num_shards))


def blender_command(
    config_path: str,
    shard_dir: str,
    count: int,
    seed: int,
    index: int,
    num_shards: int,
    scene: str | None,
    scene_script: str | None,
    blender: str | None,
) -> list[str]:
    """What a shard task runs: the launcher's Blender command for the job ``blendset render --shard I/N`` runs.

    The task starts Blender itself rather than through ``blendset render``, so the Blender process is its
    direct child and dies with it. ``blender=None``: the bpy module of this Python when it has one, else the
    binary the launcher finds (env ``BLENDER``, PATH).
    """
    from trainer.rendering import launcher

    if blender is None and not launcher.have_bpy_module():
        blender = launcher.find_blender(None)
        if blender is None:
            raise ShardFailed(f"{socket.gethostname()}: no bpy module and no Blender binary (BLENDER, PATH)")
    job = launcher.RenderJob(config_path, shard_dir, scene, scene_script, count, seed, f"{index}/{num_shards}")
    return launcher.build_command(job, blender)


def count_frame_records(folder: str) -> int:
    """Frames finished in a dataset folder: a frame record is written last, so its presence means done (a record
    still being written, an atomic writer's temp file, does not count)."""
    try:
        names = os.listdir(os.path.join(folder, "frames"))
        return sum(1 for name in names if name.endswith(".json") and not is_temp(name))
    except FileNotFoundError:
        return 0


# ---------------------------------------------------------------------------------------------------------------
# What runs on a worker


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL when the Ray worker dies, so a retry never races a zombie writer."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _local_work_dir(target: str) -> str:
    """Local folder a shard renders into: the target itself, or a per-URL cache folder (stable, so it resumes)."""
    if not storage.is_url(target):
        return target
    key = hashlib.sha256(target.encode()).hexdigest()[:24]
    root = os.environ.get(storage.CACHE_ENV) or os.path.join(tempfile.gettempdir(), "blendset-cache")
    return os.path.join(root, "render", key)


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL_CHARS))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def run_shard(
    config_text: str,
    target: str,
    count: int,
    seed: int,
    index: int,
    num_shards: int,
    scene: str | None,
    scene_script: str | None,
    blender: str | None,
    board: Any = None,
) -> dict:
    """Render one shard to ``target`` (path or URL) by running the single-shard command; resumable.

    The config travels as text, so worker nodes need not see the driver's disk. The render's output goes to a
    log file next to the shard folder, and its tail is put into the error when it fails.
    """
    started = time.time()
    if board is not None:
        board.started.remote(index, socket.gethostname())
    if storage.is_url(target) and _published(target):
        frames = len(shard_frames(count, index, num_shards))
        if board is not None:
            board.report.remote(index, frames)
        return {"index": index, "seconds": 0.0, "host": socket.gethostname(), "skipped": "already published"}
    work = os.path.abspath(_local_work_dir(target))
    parent, name = os.path.split(work)  # config and log sit beside the shard folder, named after it
    os.makedirs(parent, exist_ok=True)
    config_path = os.path.join(parent, f".{name}.config.json")
    write_text(config_path, config_text)
    log_path = os.path.join(parent, f"{name}.log")
    cmd = blender_command(config_path, work, count, seed, index, num_shards, scene, scene_script, blender)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log:
        log.write(f"\n=== attempt on {socket.gethostname()} at {time.ctime()}: {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
        returncode = _wait_reporting(proc, work, index, board)
    if returncode < 0:
        raise ShardPreempted(f"Blender was killed by signal {-returncode} on {socket.gethostname()} (log: {log_path})")
    if returncode != 0:
        engine = _engine_error(log_path)
        if engine:
            raise ShardFailed(f"{engine} (Blender exited {returncode}; log: {log_path})")
        raise ShardFailed(f"Blender exited {returncode}; log: {log_path}; its end:\n{_tail(log_path)}")
    if storage.is_url(target):
        storage.publish(work, target)
        shutil.rmtree(work, ignore_errors=True)  # uploaded with its marker; a retry now skips this shard
        os.unlink(config_path)
    return {"index": index, "seconds": time.time() - started, "host": socket.gethostname(), "skipped": None}


def _engine_error(log_path: str) -> str | None:
    """The engine's last ``BLENDSET_ERROR`` message in the log, which names the bad field or file."""
    from trainer.rendering.launcher import parse_line

    message = None
    for line in _tail(log_path).splitlines():
        parsed = parse_line(line)
        if parsed and parsed[0] == "ERROR":
            message = str(parsed[1])
    return message


def _wait_reporting(proc: subprocess.Popen, work: str, index: int, board: Any) -> int:
    last = -1
    while True:
        try:
            returncode = proc.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            returncode = None
        done = count_frame_records(work)
        if board is not None and done != last:
            board.report.remote(index, done)
            last = done
        if returncode is not None:
            return returncode


def _published(target: str) -> bool:
    try:
        storage.read_marker(target)
    except storage.StorageError:
        return False
    return True


class ProgressBoard:
    """Ray actor: the latest frame count and the attempts of every shard, read by the driver to show progress."""

    def __init__(self, num_shards: int):
        self.done = [0] * num_shards
        self.attempts: list[list[str]] = [[] for _ in range(num_shards)]

    def started(self, index: int, host: str) -> None:
        self.attempts[index].append(host)

    def report(self, index: int, done: int) -> None:
        self.done[index] = done

    def snapshot(self) -> tuple[list[int], list[list[str]]]:
        return list(self.done), [list(a) for a in self.attempts]


# ---------------------------------------------------------------------------------------------------------------
# The driver


def _ensure_ray(address: str | None) -> bool:
    """Connect to ``address`` or start a small local cluster; True when we started it (and must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None:
        kwargs["object_store_memory"] = 100 * 1024 * 1024  # tasks exchange only small dicts
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:  # no cluster at the address, or a bad address
        raise RenderClusterError(f"cannot start or reach a Ray cluster at {address or 'a new local one'}: {e}") from e
    return True


def render_with_ray(
    config_path: str,
    out: str,
    count: int,
    seed: int,
    num_shards: int,
    address: str | None = None,
    scene: str | None = None,
    scene_script: str | None = None,
    blender: str | None = None,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Render ``count`` frames of ``config_path`` as ``num_shards`` Ray tasks, then merge them into ``out``.

    ``address``: a Ray cluster (``auto``, ``ray://host:10001``) or None for a local one. ``num_cpus`` /
    ``num_gpus``: resources each shard task holds (one Blender process each). ``out``: a local folder or fsspec
    URL; shards go to ``OUT/shards/shard-IIIII-of-NNNNN`` and the merged dataset to ``OUT``. ``progress(done,
    total)`` is called as frames finish anywhere in the cluster.

    Returns a summary: per-shard frame ranges, hosts and attempts, render and merge seconds, frames per second.
    Raises ``ConfigError`` before starting anything for a bad config, and :class:`RenderClusterError` naming the
    shard (and its log) when a shard fails for good.
    """
    from shared.config import load_config

    if num_shards < 1:
        raise ShardError(f"num_shards must be >= 1, got {num_shards}")
    if count < 0:
        raise ShardError(f"count must be >= 0, got {count}")
    load_config(config_path)  # fail here, not on every worker
    num_shards = min(num_shards, max(count, 1))  # no empty shards
    with open(config_path, encoding="utf-8") as f:
        config_text = f.read()
    for label, path in (("scene", scene), ("scene script", scene_script), ("blender", blender)):
        if path and not storage.is_url(path) and os.sep in path and not os.path.exists(path):
            raise MissingInputError(f"{label} {path!r} does not exist")
    scene = os.path.abspath(scene) if scene else None
    scene_script = os.path.abspath(scene_script) if scene_script else None
    if not storage.is_url(out):
        out = os.path.abspath(out)
    targets = [shard_location(out, i, num_shards) for i in range(num_shards)]

    import ray

    started_ray = _ensure_ray(address)
    try:
        t0 = time.time()
        shards = _run_shards(
            ray, config_text, targets, count, seed, scene, scene_script, blender, num_cpus, num_gpus, progress
        )
        render_seconds = time.time() - t0
        t1 = time.time()
        merged = _merge(targets, out, count)
        merge_seconds = time.time() - t1
    finally:
        if started_ray:
            ray.shutdown()
    return {
        "out": out,
        "count": count,
        "num_shards": num_shards,
        "shards": shards,
        "retried": [s["index"] for s in shards if len(s["attempts"]) > 1],
        "render_seconds": render_seconds,
        "merge_seconds": merge_seconds,
        "frames_per_second": count / render_seconds if render_seconds > 0 else float("nan"),
        "merge": merged,
    }


def _run_shards(
    ray: Any,
    config_text: str,
    targets: list[str],
    count: int,
    seed: int,
    scene: str | None,
    scene_script: str | None,
    blender: str | None,
    num_cpus: float,
    num_gpus: float,
    progress: Callable[[int, int], None] | None,
) -> list[dict]:
    n = len(targets)
    board = ray.remote(num_cpus=0)(ProgressBoard).remote(n)
    task = ray.remote(run_shard).options(
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        max_retries=DEFAULT_MAX_RETRIES,
        retry_exceptions=[ShardPreempted],
        name="blendset-shard",
    )
    refs = {
        task.remote(config_text, targets[i], count, seed, i, n, scene, scene_script, blender, board): i
        for i in range(n)
    }
    results: dict[int, dict] = {}
    pending = list(refs)
    last_done = -1
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=POLL_SECONDS)
            for ref in ready:
                index = refs[ref]
                try:
                    results[index] = ray.get(ref)
                except Exception as e:  # RayTaskError wraps ShardFailed, or retries ran out
                    raise RenderClusterError(f"shard {index}/{n} failed ({targets[index]}): {_cause(e)}") from e
            done = sum(ray.get(board.snapshot.remote())[0])
            if progress is not None and done != last_done:
                progress(min(done, count), count)
                last_done = done
        _, attempts = ray.get(board.snapshot.remote())
        if progress is not None and last_done != count:  # every task succeeded: each rendered all its frames
            progress(count, count)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        ray.kill(board)  # on a long-lived cluster the actor would otherwise outlive this render
    summary = []
    for i in range(n):
        frames = shard_frames(count, i, n)
        summary.append({
            "index": i,
            "target": targets[i],
            "frames": [frames.start, frames.stop],
            "attempts": attempts[i],
            "seconds": results[i]["seconds"],
            "skipped": results[i]["skipped"],
        })  # fmt: skip
    return summary


def _cause(error: BaseException) -> str:
    cause = getattr(error, "cause", None)
    return str(cause) if cause is not None else str(error)


def check_shards(locals_: list[str], count: int) -> None:
    """Every shard folder holds every frame of its block; otherwise name the shard, its frames and its folder."""
    from shared.merge import frame_ranges

    n = len(locals_)
    problems = []
    for i, folder in enumerate(locals_):
        want = set(shard_frames(count, i, n))
        have = set()
        if os.path.isdir(os.path.join(folder, "frames")):
            have = {int(name[:-5]) for name in os.listdir(os.path.join(folder, "frames"))
                    if name.endswith(".json") and name[:-5].isdigit()}  # fmt: skip
        missing = sorted(want - have)
        if missing:
            problems.append(f"shard {i}/{n} ({folder}) lacks frames {frame_ranges(missing)}")
    if problems:
        raise RenderClusterError("cannot merge: " + "; ".join(problems))


def _merge(targets: list[str], out: str, count: int) -> dict:
    """Merge the shards into ``out`` with the engine's merge (config hash and categories must agree; the YOLO
    export comes with it when the config asks for one)."""
    from shared import merge as merge_lib

    inputs = [storage.localize(t) for t in targets]
    check_shards(inputs, count)
    if not storage.is_url(out):
        coco = merge_lib.merge_datasets(inputs, out)
    else:
        with tempfile.TemporaryDirectory(prefix="blendset-merge-") as local:
            coco = merge_lib.merge_datasets(inputs, local)
            storage.publish(local, out)
    return {"images": len(coco["images"]), "annotations": len(coco["annotations"])}
