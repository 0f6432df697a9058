#!/bin/bash
# Two real podmans for test/cdi-podman.test.ts (a CDI spec from `vfioctl cdi` run through podman's
# own CDI parser, with a container that gets the device nodes and reads the token file):
#   1. the host's: Debian 12's podman 4.3.1 (apt-get install podman); its CDI library takes
#      spec versions up to 0.5.0;
#   2. Debian 13's podman 5.4.2 (CDI up to 0.8.0: the newest a podman on Debian accepts, so the
#      default of `vfioctl cdi`), in a Debian 13 root of its own, run chrooted by
#      tools/podman/trixie-podman.sh (rootful, crun, vfs storage, cgroupfs):
#        CACHE=${VFIOCTL_PODMAN_CACHE:-/var/cache/vfioctl-podman}
#        $CACHE/trixie/    debootstrap --variant=minbase --include=podman,crun,busybox-static trixie
#        $CACHE/versions   `podman --version` of that root
#        $CACHE/prepare.log the timings of every run
#      Separate from lab/prepare.sh's trixie folder (DPDK, QEMU) and from tools/systemd-verify's
#      root on purpose: their cache keys must not change for this. Debian 13's backports have no
#      newer podman (checked with apt-cache policy podman in that root: 5.4.2+ds1-2+b2 only).
# Idempotent: nothing is done when both are there (well under a second). Fresh: the host's
# install takes seconds, the Debian 13 root about a minute (times logged below). Without root,
# apt, debootstrap or Debian's registry, it says why and exits 0: the test then skips what it
# cannot run, with that reason.
set -euo pipefail
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }
T0=$(now)
CACHE=${VFIOCTL_PODMAN_CACHE:-/var/cache/vfioctl-podman}
ROOT=$CACHE/trixie
SUITE=trixie
PACKAGES=podman,crun,busybox-static
KEY="$SUITE:$PACKAGES:1"
LOG=/dev/null
say() { echo "[podman/prepare $(date +%T)] $*" | tee -a "$LOG" >&2; }

if [ "$(id -u)" != 0 ]; then say "not root: nothing installed (test/cdi-podman.test.ts will skip)"; exit 0; fi
mkdir -p "$CACHE"
LOG=$CACHE/prepare.log

# ---------------------------------------------------------------- 1. the host's podman (Debian 12)
host_podman() {
  if command -v podman >/dev/null; then
    say "host: cached: $(podman --version)"
    return 0
  fi
  command -v apt-cache >/dev/null || { say "host: no apt: podman not installed (its tests will skip)"; return 0; }
  local cand t
  cand=$(apt-cache policy podman 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
    apt-get update -qq || true
    cand=$(apt-cache policy podman 2>/dev/null | awk '/Candidate:/ {print $2}')
  fi
  if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then say "host: podman has no install candidate in apt's lists (its tests will skip)"; return 0; fi
  t=$(now)
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman >"$CACHE/host-install.log" 2>&1; then
    tail -20 "$CACHE/host-install.log" >&2
    say "host: apt-get install podman ($cand): FAILED (its tests will skip; log $CACHE/host-install.log)"
    return 0
  fi
  say "host: podman $cand installed in $(since "$t") s ($(podman --version))"
}

# ---------------------------------------------------------------- 2. Debian 13's podman, chrooted
# apt_mirror, need_debootstrap, debian_root
. "$(dirname "${BASH_SOURCE[0]}")/../debian-root.sh"
trixie_podman() {
  if [ "$(cat "$CACHE/.done" 2>/dev/null)" = "$KEY" ] && [ -x "$ROOT/usr/bin/podman" ] && [ -x "$ROOT/usr/bin/crun" ] && [ -x "$ROOT/bin/busybox" ]; then
    say "trixie: cached: $(cat "$CACHE/versions" 2>/dev/null) in $ROOT"
    return 0
  fi
  local mirror t
  mirror=${VFIOCTL_PODMAN_MIRROR:-${VFIOCTL_LAB_MIRROR:-$(apt_mirror)}}
  [ -n "$mirror" ] || { say "trixie: no Debian mirror in apt's sources (set VFIOCTL_PODMAN_MIRROR): Debian 13's podman not prepared (its tests will skip)"; return 0; }
  command -v unshare >/dev/null && command -v chroot >/dev/null || { say "trixie: no unshare/chroot: Debian 13's podman not prepared (its tests will skip)"; return 0; }
  local msg
  if ! msg=$(need_debootstrap); then
    say "trixie: debootstrap cannot be installed: Debian 13's podman not prepared (its tests will skip)"
    return 0
  fi
  [ -z "$msg" ] || say "trixie: $msg"
  t=$(now)
  say "trixie: debootstrap $SUITE ($PACKAGES) from $mirror: start"
  rm -f "$CACHE/.done"
  if ! debian_root "$SUITE" "$PACKAGES" "$ROOT" "$mirror" "$CACHE/debootstrap.log"; then
    say "trixie: debootstrap FAILED (log $CACHE/debootstrap.log): Debian 13's podman not prepared (its tests will skip)"
    return 0
  fi
  mkdir -p "$ROOT/etc/cdi"
  chroot "$ROOT" /usr/bin/podman --version 2>/dev/null | head -1 >"$CACHE/versions" || true
  [ -s "$CACHE/versions" ] || dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='podman ${Version}\n' podman >"$CACHE/versions"
  echo "$KEY" >"$CACHE/.done"
  say "trixie: debootstrap done in $(since "$t") s: $(cat "$CACHE/versions") in $ROOT ($(du -sh "$ROOT" | cut -f1))"
}

host_podman
trixie_podman
say "ready in $(since "$T0") s"
