#!/bin/bash
# Prepare a minimal Debian 13 ("trixie") root with systemd, udev and kmod, for checking the boot
# files `vfioctl install` generates with a newer systemd than the Debian 12 host's (udevadm verify
# first shipped in systemd 254; Debian 12 has 252). Needs root and Debian's package registry.
# The host's own systemd is never touched: everything lives in the cache dir.
#
#   CACHE=${VFIOCTL_SYSTEMD_VERIFY_CACHE:-/var/cache/vfioctl-systemd-verify}
#   $CACHE/trixie/      the Debian 13 root (debootstrap --variant=minbase --include=$PACKAGES)
#   $CACHE/versions     `systemctl --version` of that root, first line
#   $CACHE/prepare.log  timings of every run
#
# Idempotent: the root is rebuilt only when its marker (suite + package list) is missing, so a
# cached run takes well under a second. Separate from lab/prepare.sh's trixie folder on purpose:
# that one carries QEMU and kernels and its cache key must not change for this.
set -euo pipefail

CACHE=${VFIOCTL_SYSTEMD_VERIFY_CACHE:-/var/cache/vfioctl-systemd-verify}
SUITE=trixie
PACKAGES=systemd,udev,kmod
KEY="$SUITE:$PACKAGES:1"

# apt_mirror, need_debootstrap, debian_root
. "$(dirname "${BASH_SOURCE[0]}")/../debian-root.sh"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }
T0=$(now)
[ "$(id -u)" = 0 ] || { echo "tools/systemd-verify/prepare.sh: must run as root (debootstrap)" >&2; exit 2; }
mkdir -p "$CACHE"
LOG=$CACHE/prepare.log
say() { echo "[systemd-verify/prepare $(date +%T)] $*" | tee -a "$LOG" >&2; }

ROOT=$CACHE/trixie
if [ "$(cat "$CACHE/.done" 2>/dev/null)" = "$KEY" ] && [ -x "$ROOT/usr/bin/udevadm" ] && [ -x "$ROOT/usr/bin/systemd-analyze" ]; then
  say "cached: $(cat "$CACHE/versions" 2>/dev/null) in $ROOT ($(since "$T0") s)"
  exit 0
fi

MIRROR=${VFIOCTL_SYSTEMD_VERIFY_MIRROR:-${VFIOCTL_LAB_MIRROR:-$(apt_mirror)}}
[ -n "$MIRROR" ] || { echo "tools/systemd-verify/prepare.sh: no Debian mirror found in apt's sources; set VFIOCTL_SYSTEMD_VERIFY_MIRROR" >&2; exit 2; }

msg=$(need_debootstrap) || { say "debootstrap cannot be installed on this host"; exit 1; }
[ -z "$msg" ] || say "$msg"

t=$(now)
say "debootstrap $SUITE ($PACKAGES) from $MIRROR: start"
rm -f "$CACHE/.done"
if ! debian_root "$SUITE" "$PACKAGES" "$ROOT" "$MIRROR" "$CACHE/debootstrap.log"; then
  say "debootstrap: FAILED (log: $CACHE/debootstrap.log)"
  exit 1
fi
chroot "$ROOT" systemctl --version | head -1 >"$CACHE/versions"
echo "$KEY" >"$CACHE/.done"
say "debootstrap: done in $(since "$t") s"
say "ready: $(cat "$CACHE/versions") in $ROOT ($(since "$T0") s, $(du -sh "$ROOT" | cut -f1))"
