#!/bin/bash
# Install Debian's podman for test/cdi-podman.test.ts (a CDI spec from `vfioctl cdi` run through
# podman's own CDI parser, with a container that reads the token file). Idempotent: nothing is
# done when podman is already installed (well under a second); on a fresh Debian 12 machine the
# install takes tens of seconds (see the times this script logs). Without root, or without
# podman in the host's package lists, it says why and exits 0: the test then skips with that reason.
set -euo pipefail
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }
T0=$(now)
say() { echo "[podman/prepare $(date +%T)] $*" >&2; }
if command -v podman >/dev/null; then
  say "cached: $(podman --version) ($(since "$T0") s)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then say "not root: podman not installed (test/cdi-podman.test.ts will skip)"; exit 0; fi
command -v apt-cache >/dev/null || { say "no apt: podman not installed (test/cdi-podman.test.ts will skip)"; exit 0; }
cand=$(apt-cache policy podman 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
  apt-get update -qq || true
  cand=$(apt-cache policy podman 2>/dev/null | awk '/Candidate:/ {print $2}')
fi
if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then say "podman has no install candidate in apt's lists (test/cdi-podman.test.ts will skip)"; exit 0; fi
t=$(now)
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman >/tmp/podman-prepare.log 2>&1; then
  tail -20 /tmp/podman-prepare.log >&2
  say "apt-get install podman ($cand): FAILED (test/cdi-podman.test.ts will skip)"
  exit 0
fi
say "podman $cand installed in $(since "$t") s ($(podman --version))"
