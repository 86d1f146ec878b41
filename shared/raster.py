"""Pinhole projection and triangle silhouettes: the unoccluded footprint of an object, without rendering.

Occlusion is measured as ``1 - visible / silhouette_inframe``, where the silhouette is the union of the object's
projected triangles. Rasterising it here costs a few milliseconds per object and does not depend on the renderer,
its samples or other objects. Conventions:

- Camera: Blender's. ``world_from_camera`` is the camera object's world matrix; the camera looks down its -Z
  axis with +Y up and +X right. ``K`` is the usual OpenCV-style intrinsic matrix for image coordinates with x to
  the right, y down, and pixel (row i, col j) covering ``[j, j+1) x [i, i+1)``: its centre is at
  ``(j + 0.5, i + 0.5)``.
- ``depth_along_view``: distance along the viewing axis (Blender's Z pass convention), positive in front.
- Sampling: a pixel belongs to the silhouette when its centre lies inside or on the edge of a projected triangle
  (edges inclusive, so a closed mesh leaves no cracks).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["K_from_blender", "project_points", "silhouette", "NEAR_CLIP"]

NEAR_CLIP = 1e-4  # metres in front of the camera: triangles are clipped to this plane
_CANVAS_BUDGET = 1_000_000  # sample points for the unbounded-plane count before switching to a coarser grid
_CHUNK = 2_000_000  # candidate (triangle, pixel) pairs tested per vectorised batch


def K_from_blender(
    focal_mm: float,
    sensor_width_mm: float,
    sensor_fit: str,
    width: int,
    height: int,
    shift_x: float = 0.0,
    shift_y: float = 0.0,
    sensor_height_mm: float | None = None,
) -> np.ndarray:
    """3x3 intrinsics of a Blender perspective camera (pixel aspect 1) for a ``width`` x ``height`` render.

    ``sensor_fit``: ``AUTO`` fits ``sensor_width_mm`` to the larger image side, ``HORIZONTAL`` to the width,
    ``VERTICAL`` fits ``sensor_height_mm`` (required then) to the height, as Blender does. Shifts are in units
    of the fitted side, as in Blender's camera panel (positive ``shift_x`` moves the view right, so the optical
    axis lands left of centre).
    """
    fit = sensor_fit.upper()
    if fit == "AUTO":
        fit = "HORIZONTAL" if width >= height else "VERTICAL"
        sensor = sensor_width_mm
    elif fit == "HORIZONTAL":
        sensor = sensor_width_mm
    elif fit == "VERTICAL":
        if sensor_height_mm is None:
            raise ValueError("sensor_fit VERTICAL needs sensor_height_mm (Blender uses the sensor height then)")
        sensor = sensor_height_mm
    else:
        raise ValueError(f"sensor_fit must be AUTO, HORIZONTAL or VERTICAL, got {sensor_fit!r}")
    if focal_mm <= 0 or sensor <= 0 or width < 1 or height < 1:
        raise ValueError("focal length, sensor size and resolution must be positive")
    fitted = width if fit == "HORIZONTAL" else height
    f = focal_mm / sensor * fitted
    cx = width / 2.0 - shift_x * fitted
    cy = height / 2.0 + shift_y * fitted
    return np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])


def project_points(
    K: np.ndarray, world_from_camera: np.ndarray, points_world: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Project world points: ``(pixels Nx2 (x right, y down), depth_along_view N)``.

    Points behind the camera get a negative depth; their pixel coordinates are still ``K p / z`` (mirrored
    through the centre), which is what :func:`silhouette` needs to clip triangles against the near plane.
    A point exactly on the camera plane gets non-finite pixels.
    """
    M = np.asarray(world_from_camera, dtype=np.float64)
    P = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
    R, t = M[:3, :3], M[:3, 3]
    cam = (P - t) @ R  # camera_from_world applied row-wise: R^T (p - t)
    # Blender camera (x right, y up, looking down -z) -> OpenCV camera (x right, y down, looking down +z).
    cv = np.stack([cam[:, 0], -cam[:, 1], -cam[:, 2]], axis=1)
    h = cv @ np.asarray(K, dtype=np.float64).T
    depth = cv[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        pixels = h[:, :2] / depth[:, None]
    return pixels, depth


def _clip_near(pixels: np.ndarray, depths: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Triangles (T x 3 x 2 pixel coordinates) of the mesh's part in front of the near plane.

    Clipping happens in homogeneous image coordinates ``(u*d, v*d, d)``, which are linear in the camera-space
    position, so the cut is exact. A triangle with one vertex behind becomes a quad (two triangles); with two
    behind, a smaller triangle; with three, nothing.
    """
    hom = np.concatenate([pixels * depths[:, None], depths[:, None]], axis=1)  # (N, 3)
    d = depths[tris]  # (M, 3)
    front = d > NEAR_CLIP
    nfront = front.sum(axis=1)
    out = [pixels[tris[nfront == 3]]]
    for case in (1, 2):
        sel = tris[nfront == case]
        if sel.size == 0:
            continue
        f = front[nfront == case]
        # Roll each triangle so the odd vertex (the lone front one for case 1, the lone back one for case 2)
        # comes first; rolling keeps the winding.
        odd = np.argmax(f if case == 1 else ~f, axis=1)
        idx = (odd[:, None] + np.arange(3)[None, :]) % 3
        v = np.take_along_axis(sel, idx, axis=1)
        a, b, c = hom[v[:, 0]], hom[v[:, 1]], hom[v[:, 2]]

        def cut(p, q):
            t = (p[:, 2] - NEAR_CLIP) / (p[:, 2] - q[:, 2])
            r = p + t[:, None] * (q - p)
            return r[:, :2] / r[:, 2:3]

        pa, pb, pc = a[:, :2] / a[:, 2:3], b[:, :2] / b[:, 2:3], c[:, :2] / c[:, 2:3]
        if case == 1:  # a in front: triangle a, ab, ac
            out.append(np.stack([pa, cut(a, b), cut(a, c)], axis=1))
        else:  # a behind: quad ab, b, c, ca -> two triangles
            ab, ca = cut(b, a), cut(c, a)
            out.append(np.stack([ab, pb, pc], axis=1))
            out.append(np.stack([ab, pc, ca], axis=1))
    return np.concatenate(out, axis=0) if out else np.zeros((0, 3, 2))


def _raster_count(
    tri: np.ndarray, x0: float, y0: float, nx: int, ny: int, step: float, want_mask: bool
) -> tuple[int, np.ndarray | None]:
    """Union of triangles sampled at ``(x0 + (i + 0.5) * step, y0 + (j + 0.5) * step)``, i < nx, j < ny.

    Returns the number of covered samples and, if asked, the ny x nx mask. Scanline spans: for every triangle
    and every sample row it covers, the three edge functions give the first and last covered sample
    analytically; each span adds +1 at its start and -1 after its end in a difference array, and one cumulative
    sum along the rows turns that into coverage counts. Cost: rows of triangles plus the canvas, not the area
    of every triangle's bounding box.
    """
    if tri.shape[0] == 0 or nx <= 0 or ny <= 0:
        return 0, (np.zeros((max(ny, 0), max(nx, 0)), dtype=bool) if want_mask else None)
    g = (tri - np.array([x0, y0])) / step - 0.5  # sample (i, j) sits at integer grid coordinates (i, j)
    lo = np.maximum(np.ceil(g.min(axis=1)).astype(np.int64), 0)
    hi = np.minimum(np.floor(g.max(axis=1)).astype(np.int64), [nx - 1, ny - 1])
    area2 = (g[:, 1, 0] - g[:, 0, 0]) * (g[:, 2, 1] - g[:, 0, 1]) - (g[:, 2, 0] - g[:, 0, 0]) * (
        g[:, 1, 1] - g[:, 0, 1]
    )
    keep = (hi[:, 0] >= lo[:, 0]) & (hi[:, 1] >= lo[:, 1]) & (np.abs(area2) > 1e-12)
    g, lo, hi, area2 = g[keep], lo[keep], hi[keep], area2[keep]
    g = np.where((area2 < 0)[:, None, None], g[:, ::-1], g)  # make every triangle counter-clockwise
    # Edge functions: a sample is inside when A x + B y + C >= 0 for all three edges (edges inclusive).
    e0, e1 = g, np.roll(g, -1, axis=1)
    A = e0[:, :, 1] - e1[:, :, 1]  # (T, 3)
    B = e1[:, :, 0] - e0[:, :, 0]
    C = e0[:, :, 0] * e1[:, :, 1] - e0[:, :, 1] * e1[:, :, 0]
    eps = 1e-9 * (np.abs(A) + np.abs(B) + np.abs(C))
    rows = hi[:, 1] - lo[:, 1] + 1
    width = nx + 1
    diff = np.zeros(ny * width, dtype=np.int64)
    order = np.argsort(rows)
    start = 0
    while start < order.size:  # batches bound the memory of the span arrays
        csum = np.cumsum(rows[order[start:]])
        end = start + max(1, int(np.searchsorted(csum, _CHUNK, side="right")))
        sel = order[start:end]
        counts = rows[sel]
        t = np.repeat(sel, counts)
        y = (lo[t, 1] + np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)).astype(float)
        left = lo[t, 0].astype(float)
        right = hi[t, 0].astype(float)
        empty = np.zeros(t.size, dtype=bool)
        for k in range(3):
            a = A[t, k]
            rhs = -(B[t, k] * y + C[t, k]) - eps[t, k]  # constraint: a * x >= rhs
            with np.errstate(divide="ignore", invalid="ignore"):
                bound = rhs / a
            left = np.where(a > 0, np.maximum(left, np.ceil(bound)), left)
            right = np.where(a < 0, np.minimum(right, np.floor(bound)), right)
            empty |= (a == 0) & (rhs > 0)
        ok = ~empty & (left <= right)
        yi = y[ok].astype(np.int64)
        np.add.at(diff, yi * width + left[ok].astype(np.int64), 1)
        np.add.at(diff, yi * width + right[ok].astype(np.int64) + 1, -1)
        start = end
    mask = np.cumsum(diff.reshape(ny, width), axis=1)[:, :nx] > 0
    return int(np.count_nonzero(mask)), (mask if want_mask else None)


def silhouette(
    pixels: np.ndarray, depths: np.ndarray, triangles: np.ndarray, width: int, height: int
) -> tuple[int, np.ndarray]:
    """Rasterise the union of projected triangles: ``(total_pixels, inframe_mask)``.

    ``pixels``/``depths`` come from :func:`project_points`; ``triangles`` is M x 3 vertex indices. Parts behind
    the near plane (:data:`NEAR_CLIP`) are clipped away (exactly, in homogeneous coordinates). ``inframe_mask``
    (height x width, bool) is exact at pixel-centre sampling. ``total_pixels`` counts the silhouette on the
    unbounded image plane, inside plus outside the frame: exactly while the box around the frame and the
    silhouette holds at most 1 million pixels; beyond that the outside part is counted on a coarser grid (each
    sample standing for ``step**2`` pixels), which is plenty for a truncation ratio and bounds the cost.
    """
    P = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    D = np.asarray(depths, dtype=np.float64).reshape(-1)
    T = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    if P.shape[0] != D.shape[0]:
        raise ValueError(f"{P.shape[0]} pixels but {D.shape[0]} depths")
    if T.size and (T.min() < 0 or T.max() >= P.shape[0]):
        raise ValueError("triangle indices out of range")
    tri = _clip_near(P, D, T)
    tri = tri[np.all(np.isfinite(tri), axis=(1, 2))]
    if tri.shape[0] == 0:
        return 0, np.zeros((height, width), dtype=bool)
    xmin, ymin = np.floor(tri.reshape(-1, 2).min(axis=0))
    xmax, ymax = np.ceil(tri.reshape(-1, 2).max(axis=0))
    if xmin >= 0 and ymin >= 0 and xmax <= width and ymax <= height:  # all inside the frame
        total, inframe = _raster_count(tri, 0.0, 0.0, width, height, 1.0, True)
        assert inframe is not None
        return total, inframe
    # One exact pass over the frame and the silhouette's box together, while that stays small.
    ux0, uy0 = min(xmin, 0.0), min(ymin, 0.0)
    ux1, uy1 = max(xmax, float(width)), max(ymax, float(height))
    if (ux1 - ux0) * (uy1 - uy0) <= _CANVAS_BUDGET:
        _, canvas = _raster_count(tri, ux0, uy0, int(ux1 - ux0), int(uy1 - uy0), 1.0, True)
        assert canvas is not None
        ox, oy = int(-ux0), int(-uy0)
        return int(np.count_nonzero(canvas)), canvas[oy : oy + height, ox : ox + width].copy()
    # Too large: exact in the frame, outside counted on a coarser grid (each sample stands for step**2 pixels).
    n_in, inframe = _raster_count(tri, 0.0, 0.0, width, height, 1.0, True)
    assert inframe is not None
    extent = max((xmax - xmin) * (ymax - ymin), 1.0)
    step = float(math.ceil(max(1.0, math.sqrt(extent / _CANVAS_BUDGET))))
    nx, ny = int(math.ceil((xmax - xmin) / step)), int(math.ceil((ymax - ymin) / step))
    _, coarse = _raster_count(tri, xmin, ymin, nx, ny, step, True)
    assert coarse is not None
    # Coarse samples whose centre lies inside the frame are replaced by the exact in-frame count.
    cx = xmin + (np.arange(nx) + 0.5) * step
    cy = ymin + (np.arange(ny) + 0.5) * step
    in_frame = ((cy >= 0) & (cy < height))[:, None] & ((cx >= 0) & (cx < width))[None, :]
    outside = int(np.count_nonzero(coarse & ~in_frame))
    return n_in + int(round(outside * step * step)), inframe
