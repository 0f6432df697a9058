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
# Beyond Debian's two kernels CI builds and runs ONE kernel of the lab's own (VFIOCTL_LAB_KERNELS,
# default "7.3-cdev": Debian's linux-source-7.3 with IOMMUFD and VFIO_DEVICE_CDEV, the fixed cdev
# row): its build (lab/build-kernel.sh, cached), the kernel's vfio selftest built from the same
# source, every scenarios/*.yaml, scenarios/cdev/*.yaml and the selftest and cdev rows
# (selftest:*, cdev:*) on it; the selftest rows run on 6.1 and 6.12 too. Measured with a warm
# cache: 85 guest runs and the attribute rows in 861 s; from empty caches (a fresh machine) lab/ci.sh took 36.4 min, the 7.3 build 7.7 of them, and all of .ci/run 41.5 min (docs/lab.md). The full lab (`npm run lab -- --all` after
# `VFIOCTL_LAB_KERNELS="7.3 7.3-cdev 6.12-cdev 7.3-e2big" bash lab/prepare.sh`) adds Debian
# backports' 7.3, the bypass kernel 6.12-cdev and the E2BIG stand-in 7.3-e2big (docs/lab.md
# "What CI runs").
#
# Exit status: 0 all match; 1 some scenario differs from the model; 2 the lab could not run.
# Times: prepare ~70-130 s on a fresh machine (debootstrap ~60-100 s, 6.1 kernel ~5-15 s, DPDK's
# testpmd and socat into the Debian 13 folder ~6-11 s, initramfs ~1 s), ~1 s when cached; each
# guest run ~10-50 s under TCG (two at a time). A fresh machine adds the 7.3-cdev kernel build
# (docs/lab.md has the measured minutes) and the selftest build.
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
if [ "$(id -u)" != 0 ]; then echo "lab/ci.sh: needs root (debootstrap, mounts, chroot)" >&2; exit 2; fi
export VFIOCTL_LAB_KERNELS=${VFIOCTL_LAB_KERNELS:-7.3-cdev}
bash lab/prepare.sh || { echo "lab/ci.sh: prepare failed" >&2; exit 2; }
[ -d node_modules ] || npm ci --no-audit --no-fund >&2 || exit 2
npx tsc -p tsconfig.json || { echo "lab/ci.sh: build failed" >&2; exit 2; }
node dist/lab/cli.js --report --no-prepare "$@"
rc=$?
echo "lab/ci.sh: exit $rc after $(( $(date +%s) - T0 )) s"
exit $rc
