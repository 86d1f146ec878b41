"""Distractor meshes built through the data API: primitives with bmesh, and OBJ/STL files read here.

No ``bpy.ops``: the importers depend on context and change the selection. The OBJ reader keeps vertices and
faces (polygons fanned by Blender), which is all a distractor needs; STL is read in its binary and ASCII forms.
"""

from __future__ import annotations

import math
import os
import struct

import bmesh
import bpy
import numpy as np

from .errors import EngineError

MESH_SUFFIXES = (".obj", ".stl")


def primitive_mesh(kind: str) -> bpy.types.Mesh:
    """A new mesh of unit size (about 1 m across) for a primitive name of ``DistractorRandomizer.primitives``."""
    mesh = bpy.data.meshes.new(f"blendset_{kind}")
    if kind == "torus":
        verts, faces = _torus(0.35, 0.15, 24, 12)
        mesh.from_pydata(verts, [], faces)
        mesh.update()
        return mesh
    bm = bmesh.new()
    try:
        if kind == "cube":
            bmesh.ops.create_cube(bm, size=1.0)
        elif kind == "sphere":
            bmesh.ops.create_uvsphere(bm, u_segments=24, v_segments=12, radius=0.5)
        elif kind == "cylinder":
            bmesh.ops.create_cone(bm, cap_ends=True, segments=24, radius1=0.5, radius2=0.5, depth=1.0)
        elif kind == "cone":
            bmesh.ops.create_cone(bm, cap_ends=True, segments=24, radius1=0.5, radius2=0.0, depth=1.0)
        elif kind == "monkey":
            bmesh.ops.create_monkey(bm)
            bmesh.ops.scale(bm, vec=(0.5, 0.5, 0.5), verts=bm.verts)
        else:
            raise EngineError(f"unknown primitive {kind!r}", "distractors.primitives")
        bm.to_mesh(mesh)
    finally:
        bm.free()
    return mesh


def _torus(major: float, minor: float, nu: int, nv: int) -> tuple[list, list]:
    verts = []
    for i in range(nu):
        u = 2 * math.pi * i / nu
        for j in range(nv):
            v = 2 * math.pi * j / nv
            r = major + minor * math.cos(v)
            verts.append((r * math.cos(u), r * math.sin(u), minor * math.sin(v)))
    faces = []
    for i in range(nu):
        for j in range(nv):
            a, b = i * nv + j, ((i + 1) % nu) * nv + j
            c, d = ((i + 1) % nu) * nv + (j + 1) % nv, i * nv + (j + 1) % nv
            faces.append((a, b, c, d))
    return verts, faces


def list_mesh_files(folder: str) -> list[str]:
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.lower().endswith(MESH_SUFFIXES))


def load_mesh_file(path: str) -> bpy.types.Mesh:
    """A mesh from an OBJ or STL file, centred on its bounding box and scaled to about 1 m across."""
    if path.lower().endswith(".obj"):
        verts, faces = _read_obj(path)
    elif path.lower().endswith(".stl"):
        verts, faces = _read_stl(path)
    else:
        raise EngineError(f"{path}: only {', '.join(MESH_SUFFIXES)} meshes are read", "distractors.mesh_dir")
    if len(verts) == 0 or len(faces) == 0:
        raise EngineError(f"{path}: no faces in the file", "distractors.mesh_dir")
    v = np.asarray(verts, dtype=np.float64)
    lo, hi = v.min(axis=0), v.max(axis=0)
    size = float(np.max(hi - lo)) or 1.0
    v = (v - (lo + hi) / 2.0) / size
    mesh = bpy.data.meshes.new("blendset_" + os.path.splitext(os.path.basename(path))[0])
    mesh.from_pydata(v.tolist(), [], faces)
    mesh.validate()
    mesh.update()
    return mesh


def _read_obj(path: str) -> tuple[list, list]:
    verts: list[tuple[float, float, float]] = []
    faces: list[tuple[int, ...]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("v "):
                    x, y, z = line.split()[1:4]
                    verts.append((float(x), float(y), float(z)))
                elif line.startswith("f "):
                    idx = []
                    for tok in line.split()[1:]:
                        i = int(tok.split("/")[0])
                        idx.append(i - 1 if i > 0 else len(verts) + i)
                    if len(idx) >= 3:
                        faces.append(tuple(idx))
    except (OSError, ValueError) as e:
        raise EngineError(f"{path}: cannot read OBJ ({e})", "distractors.mesh_dir") from None
    return verts, faces


def _read_stl(path: str) -> tuple[np.ndarray, list]:
    with open(path, "rb") as f:
        data = f.read()
    if len(data) >= 84:
        n = struct.unpack("<I", data[80:84])[0]
        if len(data) == 84 + 50 * n:
            rec = np.frombuffer(data[84:], dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")]))
            verts = rec["v"].reshape(-1, 3).astype(np.float64)
            return verts, [(3 * i, 3 * i + 1, 3 * i + 2) for i in range(n)]
    words = data.decode("ascii", errors="replace").split()
    pts = []
    for i, w in enumerate(words):
        if w == "vertex":
            pts.append((float(words[i + 1]), float(words[i + 2]), float(words[i + 3])))
    verts = np.asarray(pts, dtype=np.float64)
    return verts, [(3 * i, 3 * i + 1, 3 * i + 2) for i in range(len(pts) // 3)]
