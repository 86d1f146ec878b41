"""Build the installable add-on: ``dist/blendset-<version>.zip`` for Blender's "Install from Disk".

The zip holds one top-level folder ``blendset/`` with ``blender_manifest.toml`` (the Blender 4.2+ extension
route), the add-on's modules, and a real copy of ``shared/`` (the repository links ``blender_addon/shared`` to
``../shared``; a link would not survive installation). The legacy add-on route reads ``bl_info`` from the same
``__init__.py``. Tests, caches and compiled files are left out; every module of ``shared/`` (``errors``,
``atomic``, ``progress`` included) must be in the zip, or the build fails naming the missing ones.

Usage: ``python scripts/build_addon.py --out dist`` (``make addon``). Prints the zip's path.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
import zipfile
from collections.abc import Iterable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from shared.atomic import atomic_path  # noqa: E402  (the repository root is on sys.path only from here on)

ADDON = os.path.join(ROOT, "blender_addon")
PACKAGE = "blendset"
SKIP_DIRS = {"__pycache__", "tests", ".pytest_cache", ".ruff_cache"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".tmp", ".orig", ".rej")


def _files(top: str) -> list[tuple[str, str]]:
    """(path on disk, path relative to ``top``) for every file to ship; links to folders are followed."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(SKIP_SUFFIXES) or name.startswith("."):
                continue
            path = os.path.join(dirpath, name)
            out.append((path, os.path.relpath(path, top)))
    return out


def build(out_dir: str) -> str:
    with open(os.path.join(ADDON, "blender_manifest.toml"), "rb") as f:
        manifest = tomllib.load(f)
    if manifest.get("id") != PACKAGE:
        raise SystemExit(f"blender_manifest.toml: id must be {PACKAGE!r}, got {manifest.get('id')!r}")
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, f"{PACKAGE}-{manifest['version']}.zip")
    files = _files(ADDON)
    _check_shared(rel for _, rel in files)
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, rel in files:
            zf.write(path, f"{PACKAGE}/{rel}")
    return target


def _check_shared(shipped: Iterable[str]) -> None:
    """Blender imports ``shared`` from the zip alone: a module left out would fail only at import time there."""
    have = set(shipped)
    wanted = sorted(n for n in os.listdir(os.path.join(ROOT, "shared")) if n.endswith(".py"))
    missing = [n for n in wanted if f"shared/{n}" not in have]
    if missing:
        raise SystemExit(f"the zip would lack shared/{', shared/'.join(missing)}: is blender_addon/shared a link?")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="dist", help="folder for the zip (default: dist)")
    args = parser.parse_args(argv)
    print(build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
