#!/bin/sh
# Debian 13's podman (the root tools/podman/prepare.sh makes), run chrooted as root:
#   tools/podman/trixie-podman.sh run --rm --network none --device vfioctl/vf=nic0-vf0 IMAGE …
# In a private mount namespace (the host's mounts are untouched): the root bound onto itself (so
# "/" is a mount point in the chroot: containers/storage remounts it private when it applies a
# layer), the host's /dev, /sys and /tmp bound in (device nodes, cgroups, the test's files), /proc
# and a tmpfs on /run. A host with hybrid cgroups (v1 controllers beside /sys/fs/cgroup/unified) is
# refused by crun, so the unified mount is dropped in that namespace: podman then uses v1.
# Storage: vfs under the root's /var/lib/containers; cgroupfs; events to a file; runtime crun.
# CDI specs: the root's /etc/cdi (and /var/run/cdi, a tmpfs here).
set -eu
R=${VFIOCTL_PODMAN_ROOT:-${VFIOCTL_PODMAN_CACHE:-/var/cache/vfioctl-podman}/trixie}
[ -x "$R/usr/bin/podman" ] || { echo "trixie-podman.sh: no podman in $R (run tools/podman/prepare.sh)" >&2; exit 125; }
export PODMAN_IGNORE_CGROUPSV1_WARNING=1
exec unshare -m --propagation private sh -c '
R=$1; shift
mount --bind "$R" "$R" && mount --rbind /dev "$R/dev" && mount -t proc proc "$R/proc" &&
  mount --rbind /sys "$R/sys" && mount -t tmpfs -o size=64m podman-run "$R/run" && mount --bind /tmp "$R/tmp" || exit 125
umount "$R/sys/fs/cgroup/unified" 2>/dev/null || true
exec chroot "$R" /usr/bin/podman --storage-driver vfs --cgroup-manager cgroupfs --events-backend file --runtime crun "$@"' sh "$R" "$@"
