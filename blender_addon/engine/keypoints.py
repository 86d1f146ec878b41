"""Where each annotated instance's keypoints are in the world, read from the evaluated scene each frame.

The config's ``classes[i].keypoints`` (``shared.config.KeypointSpec``) names them; three sources:

- ``vertex_groups``: one vertex group per name on the instance's meshes (its parts); the keypoint is the
  weighted mean of the group's vertices on the evaluated mesh (armatures, shape keys and other modifiers
  applied). The weights are read once, when the run opens; a modifier that changes the vertex count (subdivision)
  makes each frame read them from the evaluated mesh instead, which costs a Python pass over its vertices.
- ``empties``: one empty per name among the descendants of the instance's object, matched by its name or by
  Blender's duplicate name (``tip.001``), so several instances of a class can each carry a ``tip``; the
  keypoint is the empty's world location.
- ``local``: the config's coordinates in the instance object's local frame (its world matrix, scale included).

:func:`plan_keypoints` resolves all of it when the run opens, so a missing group or empty stops the run before
any file is written (the error names the config field and the object); :func:`world_keypoints` gives the
frame's positions, which ``shared.keypoints`` projects and checks against the depth map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import EngineError
from .geometry import MeshCache


@dataclass
class _GroupWeights:
    """One mesh part's share of a vertex-group keypoint set: vertex ``rows`` count towards keypoint ``kp`` with
    ``weights``; ``groups`` maps the part's vertex-group index to the keypoint index (for the slow path)."""

    part: Any
    n_vertices: int
    rows: np.ndarray
    kp: np.ndarray
    weights: np.ndarray
    groups: dict[int, int]


@dataclass
class KeypointPlan:
    """How to find one instance's keypoints each frame."""

    names: tuple[str, ...]
    source: str
    root: Any
    groups: list[_GroupWeights] = field(default_factory=list)
    empties: list[Any] = field(default_factory=list)
    local: np.ndarray | None = None


def plan_keypoints(config: Any, targets: list[Any]) -> dict[int, KeypointPlan]:
    """Instance id -> :class:`KeypointPlan` for every target of a class with keypoints. Raises
    :class:`EngineError` naming ``classes[i].keypoints.names[j]`` when a target lacks a keypoint."""
    specs = {c.name: (i, c.keypoints) for i, c in enumerate(config.classes) if c.keypoints is not None}
    plans: dict[int, KeypointPlan] = {}
    if not specs:
        return plans
    for t in targets:
        if t.category.name not in specs:
            continue
        i, spec = specs[t.category.name]
        path = f"classes[{i}].keypoints"
        plan = KeypointPlan(names=spec.names, source=spec.source, root=t.root)
        if spec.source == "vertex_groups":
            plan.groups = _read_groups(t, spec.names, path)
        elif spec.source == "empties":
            plan.empties = _find_empties(t, spec.names, path)
        else:
            plan.local = np.asarray(spec.coordinates, dtype=np.float64).reshape(-1, 3)
        plans[t.instance_id] = plan
    return plans


def _read_groups(target: Any, names: tuple[str, ...], path: str) -> list[_GroupWeights]:
    wanted = {n: k for k, n in enumerate(names)}
    found = np.zeros(len(names))
    out = []
    meshes = [p for p in target.parts if p.type == "MESH" and p.data is not None]
    for part in meshes:
        groups = {g.index: wanted[g.name] for g in part.vertex_groups if g.name in wanted}
        if not groups:
            continue
        rows, kp, weights = _weights(part.data.vertices, groups)
        np.add.at(found, kp, weights)
        out.append(_GroupWeights(part, len(part.data.vertices), rows, kp, weights, groups))
    for k, n in enumerate(names):
        if found[k] <= 0:
            on = ", ".join(repr(p.name) for p in meshes) or "none"
            raise EngineError(
                f"instance {target.name!r} has no vertex group {n!r} with weighted vertices (its meshes: {on})",
                f"{path}.names[{k}]",
            )
    return out


def _weights(vertices: Any, groups: dict[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertex rows, keypoint indices and weights of the wanted groups (one pass over the vertices: bpy has no
    bulk read of vertex-group weights)."""
    rows, kp, weights = [], [], []
    for v in vertices:
        for g in v.groups:
            k = groups.get(g.group)
            if k is not None and g.weight > 0.0:
                rows.append(v.index)
                kp.append(k)
                weights.append(g.weight)
    return np.array(rows, dtype=np.int64), np.array(kp, dtype=np.int64), np.array(weights, dtype=np.float64)


def _find_empties(target: Any, names: tuple[str, ...], path: str) -> list[Any]:
    descendants = [ob for ob in target.root.children_recursive if ob.type == "EMPTY"]
    out = []
    for k, n in enumerate(names):
        exact = [ob for ob in descendants if ob.name == n]
        dup = re.compile(re.escape(n) + r"\.\d{3,}")
        matches = exact or [ob for ob in descendants if dup.fullmatch(ob.name)]
        if len(matches) != 1:
            what = "no empty" if not matches else f"{len(matches)} empties ({', '.join(o.name for o in matches)})"
            raise EngineError(
                f"instance {target.name!r}: {what} named {n!r} (or {n + '.001'!r}, ...) among the descendants of "
                f"{target.root.name!r}",
                f"{path}.names[{k}]",
            )
        out.append(matches[0])
    return out


def _matrix(ob: Any, depsgraph: Any) -> np.ndarray:
    return np.array([list(row) for row in ob.evaluated_get(depsgraph).matrix_world], dtype=np.float64)


def world_keypoints(plan: KeypointPlan, depsgraph: Any, meshes: MeshCache) -> np.ndarray:
    """The instance's keypoints in world space this frame, K x 3 (NaN for a vertex group left with no weight by
    a modifier: such a keypoint counts as outside the image)."""
    k = len(plan.names)
    if plan.source == "local":
        assert plan.local is not None
        m = _matrix(plan.root, depsgraph)
        return plan.local @ m[:3, :3].T + m[:3, 3]
    if plan.source == "empties":
        return np.array([list(_matrix(e, depsgraph)[:3, 3]) for e in plan.empties], dtype=np.float64).reshape(k, 3)
    sums = np.zeros((k, 3))
    total = np.zeros(k)
    for g in plan.groups:
        verts, _ = meshes.local(g.part, depsgraph)
        rows, kp, weights = g.rows, g.kp, g.weights
        if len(verts) != g.n_vertices:  # topology changed by a modifier: the weights of the evaluated mesh
            verts, rows, kp, weights = _evaluated_weights(g, depsgraph)
        local = np.zeros((k, 3))
        np.add.at(local, kp, verts[rows] * weights[:, None])
        w = np.bincount(kp, weights=weights, minlength=k)
        m = _matrix(g.part, depsgraph)
        sums += local @ m[:3, :3].T + w[:, None] * m[:3, 3]  # the weighted sum, moved to world space
        total += w
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / total[:, None]


def _evaluated_weights(g: _GroupWeights, depsgraph: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ob_eval = g.part.evaluated_get(depsgraph)
    mesh = ob_eval.to_mesh()
    try:
        verts = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", verts)
        rows, kp, weights = _weights(mesh.vertices, g.groups)
    finally:
        ob_eval.to_mesh_clear()
    return verts.reshape(-1, 3).astype(np.float64), rows, kp, weights
