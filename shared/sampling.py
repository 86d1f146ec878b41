"""Randomizer draws: cameras, poses, lights, mixture components. Pure numpy; the engine applies the values.

Every function takes a ``numpy.random.Generator`` and draws from nothing else, so a frame is reproducible from
``frame_rng(seed, frame)`` alone, whichever shard renders it. Functions return plain values; the engine records
them in ``images[*]["blendset"]["params"]`` under dotted names. The names produced here (see
:func:`camera_params` and :func:`light_params`):

==============================  ===================================================================
``camera.distance``             m, camera to (jittered) look-at point
``camera.elevation_deg``        degrees above the look-at point's horizontal plane
``camera.azimuth_deg``          degrees, counter-clockwise from world +X around +Z
``camera.focal_length_mm``      mm
``camera.roll_deg``             degrees about the viewing axis, counter-clockwise as seen by the camera
``camera.closeup``              1.0 for a close-up frame, else 0.0
``lights.count``                number of lights
``lights.energy_w``             mean energy (W; sun: W/m^2)
``lights.color_temperature_k``  mean colour temperature (K)
``lights.elevation_deg``        mean elevation of the lights (degrees)
==============================  ===================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .config import CameraRandomizer, IntRange, LightRandomizer, MixtureComponent, Range
from .errors import BlendsetError

__all__ = [
    "PlacementError",
    "CameraSample",
    "LightSample",
    "SurfaceRect",
    "frame_rng",
    "sample_range",
    "sample_int",
    "sample_camera",
    "closeup_distance",
    "look_at_matrix",
    "place_on_surfaces",
    "sample_free_pose",
    "sample_lights",
    "kelvin_to_rgb",
    "choose_component",
    "camera_params",
    "light_params",
]


class PlacementError(BlendsetError, RuntimeError):
    """Objects could not be placed without overlapping; the message says how many and after how many tries."""

    def __init__(self, failed: int, total: int, max_tries: int):
        self.failed, self.total, self.max_tries = failed, total, max_tries
        super().__init__(
            f"could not place {failed} of {total} objects on the support surfaces after {max_tries} tries each "
            "(surfaces too small or too crowded: add surfaces, lower pose.min_gap or raise pose.max_tries)"
        )


def frame_rng(seed: int, frame: int) -> np.random.Generator:
    """The generator of one frame: a SeedSequence of ``[seed, frame]``, independent of shards and resume order.
    Negative seeds are taken modulo 2**64 (SeedSequence needs non-negative entropy)."""
    if frame < 0:
        raise ValueError(f"frame must be >= 0, got {frame}")
    return np.random.default_rng(np.random.SeedSequence([int(seed) % (1 << 64), int(frame)]))


def sample_range(rng: np.random.Generator, r: Range) -> float:
    """One value of a :class:`shared.config.Range`: uniform, normal (mean at the centre, std a quarter of the
    width, clipped to the range) or loguniform. Always consumes exactly one draw, also when min == max."""
    if r.distribution == "uniform":
        return float(rng.uniform(r.min, r.max))
    if r.distribution == "normal":
        v = rng.normal((r.min + r.max) / 2.0, (r.max - r.min) / 4.0)
        return float(np.clip(v, r.min, r.max))
    if r.distribution == "loguniform":
        if r.min <= 0:
            raise ValueError(f"loguniform needs min > 0, got {r.min}")
        return float(math.exp(rng.uniform(math.log(r.min), math.log(r.max))))
    raise ValueError(f"unknown distribution {r.distribution!r}")


def sample_int(rng: np.random.Generator, r: IntRange) -> int:
    """Uniform integer in [min, max], both inclusive."""
    return int(rng.integers(r.min, r.max + 1))


# ---------------------------------------------------------------------------------------------------------------
# Camera


@dataclass(frozen=True)
class CameraSample:
    location: tuple[float, float, float]
    target: tuple[float, float, float]
    roll_deg: float
    focal_length_mm: float
    distance: float
    elevation_deg: float
    azimuth_deg: float
    is_closeup: bool


def closeup_distance(radius_m: float, focal_mm: float, sensor_mm: float, fill: float) -> float:
    """Distance at which a sphere of ``radius_m`` spans ``fill`` of an image side whose sensor extent is
    ``sensor_mm`` (pass the sensor extent along the image's smaller side).

    Exact for a sphere under a pinhole centred on it: its outline subtends a half-angle ``asin(r / d)``, which
    lands at ``f * tan(half-angle)`` from the centre on the sensor.
    """
    if radius_m <= 0 or focal_mm <= 0 or sensor_mm <= 0 or not 0 < fill <= 1:
        raise ValueError("closeup_distance needs positive radius, focal length and sensor size, and 0 < fill <= 1")
    half_angle = math.atan(fill * sensor_mm / (2.0 * focal_mm))
    return radius_m / math.sin(half_angle)


def _sample_elevation(rng: np.random.Generator, r: Range, shell: bool) -> float:
    """Shell: uniform area on the sphere patch, i.e. sin(elevation) uniform. Orbit: as the range says."""
    if shell and r.distribution == "uniform":
        lo, hi = math.sin(math.radians(r.min)), math.sin(math.radians(r.max))
        return math.degrees(math.asin(float(np.clip(rng.uniform(lo, hi), -1.0, 1.0))))
    return sample_range(rng, r)


def sample_camera(
    rng: np.random.Generator,
    cam: CameraRandomizer,
    look_at: np.ndarray | Sequence[float],
    closeup: tuple[Sequence[float], float, float] | None = None,
) -> CameraSample:
    """A camera position around ``look_at`` (world xyz).

    ``shell``: uniform over the sphere patch between the elevation limits (``sin(elevation)`` uniform, azimuth
    uniform) at a distance from ``cam.distance``. ``orbit``: elevation and azimuth drawn independently from their
    ranges. The look-at point is jittered by up to ``cam.look_at_jitter`` per axis.

    ``closeup = (target_centre_xyz, target_radius_m, sensor_mm_of_smaller_side)``: with probability
    ``cam.closeup_share`` the frame becomes a close-up: the camera aims at that target (jitter limited to a tenth
    of its radius) from the distance where it fills ``cam.closeup_fill`` of the image's smaller side.
    Draws happen in a fixed order whatever the branch, so changing one setting does not reshuffle the others.
    """
    shell = cam.mode == "shell"
    distance = sample_range(rng, cam.distance)
    elevation = _sample_elevation(rng, cam.elevation_deg, shell)
    azimuth = sample_range(rng, cam.azimuth_deg)
    focal = sample_range(rng, cam.focal_length_mm)
    roll = sample_range(rng, cam.roll_deg)
    jitter = rng.uniform(-1.0, 1.0, 3)
    coin = rng.random()
    fill = sample_range(rng, cam.closeup_fill)
    target = np.asarray(look_at, dtype=np.float64).reshape(3) + jitter * cam.look_at_jitter
    is_closeup = closeup is not None and coin < cam.closeup_share
    if is_closeup:
        assert closeup is not None
        centre, radius, sensor = closeup
        target = np.asarray(centre, dtype=np.float64).reshape(3) + jitter * 0.1 * radius
        distance = closeup_distance(radius, focal, sensor, fill)
    e, a = math.radians(elevation), math.radians(azimuth)
    direction = np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
    location = target + distance * direction
    return CameraSample(
        location=tuple(float(v) for v in location),
        target=tuple(float(v) for v in target),
        roll_deg=roll,
        focal_length_mm=focal,
        distance=float(distance),
        elevation_deg=float(elevation),
        azimuth_deg=float(azimuth),
        is_closeup=bool(is_closeup),
    )


def camera_params(sample: CameraSample) -> dict[str, float]:
    """The camera's regression targets under their recorded names."""
    return {
        "camera.distance": sample.distance,
        "camera.elevation_deg": sample.elevation_deg,
        "camera.azimuth_deg": sample.azimuth_deg,
        "camera.focal_length_mm": sample.focal_length_mm,
        "camera.roll_deg": sample.roll_deg,
        "camera.closeup": 1.0 if sample.is_closeup else 0.0,
    }


def look_at_matrix(location: Sequence[float], target: Sequence[float], roll_deg: float = 0.0) -> np.ndarray:
    """4x4 ``world_from_camera`` for a Blender camera (or spot/area/sun light) at ``location`` aimed at
    ``target``: its -Z axis points at the target and its +Y axis is as close to world +Z as possible (world +Y
    when looking straight up or down). ``roll_deg`` turns the camera counter-clockwise about its viewing axis
    as seen from behind it (the image content turns clockwise)."""
    loc = np.asarray(location, dtype=np.float64).reshape(3)
    fwd = np.asarray(target, dtype=np.float64).reshape(3) - loc
    norm = np.linalg.norm(fwd)
    if norm < 1e-12:
        raise ValueError("camera location and target coincide")
    fwd /= norm
    up = np.array([0.0, 0.0, 1.0])
    if abs(float(fwd @ up)) > 1.0 - 1e-9:
        up = np.array([0.0, 1.0, 0.0])
    x = np.cross(fwd, up)
    x /= np.linalg.norm(x)
    z = -fwd
    y = np.cross(z, x)
    r = math.radians(roll_deg)
    x, y = math.cos(r) * x + math.sin(r) * y, -math.sin(r) * x + math.cos(r) * y
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, loc
    return m


# ---------------------------------------------------------------------------------------------------------------
# Poses


@dataclass(frozen=True)
class SurfaceRect:
    """Top face of a support object, axis-aligned in world x/y, at height ``z_top`` (metres)."""

    xmin: float
    xmax: float
    ymin: float
    ymax: float
    z_top: float


def place_on_surfaces(
    rng: np.random.Generator,
    radii: Sequence[float],
    surfaces: Sequence[SurfaceRect],
    min_gap: float,
    max_tries: int,
    yaw_deg: Range | None = None,
) -> list[tuple[float, float, float, float]]:
    """Upright positions ``(x, y, z_top, yaw_rad)`` for objects with bounding-circle ``radii`` (metres, in the
    x/y plane), in input order.

    Larger objects are placed first (they are the hard ones). Each try picks a surface with probability
    proportional to the area where the object's centre may go, then a uniform point there; a try succeeds when
    the circle keeps ``min_gap`` from every circle already placed, so no two objects interpenetrate. The centre
    always lies on the surface and the whole circle too when it fits. ``z`` is the surface top: the engine lifts
    each object by the distance from its origin to its lowest point. Yaw is uniform in ``yaw_deg`` (default a
    full turn). Raises :class:`PlacementError` naming how many objects found no place in ``max_tries``.
    """
    if not surfaces:
        raise ValueError("place_on_surfaces needs at least one surface")
    if max_tries < 1:
        raise ValueError("max_tries must be >= 1")
    yaw_range = yaw_deg or Range(-180.0, 180.0)
    lo = np.array([[s.xmin, s.ymin] for s in surfaces], dtype=np.float64)
    hi = np.array([[s.xmax, s.ymax] for s in surfaces], dtype=np.float64)
    if np.any(hi < lo):
        raise ValueError("a surface has max < min")
    placed_xy: list[np.ndarray] = []
    placed_r: list[float] = []
    result: list[tuple[float, float, float, float] | None] = [None] * len(radii)
    failed = 0
    for i in sorted(range(len(radii)), key=lambda k: -radii[k]):
        r = float(radii[i])
        if r < 0:
            raise ValueError(f"radius {i} is negative")
        shrink = np.minimum(r, (hi - lo) / 2.0)
        a, b = lo + shrink, hi - shrink
        area = np.prod(np.maximum(b - a, 1e-9), axis=1)
        p = area / area.sum()
        ok = False
        for _ in range(max_tries):
            s = int(rng.choice(len(surfaces), p=p))
            xy = rng.uniform(a[s], b[s])
            if placed_xy:
                d = np.linalg.norm(np.array(placed_xy) - xy, axis=1)
                if np.any(d < np.array(placed_r) + r + min_gap):
                    continue
            ok = True
            break
        if not ok:
            failed += 1
            continue
        yaw = math.radians(sample_range(rng, yaw_range))
        placed_xy.append(xy)
        placed_r.append(r)
        result[i] = (float(xy[0]), float(xy[1]), float(surfaces[s].z_top), yaw)
    if failed:
        raise PlacementError(failed, len(radii), max_tries)
    return [r for r in result if r is not None]


def sample_free_pose(
    rng: np.random.Generator, region_min: Sequence[float], region_max: Sequence[float]
) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """Position uniform in the box, rotation uniform on SO(3): ``(location, quaternion (w, x, y, z))``.
    The quaternion is a normalised 4-D Gaussian (uniform on the 3-sphere), sign chosen so that w >= 0."""
    loc = rng.uniform(np.asarray(region_min, dtype=np.float64), np.asarray(region_max, dtype=np.float64))
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    if q[0] < 0:
        q = -q
    return tuple(float(v) for v in loc), tuple(float(v) for v in q)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------------------
# Lights


@dataclass(frozen=True)
class LightSample:
    """One light: aim spot/area/sun lights at the centre with ``look_at_matrix(location, centre)``."""

    type: str
    location: tuple[float, float, float]
    energy: float
    color: tuple[float, float, float]
    temperature_k: float
    distance: float
    elevation_deg: float
    azimuth_deg: float


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """Linear-sRGB colour of a black body at ``kelvin``, scaled so the largest component is 1.

    Uses Kim et al.'s cubic approximation of the Planckian locus in CIE 1931 xy (valid 1667-25000 K; values
    outside are clamped to it), then XYZ (Y = 1) to linear sRGB (D65), negatives clipped. Linear because
    Blender light colours are scene-linear. 6500 K comes out near white, 2000 K orange, 20000 K bluish.
    """
    t = float(np.clip(kelvin, 1667.0, 25000.0))
    if t <= 4000.0:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222.0:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000.0:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    X, Y, Z = x / y, 1.0, (1.0 - x - y) / y
    rgb = np.array(
        [
            3.2404542 * X - 1.5371385 * Y - 0.4985314 * Z,
            -0.9692660 * X + 1.8760108 * Y + 0.0415560 * Z,
            0.0556434 * X - 0.2040259 * Y + 1.0572252 * Z,
        ]
    )
    rgb = np.clip(rgb, 0.0, None)
    rgb /= rgb.max()
    return float(rgb[0]), float(rgb[1]), float(rgb[2])


def sample_lights(rng: np.random.Generator, cfg: LightRandomizer, center: Sequence[float]) -> list[LightSample]:
    """``cfg.count`` lights on a shell around ``center`` (elevation from its range, azimuth uniform)."""
    c = np.asarray(center, dtype=np.float64).reshape(3)
    n = sample_int(rng, cfg.count)
    out = []
    for _ in range(n):
        kind = str(cfg.types[int(rng.integers(len(cfg.types)))])
        energy = sample_range(rng, cfg.energy_w)
        kelvin = sample_range(rng, cfg.color_temperature_k)
        dist = sample_range(rng, cfg.distance)
        elev = sample_range(rng, cfg.elevation_deg)
        azim = float(rng.uniform(-180.0, 180.0))
        e, a = math.radians(elev), math.radians(azim)
        loc = c + dist * np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
        out.append(
            LightSample(
                type=kind,
                location=(float(loc[0]), float(loc[1]), float(loc[2])),
                energy=energy,
                color=kelvin_to_rgb(kelvin),
                temperature_k=kelvin,
                distance=dist,
                elevation_deg=elev,
                azimuth_deg=azim,
            )
        )
    return out


def light_params(lights: Sequence[LightSample]) -> dict[str, float | None]:
    """The lights' regression targets: count and means (None when there is no light)."""
    if not lights:
        return {
            "lights.count": 0,
            "lights.energy_w": None,
            "lights.color_temperature_k": None,
            "lights.elevation_deg": None,
        }
    return {
        "lights.count": len(lights),
        "lights.energy_w": float(np.mean([light.energy for light in lights])),
        "lights.color_temperature_k": float(np.mean([light.temperature_k for light in lights])),
        "lights.elevation_deg": float(np.mean([light.elevation_deg for light in lights])),
    }


def choose_component(rng: np.random.Generator, mixture: Sequence[MixtureComponent]) -> int | None:
    """Index of the mixture component for a frame (probability weight / sum of weights), None without mixture.
    Draws nothing when there is no mixture."""
    if not mixture:
        return None
    w = np.array([m.weight for m in mixture], dtype=np.float64)
    if np.any(w <= 0) or not np.all(np.isfinite(w)):
        raise ValueError("mixture weights must be finite and > 0")
    return int(rng.choice(len(mixture), p=w / w.sum()))
