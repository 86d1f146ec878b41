"""The real chessboard set: 26 photos of a hand-held board, its keypoints, box, outline and pose, all measured.

The module is long (about 580 lines) because it is the whole ground truth of the real set, and the code that
measured the print's geometry stays beside the constants it justifies (a test re-measures them).

The photos are OpenCV's own calibration samples, shipped by Debian's ``opencv-doc`` package in
``/usr/share/doc/opencv-doc/examples/data``: ``left01..left09, left11..left14`` and ``right01..right14`` (no
``*10``), 640x480 greyscale JPEGs of a board with 9x6 inner corners and 25 mm squares (``left_intrinsics.yml``
there), held in an office. ``leftN``/``rightN`` are one stereo pair taken at the same moment by two different
cameras; ``left.jpg``/``right.jpg`` (no number) are other scenes and not part of the set. Nothing here is drawn by
hand or committed: :func:`build_real_boards` recomputes every number from the photos.

**Keypoints.** ``cv2.findChessboardCorners`` (9x6) + ``cv2.cornerSubPix`` give the 54 inner corners, which are
then put in the canonical order that the synthetic board uses too: row-major, 9 corners per row, 6 rows;
corner 0 is the inner corner whose diagonally-outward square (a corner square of the board) is black; and the
order has front-view handedness: in image coordinates (x right, y down) the cross product of the row direction
(corner 0 -> 1) and the column direction (corner 0 -> 9) is positive, i.e. rows run left to right when row 0 is at
the top. Of the four symmetries of a 9x6 grid (identity, 180 degrees, the two mirrors) exactly one satisfies both
on a board with 10 squares along a row: the two black corner squares sit at the two ends of one short side, the
colour picks that side and the handedness picks the end. :func:`canonical_order` fails loudly when the colours do
not show that pattern clearly.

**Coordinates.** OpenCV puts pixel centres at integers; COCO puts (0, 0) at the top-left corner of the top-left
pixel, so a pixel centre is at (i + 0.5, j + 0.5). Everything written to ``annotations.json`` (keypoints, polygon,
box) is in COCO coordinates: OpenCV + :data:`COCO_PIXEL_SHIFT`. The calibration (``K``, ``dist``, ``rvec``,
``tvec_mm``) stays in OpenCV's convention: subtract the shift from COCO points before ``cv2.solvePnP`` and add it
to what ``cv2.projectPoints`` returns.

**Board geometry (measured on these photos, see :func:`measure_board_edges`).** Board coordinates are
``(u, v)`` in squares with inner corner ``(col, row)`` at ``(col, row)``. Along a column (v) the outer checker rows
are (nearly) whole squares: the checker area ends 0.96 square beyond the outer inner corners. Along a row (u) the
printed end columns are only HALF squares (0.54 and 0.49 beyond the outer inner corners, left and right), so the
checker area is about 9 x 6.9 squares, not 10 x 7: "the grid extended by one square" would overshoot the paper by
~0.35 square (10 px) on both short sides. :data:`CHECKER_EXTENT_SQUARES` records that, and the white paper margin
beyond the checker area is :data:`WHITE_MARGIN_SQUARES`; beyond it a dark grey frame (the backing) starts.

**Lens distortion.** These lenses have strong barrel distortion (k1 about -0.29). A homography fitted to the 54
corners in pixel coordinates puts the outer board corners up to 17 px off, and the board's straight edges bow by
up to 12 px between its corners. So the board-to-image map here is the homography fitted in undistorted
(normalised) coordinates (``cv2.undistortPoints`` with the photo's camera calibration), mapped back through the
distortion (``cv2.projectPoints``); it agrees with the calibrated pose within 0.4 px at the outer corners. The
outline polygon follows the bowed edges with :data:`OUTLINE_POINTS_PER_SIDE` points per side, not 4.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from shared.atomic import atomic_path, write_json
from shared.progress import Note, ProgressFn, Step, silent
from trainer.bench.errors import BenchError

__all__ = [
    "BOARD_KEYPOINTS",
    "BoardView",
    "CameraCalibration",
    "CATEGORY",
    "CHECKER_EXTENT_SQUARES",
    "COCO_PIXEL_SHIFT",
    "COLS",
    "DEFAULT_SOURCE_DIR",
    "INSTALL_HINT",
    "KEYPOINT_NAMES",
    "N_CORNERS",
    "OUTLINE_POINTS_PER_SIDE",
    "ROWS",
    "RealPhoto",
    "SKELETON",
    "SQUARE_MM",
    "WHITE_MARGIN_SQUARES",
    "board_outline",
    "build_real_boards",
    "calibrate_camera",
    "canonical_order",
    "corner_contrasts",
    "detect_corners",
    "find_real_photos",
    "folds",
    "grid_handedness",
    "measure_board_edges",
]

DEFAULT_SOURCE_DIR = "/usr/share/doc/opencv-doc/examples/data"
INSTALL_HINT = "the real chessboard photos come from Debian's opencv-doc package: apt-get install opencv-doc"

COLS, ROWS = 9, 6  # inner corners per row, rows of inner corners
N_CORNERS = COLS * ROWS
SQUARE_MM = 25.0  # left_intrinsics.yml: square_size 0.025 (m)
IMAGE_SIZE = (640, 480)
CAMERAS = ("left", "right")
PAIRS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14)  # the package has no left10/right10

COCO_PIXEL_SHIFT = 0.5
"""COCO coordinate = OpenCV coordinate + 0.5 (OpenCV: pixel centres at integers; COCO: at half-integers)."""

CHECKER_EXTENT_SQUARES = (0.51, 0.96)
"""How far the checker area reaches beyond the outer inner corners, in squares: ``(along a row (u), along a
column (v))``, measured by :func:`measure_board_edges` (median over the 26 photos of the black-to-white midpoint
crossing on profiles through the outer black squares): left 0.54, right 0.49, top 0.96, bottom 0.95. So the end
columns of this print are half squares (the pattern sits 0.02 square off centre), and the end rows are 0.96 of a
square (24 mm), while interior squares measure 1.00 the same way."""

WHITE_MARGIN_SQUARES = 0.13
"""The white paper margin around the checker area, in squares (25 mm), up to where the dark grey frame starts.

Measured by :func:`measure_board_edges`: on every photo, intensity profiles run outward, perpendicular to each of
the 4 sides of the checker area, through the centre of every outer square except the two at the board's corners,
sampled every 0.01 square through the distortion-aware board map. On profiles through a black outer square the
checker edge is where the intensity rises through the midpoint of the photo's black and white levels; on profiles
through a white one the paper edge is where it falls through the midpoint of the white level and the frame level
just beyond. Margin = paper edge - checker edge, median per side over its profiles, median of the 4 sides per
photo, median over the 26 photos: 0.13 (per side: left 0.16, right 0.10, top 0.16, bottom 0.10: the print sits
slightly off centre on its paper). A hand on the margin lengthens a profile; the medians ignore it.
"""

OUTLINE_POINTS_PER_SIDE = 16
"""Vertices per side of the board outline polygon (the board corner plus 15 along the side): lens distortion
bends the straight board edges by up to 12 px on these photos, which 4 vertices would cut off."""

MIN_CORNER_CONTRAST = 30.0
"""The outward corner square must differ from its two neighbours by at least this many grey levels (of 255) to
count as black or white; on the 26 photos the weakest of the 104 corners differs by 108."""

KEYPOINT_NAMES = tuple(f"r{r}c{c}" for r in range(ROWS) for c in range(COLS))
BOARD_KEYPOINTS = KEYPOINT_NAMES  # the name the benchmark and the scene config use
SKELETON = tuple(
    [(r * COLS + c + 1, r * COLS + c + 2) for r in range(ROWS) for c in range(COLS - 1)]
    + [(r * COLS + c + 1, (r + 1) * COLS + c + 1) for r in range(ROWS - 1) for c in range(COLS)]
)  # grid neighbours, 1-based (COCO's convention): 48 along rows, then 45 along columns
CATEGORY = {"id": 1, "name": "board", "supercategory": "board", "keypoints": list(KEYPOINT_NAMES),
            "skeleton": [list(e) for e in SKELETON]}  # fmt: skip

_SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 100, 1e-4)
_SUBPIX_HALF_WINDOW = (5, 5)  # an 11x11 window; the smallest square on the photos is 21 px


@dataclass(frozen=True)
class RealPhoto:
    """One photo of the set: ``pair`` N is shared by ``leftNN.jpg`` and ``rightNN.jpg``."""

    path: str
    pair: int
    camera: str

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def find_real_photos(source_dir: str = DEFAULT_SOURCE_DIR) -> list[RealPhoto]:
    """The 26 photos, ordered by pair then camera (left01, right01, left02, ...). Raises :class:`BenchError` naming
    the package when the folder or any photo is missing, and refuses a photo that links out of ``source_dir``."""
    if not os.path.isdir(source_dir):
        raise BenchError(f"{source_dir} does not exist; {INSTALL_HINT}")
    root = os.path.realpath(source_dir)
    photos, missing = [], []
    for pair in PAIRS:
        for camera in CAMERAS:
            path = os.path.join(source_dir, f"{camera}{pair:02d}.jpg")
            if not os.path.isfile(path):
                missing.append(os.path.basename(path))
                continue
            if os.path.dirname(os.path.realpath(path)) != root:
                raise BenchError(f"{path} is a link out of {source_dir}; refusing to follow it")
            photos.append(RealPhoto(path, pair, camera))
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise BenchError(f"{source_dir} lacks {shown}; {INSTALL_HINT}")
    return photos


def _read_grey(path: str) -> np.ndarray:
    grey = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise BenchError(f"{path}: not a readable image; {INSTALL_HINT}")
    if (grey.shape[1], grey.shape[0]) != IMAGE_SIZE:
        raise BenchError(f"{path}: {grey.shape[1]}x{grey.shape[0]}, expected {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}")
    return grey


# ---------------------------------------------------------------------------------------------------------------
# Corners in the canonical order


def grid_handedness(corners: np.ndarray) -> float:
    """Cross product (x right, y down) of the mean row direction and the mean column direction of a (54, 2) grid in
    row-major order: positive for front-view handedness."""
    g = np.asarray(corners, np.float64).reshape(ROWS, COLS, 2)
    row = (g[:, -1] - g[:, 0]).mean(axis=0)
    col = (g[-1, :] - g[0, :]).mean(axis=0)
    return float(row[0] * col[1] - row[1] * col[0])


def _sample(grey: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear intensities at OpenCV coordinates ``points`` (..., 2); points off the image read as NaN."""
    pts = np.asarray(points, np.float32)
    flat = pts.reshape(1, -1, 2)
    values = cv2.remap(grey.astype(np.float32), flat[..., 0], flat[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))  # fmt: skip
    return values.reshape(pts.shape[:-1])


def corner_contrasts(grey: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """For grid corners 0, 8, 45, 53 of a row-major (54, 2) grid: mean intensity of the diagonally-outward square
    minus that of its two side neighbours (negative: the corner square is black). The squares are sampled in a
    local affine frame of the corner's two grid neighbours, 0.15-0.35 of a square from the corner, inside the half
    end column too."""
    g = np.asarray(corners, np.float64).reshape(ROWS, COLS, 2)
    steps = np.array([0.15, 0.25, 0.35])
    a, b = (m.ravel() for m in np.meshgrid(steps, steps))
    out = []
    for r, c in ((0, 0), (0, COLS - 1), (ROWS - 1, 0), (ROWS - 1, COLS - 1)):
        p = g[r, c]
        eu = g[r, c + (1 if c == 0 else -1)] - p  # towards the grid along the row
        ev = g[r + (1 if r == 0 else -1), c] - p  # towards the grid along the column
        outward = _sample(grey, p - a[:, None] * eu - b[:, None] * ev)
        sides = np.concatenate([_sample(grey, p + a[:, None] * eu - b[:, None] * ev),
                                _sample(grey, p - a[:, None] * eu + b[:, None] * ev)])  # fmt: skip
        out.append(float(np.mean(outward) - np.mean(sides)))
    return np.array(out)


def canonical_order(grey: np.ndarray, corners: np.ndarray, name: str = "image") -> np.ndarray:
    """Reorder a (54, 2) row-major 9x6 grid (as ``findChessboardCorners`` returns it) into the canonical order: the
    one symmetry of the grid whose corner 0 has a black outward square and whose handedness is positive. Raises
    :class:`BenchError` when a corner square's colour is unclear or the colours break the board's pattern."""
    g = np.asarray(corners, np.float64).reshape(ROWS, COLS, 2)
    contrast = corner_contrasts(grey, g)  # corners 0, 8, 45, 53
    if not np.all(np.abs(contrast) >= MIN_CORNER_CONTRAST):
        raise BenchError(f"{name}: corner squares too unclear to tell black from white "
                         f"(contrast {np.round(contrast).tolist()}, need |c| >= {MIN_CORNER_CONTRAST:g})")  # fmt: skip
    dark = contrast < 0
    # 10 squares along a row: the corner squares at both ends of a column match, the two ends of a row differ
    if dark[0] != dark[2] or dark[1] != dark[3] or dark[0] == dark[1]:
        raise BenchError(f"{name}: the corner squares' colours (dark at {np.flatnonzero(dark).tolist()} of "
                         "corners 0, 8, 45, 53) do not match a 10x7-square chessboard")  # fmt: skip
    # the 4 symmetries (identity, mirrored columns, mirrored rows, 180 degrees), each with the index of its corner 0
    # among corners 0, 8, 45, 53
    candidates = ((g, 0), (g[:, ::-1], 1), (g[::-1, :], 2), (g[::-1, ::-1], 3))
    chosen = [grid for grid, k in candidates if dark[k] and grid_handedness(grid) > 0]
    if len(chosen) != 1:
        raise BenchError(f"{name}: {len(chosen)} grid symmetries have a black corner 0 and front-view handedness")
    return np.ascontiguousarray(chosen[0].reshape(N_CORNERS, 2))


def detect_corners(grey: np.ndarray, name: str = "image") -> np.ndarray:
    """The 54 inner corners of a photo, sub-pixel, in the canonical order: (54, 2) float64, OpenCV coordinates."""
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    found, corners = cv2.findChessboardCorners(grey, (COLS, ROWS), flags=flags)
    if not found or corners is None or len(corners) != N_CORNERS:
        raise BenchError(f"{name}: cv2.findChessboardCorners found no {COLS}x{ROWS} inner-corner grid")
    corners = cv2.cornerSubPix(grey, corners, _SUBPIX_HALF_WINDOW, (-1, -1), _SUBPIX_CRITERIA)
    return canonical_order(grey, corners.reshape(N_CORNERS, 2), name)


# ---------------------------------------------------------------------------------------------------------------
# Calibration and the board-to-image map


def object_points() -> np.ndarray:
    """(54, 3) float32 board points in mm, canonical order: corner (col, row) at (col * 25, row * 25, 0)."""
    idx = np.arange(N_CORNERS)
    return np.stack([idx % COLS * SQUARE_MM, idx // COLS * SQUARE_MM, np.zeros(N_CORNERS)], axis=1).astype(np.float32)


@dataclass(frozen=True)
class CameraCalibration:
    """``cv2.calibrateCamera`` over one camera's photos. ``rvecs``/``tvecs`` (mm) map board to camera frame
    (OpenCV: x_cam = R(rvec) x_board + t), one per photo in the order given; ``per_view_rms`` in px."""

    camera: str
    K: np.ndarray
    dist: np.ndarray
    rms: float
    rvecs: tuple[np.ndarray, ...]
    tvecs: tuple[np.ndarray, ...]
    per_view_rms: tuple[float, ...]


def calibrate_camera(camera: str, corners: Sequence[np.ndarray], image_size: tuple[int, int] = IMAGE_SIZE
                     ) -> CameraCalibration:  # fmt: skip
    """Calibrate one camera from its photos' canonical corners (OpenCV coordinates); the default 5-coefficient
    distortion model (k1, k2, p1, p2, k3)."""
    obj = object_points()
    img = [np.asarray(c, np.float32).reshape(N_CORNERS, 1, 2) for c in corners]
    rms, K, dist, rvecs, tvecs, _, _, per_view = cv2.calibrateCameraExtended([obj] * len(img), img, image_size,
                                                                             None, None)  # fmt: skip
    return CameraCalibration(camera, K, dist.ravel(), float(rms), tuple(r.ravel() for r in rvecs),
                             tuple(t.ravel() for t in tvecs), tuple(float(e) for e in np.ravel(per_view)))  # fmt: skip


class BoardView:
    """Board coordinates (u, v) in squares -> OpenCV pixel coordinates of one photo, through lens distortion: the
    homography from the 54 corners fitted in undistorted normalised coordinates, then ``cv2.projectPoints``."""

    def __init__(self, corners: np.ndarray, K: np.ndarray, dist: np.ndarray):
        self.K, self.dist = np.asarray(K, np.float64), np.asarray(dist, np.float64)
        pts = np.asarray(corners, np.float64).reshape(N_CORNERS, 1, 2)
        normalised = cv2.undistortPoints(pts, self.K, self.dist).reshape(N_CORNERS, 2)
        board = object_points()[:, :2].astype(np.float64) / SQUARE_MM
        self.H, _ = cv2.findHomography(board, normalised, 0)

    def to_image(self, uv: np.ndarray) -> np.ndarray:
        uv = np.asarray(uv, np.float64)
        flat = uv.reshape(-1, 2)
        q = np.c_[flat, np.ones(len(flat))] @ self.H.T
        rays = np.c_[q[:, :2] / q[:, 2:], np.ones(len(flat))]
        pix, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), self.K, self.dist)
        return pix.reshape(uv.shape)


def board_outline(view: BoardView, extent: tuple[float, float] | None = None,
                  per_side: int = OUTLINE_POINTS_PER_SIDE) -> np.ndarray:  # fmt: skip
    """The board outline in OpenCV coordinates, ``(4 * per_side, 2)``, clockwise on the board from corner 0's side:
    the checker area (:data:`CHECKER_EXTENT_SQUARES`) plus the white margin (:data:`WHITE_MARGIN_SQUARES`) unless
    ``extent`` (squares beyond the outer inner corners, along u and v) is given."""
    eu, ev = extent if extent is not None else (c + WHITE_MARGIN_SQUARES for c in CHECKER_EXTENT_SQUARES)
    corners = np.array([(-eu, -ev), (COLS - 1 + eu, -ev), (COLS - 1 + eu, ROWS - 1 + ev), (-eu, ROWS - 1 + ev)])
    s = np.arange(per_side)[:, None] / per_side
    uv = np.concatenate([corners[k] + s * (corners[(k + 1) % 4] - corners[k]) for k in range(4)])
    return view.to_image(uv)


# ---------------------------------------------------------------------------------------------------------------
# Measuring the board's edges (how CHECKER_EXTENT_SQUARES and WHITE_MARGIN_SQUARES were found)


def _crossing(t: np.ndarray, values: np.ndarray, level: float, start: float, rising: bool) -> float:
    """First ``t >= start`` where ``values`` crosses ``level`` (rising or falling), linearly interpolated."""
    d = values - level
    for k in range(int(np.searchsorted(t, start)), len(t) - 1):
        a, b = d[k], d[k + 1]
        if (rising and a < 0 <= b) or (not rising and a > 0 >= b):
            return float(t[k] + (t[k + 1] - t[k]) * a / (a - b))
    return math.nan


def measure_board_edges(grey: np.ndarray, view: BoardView) -> dict[str, dict[str, float]]:
    """Checker edge and paper edge beyond the outer inner corners, in squares, on each side of one photo.

    Returns ``{side: {"checker": .., "paper": .., "margin": paper - checker}}`` for sides ``left`` (u < 0),
    ``right`` (u > 8), ``top`` (v < 0), ``bottom`` (v > 5); NaN where no profile on that side could be read (off
    the image, or occluded). See :data:`WHITE_MARGIN_SQUARES` for the method.
    """
    t = np.arange(0.0, 1.6, 0.01)
    sides = {
        "left": (lambda s: np.stack([-t, np.full_like(t, s)], -1), np.arange(0.5, ROWS - 1)),
        "right": (lambda s: np.stack([COLS - 1 + t, np.full_like(t, s)], -1), np.arange(0.5, ROWS - 1)),
        "top": (lambda s: np.stack([np.full_like(t, s), -t], -1), np.arange(0.5, COLS - 1)),
        "bottom": (lambda s: np.stack([np.full_like(t, s), ROWS - 1 + t], -1), np.arange(0.5, COLS - 1)),
    }  # profiles through the centres of the outer squares, the two corner squares left out
    out = {}
    for side, (line, positions) in sides.items():
        profiles = [_sample(grey, view.to_image(line(s))) for s in positions]
        profiles = [p for p in profiles if np.all(np.isfinite(p))]
        near = (t >= 0.05) & (t <= 0.2)  # inside the outer square, even a half one
        dark = [p for p in profiles if p[near].mean() < 128]
        light = [p for p in profiles if p[near].mean() >= 128]
        checker, paper = [], []
        if dark and light:
            black = float(np.median([p[near].mean() for p in dark]))
            white = float(np.median([p[near].mean() for p in light]))
            for p in dark:
                checker.append(_crossing(t, p, (black + white) / 2, 0.05, rising=True))
            for p in light:
                first = _crossing(t, p, (black + white) / 2, 0.3, rising=False)
                if math.isnan(first):
                    continue
                frame = float(np.median(p[(t > first + 0.05) & (t < first + 0.15)]))
                paper_white = float(np.median(p[(t > 0.05) & (t < first - 0.1)]))
                paper.append(_crossing(t, p, (paper_white + frame) / 2, first - 0.2, rising=False))
        c = float(np.nanmedian(checker)) if np.any(np.isfinite(checker)) else math.nan
        e = float(np.nanmedian(paper)) if np.any(np.isfinite(paper)) else math.nan
        out[side] = {"checker": c, "paper": e, "margin": e - c}
    return out


# ---------------------------------------------------------------------------------------------------------------
# Folds


def folds(pairs: Sequence[int], k: int = 2) -> list[list[int]]:
    """``k`` folds over stereo pairs: the pair indices each fold tests on (its training side is every other pair).

    ``pairs`` are pair indices, repeats allowed (one per image, e.g. ``images[i]["board"]["pair"]``, or the
    distinct ones). A fold holds whole pairs, so both photos of a pair are always on the same side. The sorted
    distinct pairs are dealt round-robin, so the split depends on nothing but the set of pairs and ``k``: with
    the 13 pairs and k=2, fold 0 tests on 1, 3, 5, 7, 9, 12, 14 and fold 1 on 2, 4, 6, 8, 11, 13.
    """
    distinct = sorted({int(p) for p in pairs})
    if not 2 <= k <= len(distinct):
        raise BenchError(f"folds: k={k} needs 2 <= k <= {len(distinct)} (the number of distinct pairs)")
    return [distinct[f::k] for f in range(k)]


# ---------------------------------------------------------------------------------------------------------------
# The dataset


def _clip_polygon(poly: np.ndarray, width: float, height: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a polygon (N, 2) to the rectangle [0, width] x [0, height]."""
    pts = [tuple(p) for p in np.asarray(poly, np.float64)]
    for axis, bound, keep_below in ((0, 0.0, False), (0, width, True), (1, 0.0, False), (1, height, True)):

        def inside(p: tuple[float, float], a: int = axis, b: float = bound, k: bool = keep_below) -> bool:
            return p[a] <= b if k else p[a] >= b

        out: list[tuple[float, float]] = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            if inside(cur) != inside(prev):
                s = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + s * (cur[0] - prev[0]), prev[1] + s * (cur[1] - prev[1])))
            if inside(cur):
                out.append(cur)
        pts = out
        if not pts:
            break
    return np.array(pts, np.float64).reshape(-1, 2)


def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def _round(values: np.ndarray, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in np.ravel(values)]


def build_real_boards(
    out_dir: str, source_dir: str = DEFAULT_SOURCE_DIR, note: Note = silent, progress: ProgressFn | None = None,
    sheet: bool = True,
) -> dict:  # fmt: skip
    """Write the real set as a COCO keypoint dataset in ``out_dir``: ``images/`` (copies of the 26 photos),
    ``annotations.json`` (written last) and ``ground_truth_sheet.png`` (every photo with its ground truth drawn).

    Per image: ``images[i]["board"] = {"pair", "camera", "K", "dist", "rvec", "tvec_mm", "square_mm",
    "reprojection_rms_px"}`` (OpenCV convention) and one annotation with the 54 keypoints ``[x, y, 2] * 54`` in the
    canonical order, the board outline polygon (checker area + white margin), its clipped bounding box and area, in
    COCO coordinates. ``info["calibration"]`` holds each camera's K, distortion and RMS reprojection error. Returns
    ``{"annotations": path, "sheet": path or None, "images": 26, "rms_px": {"left": .., "right": ..},
    "margins": {photo name: measure_board_edges(...) with None for NaN}}``.
    """
    photos = find_real_photos(source_dir)
    greys, corners = [], []
    for i, photo in enumerate(photos):
        grey = _read_grey(photo.path)
        greys.append(grey)
        corners.append(detect_corners(grey, photo.path))
        if progress:
            progress(Step("real boards: corners", i + 1, len(photos)))
    calibrations: dict[str, CameraCalibration] = {}
    slot: dict[int, tuple[str, int]] = {}  # photo index -> (camera, index among that camera's photos)
    for camera in CAMERAS:
        idx = [i for i, p in enumerate(photos) if p.camera == camera]
        calibrations[camera] = calibrate_camera(camera, [corners[i] for i in idx])
        slot.update({i: (camera, j) for j, i in enumerate(idx)})
        note(f"real boards: {camera} camera calibrated on {len(idx)} photos, RMS {calibrations[camera].rms:.3f} px")

    images_dir = os.path.join(out_dir, "images")
    os.makedirs(images_dir, exist_ok=True)
    width, height = IMAGE_SIZE
    images, annotations, outlines, margins = [], [], [], {}
    for i, photo in enumerate(photos):
        camera, j = slot[i]
        cal = calibrations[camera]
        dst = os.path.join(images_dir, photo.name)
        with atomic_path(dst) as tmp:
            shutil.copyfile(photo.path, tmp)
        view = BoardView(corners[i], cal.K, cal.dist)
        margins[photo.name] = {side: {k: (None if math.isnan(v) else round(v, 4)) for k, v in m.items()}
                               for side, m in measure_board_edges(greys[i], view).items()}  # fmt: skip
        outline = board_outline(view) + COCO_PIXEL_SHIFT
        clipped = _clip_polygon(outline, width, height)
        outlines.append(clipped)
        x0, y0 = clipped.min(axis=0)
        x1, y1 = clipped.max(axis=0)
        kp = np.c_[corners[i] + COCO_PIXEL_SHIFT, np.full(N_CORNERS, 2.0)]
        images.append({
            "id": i + 1, "file_name": photo.name, "width": width, "height": height,
            "board": {
                "pair": photo.pair, "camera": camera, "K": cal.K.tolist(), "dist": cal.dist.tolist(),
                "rvec": cal.rvecs[j].tolist(), "tvec_mm": cal.tvecs[j].tolist(), "square_mm": SQUARE_MM,
                "reprojection_rms_px": round(cal.per_view_rms[j], 4),
            },
        })  # fmt: skip
        annotations.append({
            "id": i + 1, "image_id": i + 1, "category_id": CATEGORY["id"], "iscrowd": 0,
            "bbox": _round([x0, y0, x1 - x0, y1 - y0]), "segmentation": [_round(clipped)],
            "area": round(_polygon_area(clipped), 2),
            "keypoints": [round(float(v), 4) if k % 3 != 2 else 2 for k, v in enumerate(kp.ravel())],
            "num_keypoints": N_CORNERS,
        })  # fmt: skip
        if progress:
            progress(Step("real boards: annotations", i + 1, len(photos)))

    sheet_path = None
    if sheet:
        sheet_path = os.path.join(out_dir, "ground_truth_sheet.png")
        _write_sheet(sheet_path, photos, greys, corners, outlines, annotations, calibrations, slot)
        note(f"real boards: ground-truth sheet {sheet_path}")
    info = {
        "description": "OpenCV's chessboard calibration photos (Debian opencv-doc), ground truth by Blendset",
        "source_dir": os.path.abspath(source_dir),
        "coordinates": "COCO: (0, 0) is the top-left corner of the top-left pixel (OpenCV coordinates + 0.5); "
                       "K, dist, rvec, tvec_mm are OpenCV's (pixel centres at integers)",
        "board": {"inner_corners": [COLS, ROWS], "square_mm": SQUARE_MM,
                  "checker_extent_squares": list(CHECKER_EXTENT_SQUARES), "white_margin_squares": WHITE_MARGIN_SQUARES},
        "calibration": {c: {"K": cal.K.tolist(), "dist": cal.dist.tolist(), "rms_px": cal.rms, "photos":
                            sum(1 for p in photos if p.camera == c)} for c, cal in calibrations.items()},
    }  # fmt: skip
    path = os.path.join(out_dir, "annotations.json")
    write_json(path, {"info": info, "images": images, "annotations": annotations, "categories": [CATEGORY]})
    note(f"real boards: {len(images)} photos with 54 corners each -> {path}")
    return {"annotations": path, "sheet": sheet_path, "images": len(images),
            "rms_px": {c: cal.rms for c, cal in calibrations.items()}, "margins": margins}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# The ground-truth sheet


_TILE = (480, 360)
_COLUMNS = 4  # two stereo pairs per row: left, right, left, right


def _draw_tile(grey: np.ndarray, corners: np.ndarray, outline: np.ndarray, bbox: list[float], title: str
               ) -> np.ndarray:  # fmt: skip
    scale = 2  # draw at twice the size for sub-pixel placement (cv2's shift), then shrink
    img = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)

    def px(p: np.ndarray) -> tuple[int, int]:  # OpenCV coordinates -> pixel of the enlarged image
        return int(round((p[0] + 0.5) * scale - 0.5)), int(round((p[1] + 0.5) * scale - 0.5))

    poly = np.array([px(p - COCO_PIXEL_SHIFT) for p in outline], np.int32)
    cv2.polylines(img, [poly], True, (0, 200, 0), 3, cv2.LINE_AA)
    x, y, w, h = bbox
    cv2.rectangle(img, px(np.array([x, y]) - 0.5), px(np.array([x + w, y + h]) - 0.5), (255, 128, 0), 2)
    g = corners.reshape(ROWS, COLS, 2)
    cv2.polylines(img, [np.array([px(p) for p in g[0]], np.int32)], False, (0, 140, 255), 2, cv2.LINE_AA)
    for p in corners:
        cv2.circle(img, px(p), 4, (0, 255, 255), -1, cv2.LINE_AA)
    for k in (0, COLS - 1, N_CORNERS - COLS, N_CORNERS - 1):
        p = px(corners[k])
        if k == 0:
            cv2.circle(img, p, 14, (0, 0, 255), -1, cv2.LINE_AA)
            cv2.circle(img, p, 16, (255, 255, 255), 3, cv2.LINE_AA)
        label = (p[0] + 14, p[1] - 12)
        cv2.putText(img, str(k), label, cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 0), 9, cv2.LINE_AA)
        cv2.putText(img, str(k), label, cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 255) if k == 0 else (0, 255, 0), 4,
                    cv2.LINE_AA)  # fmt: skip
    tile = cv2.resize(img, _TILE, interpolation=cv2.INTER_AREA)
    cv2.rectangle(tile, (0, 0), (_TILE[0], 30), (0, 0, 0), -1)
    cv2.putText(tile, title, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _write_sheet(path: str, photos: list[RealPhoto], greys: list[np.ndarray], corners: list[np.ndarray],
                 outlines: list[np.ndarray], annotations: list[dict], calibrations: dict[str, CameraCalibration],
                 slot: dict[int, tuple[str, int]]) -> None:  # fmt: skip
    tiles = []
    for i, photo in enumerate(photos):
        camera, j = slot[i]
        title = f"{photo.name}  pair {photo.pair}  {camera}  reproj {calibrations[camera].per_view_rms[j]:.2f}px"
        tiles.append(_draw_tile(greys[i], corners[i], outlines[i], annotations[i]["bbox"], title))
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % _COLUMNS)
    rows = [np.hstack(tiles[k : k + _COLUMNS]) for k in range(0, len(tiles), _COLUMNS)]
    legend = np.zeros((40, rows[0].shape[1], 3), np.uint8)
    cv2.putText(legend, "red disc: corner 0 (black corner square, front-view handedness)   orange: row 0   "
                "green: board outline (checker + white margin)   blue: bbox", (8, 27), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                (255, 255, 255), 1, cv2.LINE_AA)  # fmt: skip
    sheet = np.vstack([legend, *rows])
    with atomic_path(path) as tmp:
        if not cv2.imwrite(tmp, sheet):
            raise BenchError(f"{path}: cv2.imwrite could not write the sheet")
