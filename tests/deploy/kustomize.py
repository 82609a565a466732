"""The part of kustomize that deploy/kubernetes uses, to render it offline (no kustomize binary here).

Only these fields of a ``kustomization.yaml``: ``resources`` (files of YAML documents, or directories
holding a kustomization), ``namespace``, ``images`` (``name`` -> ``newName`` / ``newTag``) and
``patches`` given as a ``path`` to an RFC 6902 JSON patch (``add``, ``replace``, ``remove``) with a
``target`` of ``kind`` and ``name``. Anything else is refused, so a manifest can never lean on a
feature this renderer would silently skip: use a new one, and teach it here first (or install the
real kustomize). The order is kustomize's: resources, then patches, then the namespace and images.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass",
                  "StorageClass", "PersistentVolume"}


class KustomizeError(Exception):
    pass


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl apply -k directory`` would send, for the subset above."""
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = set(spec) - KUSTOMIZATION_FIELDS
    if unknown:
        raise KustomizeError(f"{path}: fields this renderer does not implement: {sorted(unknown)}")
    if spec.get("kind", "Kustomization") != "Kustomization":
        raise KustomizeError(f"{path}: kind {spec['kind']!r}")

    objects: list[dict[str, Any]] = []
    for resource in spec.get("resources", []):
        target = (directory / resource).resolve()
        if target.is_dir():
            objects += render(target)
        elif target.is_file():
            objects += [doc for doc in yaml.safe_load_all(target.read_text()) if doc is not None]
        else:
            raise KustomizeError(f"{path}: resource {resource!r} does not exist")
    seen: set[tuple[str, str, str | None]] = set()
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))
        if key in seen:
            raise KustomizeError(f"{path}: {key} is defined twice")
        seen.add(key)

    for patch in spec.get("patches", []):
        objects = _apply_patch(directory, path, patch, objects)
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        _set_image(path, image, objects)
    return objects


def _apply_patch(directory: Path, path: Path, patch: dict[str, Any], objects: list[dict[str, Any]]):
    if set(patch) != {"path", "target"} or set(patch["target"]) - {"kind", "name"}:
        raise KustomizeError(f"{path}: a patch here is a `path` to a JSON patch and a `target` of kind and name")
    operations = yaml.safe_load((directory / patch["path"]).read_text())
    if not isinstance(operations, list):
        raise KustomizeError(f"{patch['path']}: not a JSON patch (a list of operations)")
    target = patch["target"]
    matched = [o for o in objects if all(
        (o["kind"] if field == "kind" else o["metadata"]["name"]) == value for field, value in target.items())]
    if not matched:
        raise KustomizeError(f"{path}: the patch {patch['path']} matches no object ({target})")
    patched = {id(o): json_patch(o, operations) for o in matched}
    return [patched.get(id(o), o) for o in objects]


def _set_image(path: Path, image: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    if set(image) - {"name", "newName", "newTag"}:
        raise KustomizeError(f"{path}: image fields {sorted(set(image) - {'name', 'newName', 'newTag'})}")
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                new_tag = image.get("newTag", tag)
                container["image"] = image.get("newName", name) + (f":{new_tag}" if new_tag else "")


def json_patch(document: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """``document`` with the RFC 6902 operations add, replace and remove applied (a copy)."""
    result = copy.deepcopy(document)
    for operation in operations:
        op, pointer = operation["op"], operation["path"]
        parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
        if not parts:
            raise KustomizeError(f"{pointer!r}: the whole document cannot be patched here")
        parent: Any = result
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if op == "add":
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), operation["value"])
            else:
                parent[last] = operation["value"]
        elif op in ("replace", "remove"):
            index: Any = int(last) if isinstance(parent, list) else last
            if (isinstance(parent, list) and not 0 <= index < len(parent)) or (
                    isinstance(parent, dict) and index not in parent):
                raise KustomizeError(f"{op} {pointer!r}: nothing there")
            if op == "replace":
                parent[index] = operation["value"]
            else:
                del parent[index]
        else:
            raise KustomizeError(f"JSON patch operation {op!r} is not implemented here")
    return result
