"""Leave the artist's scene exactly as it was: record every value the engine changes, remove what it creates.

The engine never edits the scene through a blanket copy. Every change goes through :meth:`SceneState.set`, which
remembers the first value it saw for ``(owner, attribute)``; every datablock the engine creates goes through
:meth:`SceneState.track`. :meth:`SceneState.restore` puts the values back in reverse order and removes the
created datablocks. :func:`scene_fingerprint` hashes what an artist would notice, so tests can prove it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import bpy

# Removal order matters: objects first (they use meshes, lights, cameras), then their data, then the rest.
_REMOVE_ORDER = (
    "objects",
    "meshes",
    "lights",
    "cameras",
    "curves",
    "materials",
    "worlds",
    "node_groups",
    "images",
    "textures",
    "collections",
)


def _frozen(value: Any) -> Any:
    """A copy that later changes to the live value cannot alter (mathutils values and prop arrays are views)."""
    if hasattr(value, "copy") and not isinstance(value, bpy.types.ID):
        return value.copy()
    if hasattr(value, "__len__") and not isinstance(value, (str, bpy.types.ID)) and hasattr(value, "__getitem__"):
        try:
            return tuple(value)
        except TypeError:
            return value
    return value


_TRANSFORM = ("location", "rotation_euler", "rotation_quaternion", "rotation_axis_angle", "scale")


class SceneState:
    """Records changes to the scene so they can be undone exactly, whatever happened in between."""

    def __init__(self) -> None:
        self._saved: dict[tuple[int, str], tuple[Any, str, Any]] = {}
        self._order: list[tuple[int, str]] = []
        self._created: list[tuple[str, Any]] = []

    def save(self, owner: Any, attr: str) -> None:
        """Remember ``owner.attr`` the first time it is about to change."""
        key = (owner.as_pointer(), attr)
        if key not in self._saved:
            self._saved[key] = (owner, attr, _frozen(getattr(owner, attr)))
            self._order.append(key)

    def set(self, owner: Any, attr: str, value: Any) -> None:
        """Set ``owner.attr = value`` after remembering the original, skipping writes that change nothing."""
        self.save(owner, attr)
        current = getattr(owner, attr)
        if _same(current, value):
            return
        setattr(owner, attr, value)

    def set_world(self, ob: Any, matrix: Any) -> None:
        """Place ``ob`` by world matrix, remembering its location/rotation/scale channels: restoring them is
        exact (no matrix decomposition), whatever the parenting, and never reads a stale ``matrix_world``."""
        for attr in _TRANSFORM:
            self.save(ob, attr)
        ob.matrix_world = matrix

    def track(self, datablock: Any) -> Any:
        """Remember a datablock the engine created, so :meth:`restore` removes it. Returns it for chaining."""
        collection = _collection_name(datablock)
        self._created.append((collection, datablock))
        return datablock

    def untrack_remove(self, datablock: Any) -> None:
        """Remove a created datablock now (per-frame scratch data), keeping memory flat over long runs."""
        collection = _collection_name(datablock)
        self._created = [(c, d) for c, d in self._created if d != datablock]
        getattr(bpy.data, collection).remove(datablock)

    def restore(self) -> list[str]:
        """Put every recorded value back and remove created datablocks. Returns problems (never raises), so a
        failing restore of one value does not leave the others changed."""
        problems: list[str] = []
        for key in reversed(self._order):
            owner, attr, value = self._saved[key]
            try:
                setattr(owner, attr, value)
            except (ReferenceError, AttributeError, TypeError, ValueError) as e:
                problems.append(f"could not restore {attr}: {e}")
        self._saved.clear()
        self._order.clear()
        by_kind: dict[str, list[Any]] = {}
        for collection, block in self._created:
            by_kind.setdefault(collection, []).append(block)
        for collection in _REMOVE_ORDER + tuple(sorted(set(by_kind) - set(_REMOVE_ORDER))):
            for block in by_kind.get(collection, []):
                try:
                    getattr(bpy.data, collection).remove(block)
                except (ReferenceError, RuntimeError):
                    pass  # already gone (removed with its user)
        self._created.clear()
        return problems


def _same(a: Any, b: Any) -> bool:
    try:
        if isinstance(a, bpy.types.ID) or isinstance(b, bpy.types.ID):
            return a == b
        if hasattr(a, "__len__") and hasattr(b, "__len__") and not isinstance(a, str):
            return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=False))
        return a == b
    except (TypeError, ValueError):
        return False


_ID_COLLECTIONS = {
    "Object": "objects",
    "Mesh": "meshes",
    "Light": "lights",
    "Camera": "cameras",
    "Material": "materials",
    "World": "worlds",
    "Image": "images",
    "Collection": "collections",
    "Texture": "textures",
    "Curve": "curves",
}


def _collection_name(block: Any) -> str:
    for cls in type(block).__mro__:
        if cls.__name__ in _ID_COLLECTIONS:
            return _ID_COLLECTIONS[cls.__name__]
        if cls.__name__.endswith("NodeTree"):
            return "node_groups"
    raise TypeError(f"cannot track {type(block).__name__}")


@contextmanager
def preserved(scene: bpy.types.Scene) -> Iterator[SceneState]:
    """``with preserved(scene) as state:`` changes go through ``state`` and are undone on exit, also on error."""
    state = SceneState()
    try:
        yield state
    finally:
        state.restore()


# ---------------------------------------------------------------------------------------------------------------
# Fingerprint


def _r(values: Any, nd: int = 6) -> Any:
    if isinstance(values, float):
        return round(values, nd)
    if hasattr(values, "__len__") and not isinstance(values, str):
        return [_r(v, nd) for v in values]
    return values


def _socket_values(tree: Any) -> list[Any]:
    if tree is None:
        return []
    out = []
    for node in tree.nodes:
        vals = []
        for sock in node.inputs:
            if hasattr(sock, "default_value"):
                try:
                    vals.append(_r(sock.default_value))
                except TypeError:
                    vals.append(str(sock.default_value))
        image = getattr(node, "image", None)
        out.append([node.name, node.bl_idname, vals, image.name if image else None])
    out.append(
        sorted(
            [lk.from_node.name, lk.from_socket.identifier, lk.to_node.name, lk.to_socket.identifier]
            for lk in tree.links
        )
    )
    return out


def _object_state(ob: Any, view_layer: Any) -> list[Any]:
    return [
        ob.name,
        ob.type,
        ob.data.name if ob.data else None,
        ob.parent.name if ob.parent else None,
        [_r(getattr(ob, a)) for a in _TRANSFORM],  # not matrix_world: stale until the depsgraph updates
        ob.rotation_mode,
        ob.hide_render,
        ob.hide_viewport,
        ob.hide_get(view_layer=view_layer),
        ob.select_get(view_layer=view_layer),
        ob.pass_index,
        ob.instance_type,
        ob.instance_collection.name if ob.instance_collection else None,
        [(s.link, s.material.name if s.material else None) for s in ob.material_slots],
        [(m.name, m.show_render, m.show_viewport) for m in ob.modifiers],
        sorted((k, str(ob[k])) for k in ob.keys()),
    ]


def _data_state(block: Any) -> list[Any]:
    if isinstance(block, bpy.types.Light):
        return [block.name, block.type, _r(block.energy), _r(block.color)]
    if isinstance(block, bpy.types.Camera):
        return [block.name, _r(block.lens), _r(block.sensor_width), block.sensor_fit, _r(block.clip_end)]
    return [block.name]


def scene_fingerprint(scene: bpy.types.Scene) -> str:
    """The hash of :func:`fingerprint_parts`: equal before and after a run means the artist's scene is
    untouched."""
    blob = json.dumps(fingerprint_parts(scene), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def fingerprint_parts(scene: bpy.types.Scene) -> dict[str, Any]:
    """What :func:`scene_fingerprint` hashes, JSON-plain (diff two of them to see what changed): object
    transforms, visibility, selection, pass indices, materials, lights, cameras, world, render and view-layer
    settings, frame, and datablock counts."""
    view_layer = scene.view_layers[0]
    r = scene.render
    parts: dict[str, Any] = {
        "frame": scene.frame_current,
        "camera": scene.camera.name if scene.camera else None,
        "world": [scene.world.name, _socket_values(scene.world.node_tree)] if scene.world else None,
        "render": [
            r.engine,
            r.resolution_x,
            r.resolution_y,
            r.resolution_percentage,
            r.filepath,
            r.film_transparent,
            r.use_persistent_data,
            r.image_settings.file_format,
            r.image_settings.color_depth,
            r.image_settings.color_mode,
            r.image_settings.exr_codec,
            getattr(r.image_settings, "media_type", None),
            r.threads_mode,
            r.threads,
            scene.view_settings.view_transform,
            scene.cycles.samples,
            scene.cycles.use_denoising,
            scene.cycles.device,
        ],
        "view_layers": [
            [vl.name, vl.use, vl.use_pass_z, vl.use_pass_object_index, vl.use_pass_normal, _r(vl.pass_alpha_threshold)]
            for vl in scene.view_layers
        ],
        "active": view_layer.objects.active.name if view_layer.objects.active else None,
        "objects": [_object_state(ob, view_layer) for ob in sorted(scene.objects, key=lambda o: o.name)],
        "materials": [[m.name, _socket_values(m.node_tree)] for m in bpy.data.materials],
        "lights": [_data_state(x) for x in bpy.data.lights],
        "cameras": [_data_state(x) for x in bpy.data.cameras],
        "counts": {name: len(getattr(bpy.data, name)) for name in _REMOVE_ORDER if name != "images"},
        # Blender's own render-result / viewer images appear with the first render; they are not the artist's.
        "images": sorted(i.name for i in bpy.data.images if i.type not in {"RENDER_RESULT", "COMPOSITING"}),
        "collections": sorted([c.name, c.hide_render, sorted(o.name for o in c.objects)] for c in bpy.data.collections),
    }
    return json.loads(json.dumps(parts, default=str))
