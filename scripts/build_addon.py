"""Build the installable add-on: ``dist/blendset-<version>.zip`` for Blender's "Install from Disk".

The zip holds one top-level folder ``blendset/`` with ``blender_manifest.toml`` (the Blender 4.2+ extension
route), the add-on's modules, and a real copy of ``shared/`` (the repository links ``blender_addon/shared`` to
``../shared``; a link would not survive installation). The legacy add-on route reads ``bl_info`` from the same
``__init__.py``. Tests, caches and compiled files are left out.

Usage: ``python scripts/build_addon.py --out dist`` (``make addon``). Prints the zip's path.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
    tmp = target + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, rel in _files(ADDON):
            zf.write(path, f"{PACKAGE}/{rel}")
    os.replace(tmp, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="dist", help="folder for the zip (default: dist)")
    args = parser.parse_args(argv)
    print(build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
