#!/usr/bin/env bash
# Provision a real Blender binary (Debian sid's 5.2 LTS) in a debootstrap chroot, cached outside the clone.
# Prints the path of a wrapper script that runs `blender` inside the chroot with the work tree bind-mounted.
# Reuses the chroot when present. Needs root (CI and developer machines here run as root).
set -euo pipefail
CACHE="${BLENDSET_CACHE:-$HOME/.cache/blendset}"
ROOT="$CACHE/blender-sid"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
WRAPPER="$CACHE/blender"
# numpy: the engine's pure layer needs it; Debian's blender does not pull it in.
PKGS="blender python3-numpy xvfb xauth x11-utils xdotool imagemagick"
log() { echo "[provision_blender] $*" >&2; }

if [ "$(id -u)" != 0 ]; then log "not root: cannot debootstrap; skipping"; exit 1; fi
mkdir -p "$CACHE"
if [ ! -x "$ROOT/usr/bin/blender" ]; then
  command -v debootstrap >/dev/null || { apt-get update -qq >&2; apt-get install -y -qq debootstrap >&2; }
  rm -rf "$ROOT.tmp"
  log "debootstrap sid into $ROOT (about 2 minutes)"
  debootstrap --variant=minbase sid "$ROOT.tmp" "$MIRROR" >&2
  cp /etc/resolv.conf "$ROOT.tmp/etc/resolv.conf"
  mount -t proc proc "$ROOT.tmp/proc"
  trap 'umount "$ROOT.tmp/proc" 2>/dev/null || true' EXIT
  chroot "$ROOT.tmp" apt-get -o Acquire::Check-Valid-Until=false update -qq >&2
  chroot "$ROOT.tmp" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $PKGS >&2
  umount "$ROOT.tmp/proc"; trap - EXIT
  mv "$ROOT.tmp" "$ROOT"
fi
# An older cache may lack a package added since: install what is missing.
missing=$(for p in $PKGS; do chroot "$ROOT" dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  log "installing into cached chroot: $missing"
  mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
  chroot "$ROOT" apt-get -o Acquire::Check-Valid-Until=false update -qq >&2
  chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
fi
# The wrapper bind-mounts the host's working folders at the same paths inside the chroot, so absolute paths
# (scene, config, output) mean the same thing on both sides. Add more with BLENDSET_BIND="dir1 dir2".
cat > "$WRAPPER" <<WRAP
#!/usr/bin/env bash
set -e
ROOT="$ROOT"
mountpoint -q "\$ROOT/proc" || mount -t proc proc "\$ROOT/proc"
mountpoint -q "\$ROOT/dev" || mount --rbind /dev "\$ROOT/dev"
top="/\$(pwd | cut -d/ -f2)"
for d in /tmp /work /root /home /var/tmp "\$top" \${BLENDSET_BIND:-}; do
  [ -d "\$d" ] && [ "\$d" != / ] || continue
  mkdir -p "\$ROOT\$d"
  mountpoint -q "\$ROOT\$d" || mount --rbind "\$d" "\$ROOT\$d"
done
exec chroot "\$ROOT" /usr/bin/env HOME="\$HOME" /bin/bash -c 'cd "\$1" || exit 1; shift; exec "\$@"' _ "\$PWD" \${BLENDSET_CHROOT_CMD:-blender} "\$@"
WRAP
chmod +x "$WRAPPER"
echo "$WRAPPER"
