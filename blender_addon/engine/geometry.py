"""Camera matrices and evaluated mesh geometry as numpy arrays (``foreach_get``, no per-vertex Python loop).

The unoccluded silhouette of each instance is rasterized from this geometry by ``shared.raster.silhouette``;
comparing it with the instance's visible pixels in the object-index pass gives occlusion and truncation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..shared import raster


def camera_matrices(scene: Any, cam_ob: Any) -> dict[str, Any]:
    """``K`` (3x3, pixels, top-left origin), ``world_from_camera`` (4x4, Blender camera convention: -Z forward,
    +Y up, unit scale) and the lens values, for the scene's render resolution."""
    r = scene.render
    w = r.resolution_x * r.resolution_percentage // 100
    h = r.resolution_y * r.resolution_percentage // 100
    cam = cam_ob.data
    K = raster.K_from_blender(
        focal_mm=cam.lens,
        sensor_width_mm=cam.sensor_width,
        sensor_fit=cam.sensor_fit,
        width=w,
        height=h,
        shift_x=cam.shift_x,
        shift_y=cam.shift_y,
        sensor_height_mm=cam.sensor_height,
    )
    m = cam_ob.matrix_world.normalized()
    world_from_camera = np.array([list(row) for row in m], dtype=np.float64)
    return {
        "K": np.asarray(K, dtype=np.float64),
        "world_from_camera": world_from_camera,
        "focal_length_mm": float(cam.lens),
        "sensor_width_mm": float(cam.sensor_width),
        "width": w,
        "height": h,
    }


# Object types without geometry: an instance's parts include them (empties marking keypoints, an armature),
# they render nothing, and to_mesh() refuses them.
NO_GEOMETRY = {"EMPTY", "ARMATURE", "LATTICE", "CAMERA", "LIGHT", "LIGHT_PROBE", "SPEAKER"}


class MeshCache:
    """Local-space vertices and triangles per object, cached while the object's data cannot change by itself
    (no modifiers, not a curve/text); evaluated again every frame otherwise."""

    def __init__(self) -> None:
        self._static: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def local(self, ob: Any, depsgraph: Any) -> tuple[np.ndarray, np.ndarray]:
        if ob.type in NO_GEOMETRY:
            return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int32)
        key = ob.as_pointer()
        static = ob.type == "MESH" and len(ob.modifiers) == 0 and ob.data is not None and not ob.data.shape_keys
        if static and key in self._static:
            return self._static[key]
        ob_eval = ob.evaluated_get(depsgraph)
        mesh = ob_eval.to_mesh()
        try:
            mesh.calc_loop_triangles()
            n_v = len(mesh.vertices)
            n_t = len(mesh.loop_triangles)
            verts = np.empty(n_v * 3, dtype=np.float32)
            mesh.vertices.foreach_get("co", verts)
            tris = np.empty(n_t * 3, dtype=np.int32)
            mesh.loop_triangles.foreach_get("vertices", tris)
        finally:
            ob_eval.to_mesh_clear()
        result = (verts.reshape(-1, 3).astype(np.float64), tris.reshape(-1, 3))
        if static:
            self._static[key] = result
        return result

    def world(self, obs: list[Any], depsgraph: Any) -> tuple[np.ndarray, np.ndarray]:
        """All triangles of ``obs`` in world space, concatenated: ``(vertices Nx3, triangles Mx3)``."""
        all_v, all_t, offset = [], [], 0
        for ob in obs:
            v, t = self.local(ob, depsgraph)
            if len(t) == 0:
                continue
            m = np.array([list(row) for row in ob.evaluated_get(depsgraph).matrix_world], dtype=np.float64)
            all_v.append(v @ m[:3, :3].T + m[:3, 3])
            all_t.append(t + offset)
            offset += len(v)
        if not all_v:
            return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int32)
        return np.concatenate(all_v), np.concatenate(all_t)


def silhouette_counts(
    vertices: np.ndarray, triangles: np.ndarray, cams: dict[str, Any]
) -> tuple[int, int, np.ndarray | None]:
    """``(total, inframe, inframe_mask)`` pixel counts of the geometry's silhouette from the camera."""
    if len(triangles) == 0:
        return 0, 0, None
    pixels, depths = raster.project_points(cams["K"], cams["world_from_camera"], vertices)
    total, mask = raster.silhouette(pixels, depths, triangles, cams["width"], cams["height"])
    return int(total), int(mask.sum()), mask
