#!/usr/bin/env bash
# Start Blender with its UI on a virtual X display (inside the Blender chroot, or anywhere with xvfb-run).
# Usage: run_ui_blender.sh WIDTHxHEIGHT [blender arguments...]
set -euo pipefail
size="$1"; shift
w="${size%x*}"; h="${size#*x}"
exec xvfb-run -a -s "-screen 0 ${size}x24 -nolisten tcp" \
  blender --factory-startup --no-window-focus --window-geometry 0 0 "$w" "$h" "$@"
