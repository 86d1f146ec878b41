"""Which objects are labelled, with which class, and which rendered objects make up each instance.

Labels come from three places, merged: the config's ``classes`` (objects and collections by name), custom
properties on objects or collections (``blendset_class`` name and/or ``blendset_class_id``), and BlenderProc's
``category_id``. Class id 0 is an ordinary class. An object marked as a target (``blendset_target``) without a
label is an error, as is an object claimed by two classes.

Instances that Cycles cannot tell apart in the object-index pass (every copy of a collection instance or of a
geometry-nodes instance shares its source object's ``pass_index``) are realized: one proxy object per instanced
mesh, parented to the instancer so pose randomization moves them along, while the instancer itself stops
instancing for the run. All of it goes through :class:`SceneState`, so it is undone at close.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import bpy
from mathutils import Matrix

from .errors import EngineError
from .scene_state import SceneState

RENDERABLE = {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES", "POINTCLOUD", "VOLUME"}
PROP_NAME = "blendset_class"
PROP_ID = "blendset_class_id"
PROP_TARGET = "blendset_target"
PROP_BPROC = "category_id"


@dataclass
class Category:
    id: int
    name: str


@dataclass
class Target:
    """One annotated instance. ``root`` is what the pose randomizer moves; ``parts`` are the objects rendered
    with this instance's pass index (the root and its unlabelled descendants, or realized proxies)."""

    name: str
    category: Category
    root: Any
    parts: list[Any] = field(default_factory=list)
    instance_id: int = 0


@dataclass
class Label:
    name: str | None
    id: int | None
    source: str


def _read_label(block: Any) -> Label | None:
    """The label stored on an object or collection, or None. Raises for a target mark without a label."""
    name = block.get(PROP_NAME)
    cid = block.get(PROP_ID)
    if cid is None:
        cid = block.get(PROP_BPROC)
    where = f"{type(block).__name__.lower()} {block.name!r}"
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise EngineError(f"{where}: custom property {PROP_NAME} must be a non-empty class name, got {name!r}")
    if cid is not None:
        if isinstance(cid, float) and cid.is_integer():
            cid = int(cid)
        if not isinstance(cid, int) or isinstance(cid, bool) or cid < 0:
            raise EngineError(f"{where}: class id custom property must be an integer >= 0, got {cid!r}")
    if name is None and cid is None:
        if block.get(PROP_TARGET):
            raise EngineError(
                f"{where} is marked as a target ({PROP_TARGET}) but has no label: set the custom property "
                f"{PROP_NAME} (class name) and/or {PROP_ID}, or list it under classes in the config"
            )
        return None
    return Label(name=name, id=cid, source=where)


def _label_parts(ob: Any, labelled: set[str]) -> list[Any]:
    """The object plus its descendants that carry no label of their own: a multi-part object is one instance."""
    parts = [ob]
    for child in ob.children:
        if child.name not in labelled:
            parts.extend(_label_parts(child, labelled))
    return parts


class _ClassTable:
    """Resolves (name, id) pairs from config and properties into one consistent category list."""

    def __init__(self, config: Any):
        self.by_name: dict[str, Category] = {}
        self.by_id: dict[int, Category] = {}
        for c in config.classes:
            cat = Category(c.id, c.name)
            self.by_name[c.name] = cat
            self.by_id[c.id] = cat
        self._pending: list[tuple[str, Label]] = []

    def resolve(self, label: Label) -> Category:
        if label.name is not None and label.name in self.by_name:
            cat = self.by_name[label.name]
            if label.id is not None and label.id != cat.id:
                raise EngineError(f"{label.source}: class {label.name!r} has id {cat.id} elsewhere but {label.id} here")
            return cat
        if label.id is not None and label.id in self.by_id:
            cat = self.by_id[label.id]
            if label.name is not None and label.name != cat.name:
                raise EngineError(
                    f"{label.source}: class id {label.id} is {cat.name!r} elsewhere but {label.name!r} here"
                )
            return cat
        if label.id is None:
            cid = max(self.by_id, default=-1) + 1
        else:
            cid = label.id
        cat = Category(cid, label.name if label.name is not None else f"class_{cid}")
        self.by_name[cat.name] = cat
        self.by_id[cat.id] = cat
        return cat

    def categories(self) -> list[Category]:
        return sorted(self.by_id.values(), key=lambda c: c.id)


def resolve_targets(scene: Any, config: Any) -> tuple[list[Target], list[Category], list[str]]:
    """Targets (one per annotated instance, before realization), the categories, and notes about skipped
    objects (hidden from render, not in the scene)."""
    table = _ClassTable(config)
    assigned: dict[str, tuple[Category, str]] = {}
    notes: list[str] = []
    in_scene = {ob.name for ob in scene.objects}

    def claim(ob: Any, cat: Category, why: str) -> None:
        if ob.name in assigned and assigned[ob.name][0].id != cat.id:
            other = assigned[ob.name]
            raise EngineError(f"object {ob.name!r} is labelled {other[0].name!r} ({other[1]}) and {cat.name!r} ({why})")
        assigned.setdefault(ob.name, (cat, why))

    for i, spec in enumerate(config.classes):
        cat = table.by_name[spec.name]
        for j, name in enumerate(spec.objects):
            ob = bpy.data.objects.get(name)
            if ob is None or name not in in_scene:
                raise EngineError(f"no object named {name!r} in scene {scene.name!r}", f"classes[{i}].objects[{j}]")
            claim(ob, cat, f"classes[{i}].objects")
        for j, name in enumerate(spec.collections):
            coll = bpy.data.collections.get(name)
            if coll is None:
                raise EngineError(f"no collection named {name!r}", f"classes[{i}].collections[{j}]")
            for ob in coll.all_objects:
                if ob.name in in_scene and _is_candidate(ob):
                    claim(ob, cat, f"classes[{i}].collections")

    if config.label_properties:
        # Labels with an explicit id resolve first, so a name-only label never takes an id claimed elsewhere.
        labels: list[tuple[Any, Label, bool]] = []
        for coll in sorted(bpy.data.collections, key=lambda c: c.name):
            label = _read_label(coll)
            if label is not None:
                labels.append((coll, label, True))
        for ob in sorted(scene.objects, key=lambda o: o.name):
            label = _read_label(ob)
            if label is not None:
                labels.append((ob, label, False))
        cats = {}
        for explicit in (True, False):
            for block, label, _ in labels:
                if (label.id is not None) == explicit:
                    cats[id(block)] = table.resolve(label)
        for block, _, is_collection in labels:
            cat = cats[id(block)]
            if not is_collection:
                claim(block, cat, "custom property")
                continue
            for ob in block.all_objects:
                if ob.name in in_scene and _is_candidate(ob) and _read_label(ob) is None:
                    claim(ob, cat, f"collection {block.name!r} property")

    labelled = set(assigned)
    # Descendants of a labelled object that are also in `assigned` only because a collection swept them up
    # stay parts of their labelled ancestor when they share its class.
    targets: list[Target] = []
    for name in sorted(assigned):
        ob = bpy.data.objects[name]
        cat = assigned[name][0]
        anc = ob.parent
        merged = False
        while anc is not None:
            if anc.name in assigned and assigned[anc.name][0].id == cat.id and _read_label(ob) is None:
                merged = True
                break
            anc = anc.parent
        if merged:
            continue
        if ob.hide_render:  # kept: a scene hook may show it; frames where it stays hidden list it as hidden
            notes.append(
                f"object {name!r} ({cat.name}) is hidden from render now: annotated only in frames that show it"
            )
        parts = _label_parts(ob, labelled - {name})
        targets.append(Target(name=name, category=cat, root=ob, parts=parts))
    return targets, table.categories(), notes


def _is_candidate(ob: Any) -> bool:
    return ob.type in RENDERABLE or (ob.type == "EMPTY" and ob.instance_type == "COLLECTION" and ob.instance_collection)


# ---------------------------------------------------------------------------------------------------------------
# Realizing instances


def _instancer_kind(ob: Any) -> str | None:
    if ob.type == "EMPTY" and ob.instance_type == "COLLECTION" and ob.instance_collection is not None:
        return "collection"
    if any(m.type == "NODES" and m.show_render for m in ob.modifiers):
        return "nodes"
    if ob.instance_type in {"VERTS", "FACES"} or any(m.type == "PARTICLE_SYSTEM" for m in ob.modifiers):
        return "nodes"
    return None


def realize_instances(
    scene: Any, view_layer: Any, targets: list[Target], state: SceneState, scratch: Any
) -> list[Target]:
    """Replace instancing targets by proxies Cycles can tell apart. A collection instance stays one target
    (all its meshes share an id); each top-level geometry-nodes/particle instance becomes its own target."""
    kinds = {t.name: _instancer_kind(t.root) for t in targets}
    if not any(kinds.values()):
        return targets
    depsgraph = view_layer.depsgraph
    depsgraph.update()
    groups: dict[str, dict[Any, list[tuple[Any, Matrix]]]] = {}
    for inst in depsgraph.object_instances:
        if not inst.is_instance or inst.parent is None:
            continue
        src = inst.parent.original
        if kinds.get(src.name) is None:
            continue
        ob_eval = inst.object
        if ob_eval.type not in RENDERABLE:
            continue
        # persistent_id: [0] the instancer's element (dupli-verts, particles), [1] the geometry-nodes instance.
        key = 0 if kinds[src.name] == "collection" else tuple(inst.persistent_id)[:2]
        mesh = state.track(_instance_mesh(ob_eval, depsgraph))
        groups.setdefault(src.name, {}).setdefault(key, []).append((mesh, inst.matrix_world.copy()))

    out: list[Target] = []
    for t in targets:
        kind = kinds[t.name]
        if kind is None:
            out.append(t)
            continue
        src = t.root
        inverse = src.matrix_world.inverted_safe()
        found = groups.get(src.name, {})
        if kind == "nodes":
            own = _own_geometry(src, depsgraph, state)
            if own is not None:
                found = dict(found)
                found[("own",)] = [(own, src.matrix_world.copy())]
            state.set(src, "hide_render", True)
        else:
            state.set(src, "instance_type", "NONE")
        for k, key in enumerate(sorted(found, key=str)):
            parts = []
            for j, (mesh, world) in enumerate(found[key]):
                proxy = state.track(bpy.data.objects.new(f"blendset_{src.name}_{k}_{j}", mesh))
                scratch.objects.link(proxy)
                proxy.parent = src
                proxy.matrix_parent_inverse = Matrix.Identity(4)
                proxy.matrix_basis = inverse @ world
                parts.append(proxy)
            name = t.name if kind == "collection" else f"{t.name}[{k}]"
            out.append(Target(name=name, category=t.category, root=src, parts=parts))
    return out


def _instance_mesh(ob_eval: Any, depsgraph: Any) -> Any:
    """A standalone copy of an instance's evaluated mesh (geometry-nodes instances have no original object)."""
    if isinstance(ob_eval.data, bpy.types.Mesh):
        return ob_eval.data.copy()
    return bpy.data.meshes.new_from_object(ob_eval, preserve_all_data_layers=True, depsgraph=depsgraph)


def _own_geometry(src: Any, depsgraph: Any, state: SceneState) -> Any:
    """The instancer's own (non-instance) evaluated mesh, or None when it has no faces."""
    if src.type != "MESH":
        return None
    mesh = bpy.data.meshes.new_from_object(src.evaluated_get(depsgraph), depsgraph=depsgraph)
    if len(mesh.polygons) == 0:
        bpy.data.meshes.remove(mesh)
        return None
    return state.track(mesh)
