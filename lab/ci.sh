#!/bin/bash
# The real-kernel conformance check for CI: prepare the lab if needed (cached under
# ${VFIOCTL_LAB_CACHE:-/var/cache/vfioctl-lab}), build, then run every scenarios/*.yaml on Linux 6.1
# and 6.12 guests and on the model, and compare per operation; and the CLI rows (cli:*), the
# host lifecycle rows (host:*, three guest runs per kernel, ~60-80 s each kernel) and the
# real-consumer rows (dpdk:*, qemu:vf: four guest runs per kernel with 4 GiB and hugepages,
# ~30-50 s each; they fail on vfioctl disagreeing with DPDK or QEMU, WRONG(n)) (docs/lab.md).
#
#   bash lab/ci.sh [--kernel 6.1] [scenario files…]
#
# Exit status: 0 all match; 1 some scenario differs from the model; 2 the lab could not run.
# Times: prepare ~70-130 s on a fresh machine (debootstrap ~60-100 s, 6.1 kernel ~5-15 s, DPDK's
# testpmd and socat into the Debian 13 folder ~6-11 s, initramfs ~1 s), ~1 s when cached; each
# guest run ~10-50 s under TCG (two at a time).
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
if [ "$(id -u)" != 0 ]; then echo "lab/ci.sh: needs root (debootstrap, mounts, chroot)" >&2; exit 2; fi
bash lab/prepare.sh || { echo "lab/ci.sh: prepare failed" >&2; exit 2; }
[ -d node_modules ] || npm ci --no-audit --no-fund >&2 || exit 2
npx tsc -p tsconfig.json || { echo "lab/ci.sh: build failed" >&2; exit 2; }
node dist/lab/cli.js --report --no-prepare "$@"
rc=$?
echo "lab/ci.sh: exit $rc after $(( $(date +%s) - T0 )) s"
exit $rc
