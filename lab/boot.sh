#!/bin/bash
# Boot one lab kernel under QEMU (TCG, no network) with an emulated igb (82576, SR-IOV) behind a
# PCIe root port and intel-iommu, the host's root shared read-only (virtio-9p tag "host") and RUNDIR
# shared writable (tag "out"). The guest's /init runs RUNDIR/run.sh chrooted into the host's root
# (RUNDIR appears there as /tmp) and powers off. Serial console on stdout.
#
#   lab/boot.sh KERNEL RUNDIR [TIMEOUT_S]      KERNEL: 6.1 | 6.12
#
# The project checkout (this script's parent folder) is also shared read-only (tag "proj") and
# mounted at its own path in the guest: a checkout under /tmp (hidden by the run folder there) or
# on another file system (not in a non-recursive bind of /) is still found.
#
# QEMU's human monitor listens on RUNDIR/monitor.sock (lab/vm.ts reads the vCPUs' local APICs
# there when the guest goes silent).
#
# QEMU comes from the Debian 13 folder made by lab/prepare.sh and runs chrooted there, inside a
# private mount namespace (unshare -m): the binds it needs vanish with it.
set -euo pipefail
CACHE=${VFIOCTL_LAB_CACHE:-/var/cache/vfioctl-lab}
T=$CACHE/trixie
K=$1
RUN=$(realpath "$2")
PROJ=$(cd "$(dirname "$0")/.." && pwd)
TMO=${3:-600}
[ -f "$T/lab/$K/vmlinuz" ] || { echo "kernel $K not prepared: run lab/prepare.sh" >&2; exit 2; }
mkdir -p "$T/host" "$T/out" "$T/proj" "$T/dev" "$T/proc"
export T K RUN TMO PROJ
exec unshare -m --propagation private bash -c '
  set -e
  mount --bind / "$T/host"
  mount -o remount,bind,ro "$T/host"
  mount --bind "$RUN" "$T/out"
  mount --bind "$PROJ" "$T/proj"
  mount --rbind /dev "$T/dev"
  mount -t proc proc "$T/proc"
  exec chroot "$T" timeout -k 5 "$TMO" qemu-system-x86_64 \
    -accel tcg -cpu max -m ${VFIOCTL_LAB_MEM:-2048} -smp ${VFIOCTL_LAB_SMP:-2} -nographic -no-reboot -net none \
    -machine q35,kernel-irqchip=split -device intel-iommu,intremap=on,caching-mode=on \
    -kernel /lab/$K/vmlinuz -initrd /lab/$K/initramfs.cpio.gz \
    -append "console=ttyS0 intel_iommu=on panic=-1 quiet loglevel=3 no_timer_check vfioctl_project=$PROJ ${VFIOCTL_LAB_APPEND:-}" \
    -device pcie-root-port,id=rp1,chassis=1,slot=1 -device igb,bus=rp1 \
    -virtfs local,path=/host,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path=/out,mount_tag=out,security_model=none \
    -virtfs local,path=/proj,mount_tag=proj,security_model=none,readonly=on,multidevs=remap \
    -monitor unix:/out/monitor.sock,server=on,wait=off
'
