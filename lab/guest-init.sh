#!/bin/sh
# /init of the lab's initramfs (busybox). Loads the modules every run needs, mounts the host's
# root (virtio-9p, read-only) at /host and the run folder (virtio-9p, writable) at /host/tmp,
# then runs /tmp/run.sh of the run folder chrooted into the host's root, and powers off.
# The drivers a scenario chooses (vfio-pci, pci-pf-stub, igb, igbvf) are left for the job to load.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "VFIOCTL-LAB: init $(cat /proc/uptime)"
for m in $(cat /modnames); do
  case $m in
    vfio_pci|pci_pf_stub|igb|igbvf|dca|i2c_algo_bit|ptp|pps_core) ;;
    *) modprobe "$m" 2>/dev/null || echo "VFIOCTL-LAB: modprobe $m failed" ;;
  esac
done
if mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose host /host; then
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /host/tmp
  # the project checkout at its own path (mkdir works where the run folder overlays the path)
  P=
  for w in $(cat /proc/cmdline); do
    case $w in vfioctl_project=*) P=${w#vfioctl_project=} ;; esac
  done
  if [ -n "$P" ]; then
    mkdir -p "/host$P" 2>/dev/null
    mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose proj "/host$P" ||
      echo "VFIOCTL-LAB: cannot mount the project at $P"
  fi
  mount -o bind /proc /host/proc
  mount -o bind /sys /host/sys
  mount -o bind /dev /host/dev
  # the guest kernel's modules, for `modprobe -d /mnt` in the chroot (the host may have no /lib/modules)
  mount -t tmpfs -o size=1m lab /host/mnt
  mkdir -p /host/mnt/lib/modules
  mount -o bind /lib/modules /host/mnt/lib/modules
  echo "VFIOCTL-LAB: mounted $(cat /proc/uptime)"
  if [ -f /host/tmp/run.sh ]; then
    chroot /host /bin/sh /tmp/run.sh
    echo "VFIOCTL-LAB-DONE rc=$? uptime=$(cat /proc/uptime)"
  else
    echo "VFIOCTL-LAB: no /tmp/run.sh in the run folder; shell"
    setsid sh -c 'exec sh </dev/ttyS0 >/dev/ttyS0 2>&1'
  fi
else
  echo "VFIOCTL-LAB: cannot mount the host share; shell"
  setsid sh -c 'exec sh </dev/ttyS0 >/dev/ttyS0 2>&1'
fi
poweroff -f
