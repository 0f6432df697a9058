#!/bin/bash
# Prepare everything the real-kernel lab needs, on a Debian 12 host (root, Debian package registry).
# Idempotent: each step leaves a marker in the cache dir and is skipped when it is there.
#
#   CACHE=${VFIOCTL_LAB_CACHE:-/var/cache/vfioctl-lab}
#   $CACHE/trixie/            Debian 13 minbase folder: QEMU >= 8 with igb, kernel 6.12 (+modules)
#   $CACHE/k61/               Debian 12 kernel 6.1 unpacked from its .deb (vmlinuz + modules)
#   $CACHE/trixie/lab/<kver>/ vmlinuz + initramfs.cpio.gz per kernel (inside the Debian 13 folder,
#                             so QEMU run with `chroot $CACHE/trixie` sees them as /lab/<kver>/)
#   $CACHE/k73/               Debian 13 backports' own 7.3 kernel (linux-binary/-modules/-base)
#   $CACHE/build/<name>/      the lab's own kernels (lab/build-kernel.sh: Debian's kernel source,
#                             tinyconfig + lab/kernel.config, IOMMUFD and VFIO_DEVICE_CDEV on):
#                             6.12-cdev, 7.3-cdev, 7.3-e2big (7.3 with 2f03f21fe751 reverted)
#   $CACHE/selftest/          the kernel's vfio selftests built statically from the 7.3 source
#   $CACHE/src/               the Debian packages fetched for the steps above
#   $CACHE/kernels.json       which kernels are ready: [{name, version, dir, ...}] (lab/kernels.ts
#                             describes the extra fields; readers of name/version/dir are unaffected)
#
# Kernels beyond 6.1 and 6.12: VFIOCTL_LAB_KERNELS (default "7.3 7.3-cdev 6.12-cdev 7.3-e2big"),
# e.g. VFIOCTL_LAB_KERNELS="7.3-cdev" for CI; "none" for only the two Debian kernels.
#
# Timings of each step go to stderr and to $CACHE/prepare.log.
set -euo pipefail

CACHE=${VFIOCTL_LAB_CACHE:-/var/cache/vfioctl-lab}
# apt_mirror: the Debian mirror this host's apt already uses
. "$(dirname "${BASH_SOURCE[0]}")/../tools/debian-root.sh"
MIRROR=${VFIOCTL_LAB_MIRROR:-$(apt_mirror)}
[ -n "$MIRROR" ] || { echo "lab/prepare.sh: no Debian mirror found in apt's sources; set VFIOCTL_LAB_MIRROR" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$CACHE"
LOG=$CACHE/prepare.log
T0=$(date +%s.%N)

say() { echo "[lab/prepare $(date +%T)] $*" | tee -a "$LOG" >&2; }
# DPDK's EAL loads no driver from under a world-writable folder (verify_perms): the consumer rows
# cannot run from such a cache, so say it now rather than as a wall of differences later
d=$(cd "$CACHE" && pwd)
while :; do
  if [ -n "$(find "$d" -maxdepth 0 -perm -0002 2>/dev/null)" ]; then
    say "warning: $CACHE is below $d, which is world-writable: DPDK refuses to load its drivers from under it, so the consumer rows (dpdk:*, qemu:vf) will not run; set VFIOCTL_LAB_CACHE to a folder none of whose parents is world-writable (default /var/cache/vfioctl-lab)"
    break
  fi
  [ "$d" = / ] && break
  d=$(dirname "$d")
done
step() { # step NAME CMD...: run CMD unless $CACHE/.done-NAME exists; log the time taken
  local name=$1; shift
  if [ -e "$CACHE/.done-$name" ]; then say "$name: cached"; return 0; fi
  local t=$(date +%s.%N)
  say "$name: start"
  "$@" || { say "$name: FAILED"; exit 1; }
  touch "$CACHE/.done-$name"
  say "$name: done in $(echo "$(date +%s.%N) - $t" | bc -l | xargs printf '%.1f') s"
}

[ "$(id -u)" = 0 ] || { echo "lab/prepare.sh must run as root" >&2; exit 1; }

host_packages() {
  local need=()
  # the kernel builds (lab/build-kernel.sh) and the selftest: gcc, make, bison, flex, libelf, libssl, file
  for p in debootstrap busybox-static xz-utils cpio kmod bc util-linux gzip gcc make bison flex libelf-dev libssl-dev file; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}
# bc is used by step() itself: install the host packages without step()'s timing first.
host_packages

trixie() {
  rm -rf "$CACHE/trixie.tmp"
  debootstrap --variant=minbase --include=qemu-system-x86,linux-image-amd64,busybox-static,kmod \
    trixie "$CACHE/trixie.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || {
    tail -30 "$CACHE/debootstrap.log" >&2; return 1; }
  rm -rf "$CACHE/trixie"
  mv "$CACHE/trixie.tmp" "$CACHE/trixie"
  # trim what the lab never uses (docs, locales, apt lists)
  rm -rf "$CACHE/trixie"/usr/share/{doc,man,locale,info} "$CACHE/trixie"/var/cache/apt/archives/*.deb \
    "$CACHE/trixie"/var/lib/apt/lists/* 2>/dev/null || true
}
step trixie trixie

k61() {
  local work=$CACHE/k61.tmp
  rm -rf "$work"; mkdir -p "$work"
  # the versioned package linux-image-amd64 depends on (e.g. linux-image-6.1.0-41-amd64)
  local pkg
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6\.1/{print $2; exit}')
  if [ -z "$pkg" ]; then apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6\.1/{print $2; exit}'); fi
  [ -n "$pkg" ] || { echo "no Debian 12 6.1 kernel package found" >&2; return 1; }
  (cd "$work" && apt-get download -qq "$pkg" 2>&1 | grep -v "unsandboxed" >&2; dpkg-deb -x ./*.deb root && rm -f ./*.deb)
  local ver
  ver=$(ls "$work/root/lib/modules")
  depmod -b "$work/root" "$ver"   # the .deb's postinst would have made modules.dep
  rm -rf "$CACHE/k61"; mv "$work" "$CACHE/k61"
}
step k61 k61

# The consumer rows' programs (lab/consumers.ts): Debian 13's DPDK testpmd (package dpdk-dev) with
# the PMDs the lab's 82576 needs (net_e1000, mempool_ring), and socat (the QMP hand-off line of
# `vfioctl args qemu --qmp`), put into the Debian 13 folder: only the binaries and the shared
# libraries they link against (ldd in the chroot), not the ~250 packages dpdk-dev pulls in.
# Packages are fetched with apt-get download in the chroot (lists in a scratch dir, removed
# after), each unpacked aside; the dependencies of the packages whose files ldd uses are fetched
# until ldd finds everything. The files placed are listed in $CACHE/dpdk-files.txt.
[ -e "$CACHE/.done-dpdk" ] && [ ! -x "$CACHE/trixie/usr/bin/dpdk-testpmd" ] && rm -f "$CACHE/.done-dpdk" # trixie remade
dpdk() {
  local T=$CACHE/trixie W=/tmp/lab-dpdk
  local S=$T$W
  rm -rf "$S"; mkdir -p "$S"/lists/partial "$S"/cache/archives/partial "$S"/deb "$S"/pkg
  local A="-o Dir::State::Lists=$W/lists -o Dir::Cache=$W/cache -o APT::Sandbox::User=root"
  chroot "$T" apt-get -qq $A update || return 1
  local want="dpdk-dev librte-net-e1000-25 librte-mempool-ring25 socat"
  local bins="usr/bin/dpdk-testpmd usr/lib/x86_64-linux-gnu/dpdk/pmds-25.0/librte_net_e1000.so.25 usr/lib/x86_64-linux-gnu/dpdk/pmds-25.0/librte_mempool_ring.so.25 usr/bin/socat1"
  local new=$want fetched="" round used missing lp b owner
  for round in 1 2 3 4 5 6; do
    if [ -n "$new" ]; then
      chroot "$T" sh -c "cd $W/deb && apt-get -qq $A download $new" || return 1
      for p in $new; do dpkg-deb -x "$S"/deb/"${p}"_*.deb "$S/pkg/$p"; done
      fetched="$fetched $new"
    fi
    lp=$(for d in "$S"/pkg/*/usr/lib/x86_64-linux-gnu "$S"/pkg/*/lib/x86_64-linux-gnu; do [ -d "$d" ] && echo "${d#$T}"; done | paste -sd:)
    used=""; missing=""
    for b in $bins; do
      owner=$(cd "$S/pkg" && ls -d */"$b" 2>/dev/null | head -1 | cut -d/ -f1)
      [ -n "$owner" ] || { echo "dpdk: no package fetched holds $b" >&2; return 1; }
      used="$used $W/pkg/$owner/$b"
      while read -r so arrow path _; do
        if [ "$path" = "not" ]; then missing="$missing $so"; elif [ "${path#$W/pkg/}" != "$path" ]; then used="$used $path"; fi
      done < <(chroot "$T" env LD_LIBRARY_PATH="$lp" ldd "$W/pkg/$owner/$b" | grep "=>")
    done
    [ -z "$missing" ] && break
    # the Depends of the packages whose files ldd used (and of the wanted ones), not yet here
    local owners
    owners=$(for u in $used; do echo "$u" | cut -d/ -f5; done | sort -u)
    new=$(chroot "$T" apt-cache $A depends --no-recommends --no-suggests $want $owners 2>/dev/null |
      awk '/Depends: [a-z0-9]/{print $2}' | sort -u | while read -r p; do
        case " $fetched " in *" $p "*) continue ;; esac
        case $p in *-dev|python3*|sse4.2-support) continue ;; esac
        chroot "$T" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"
      done | paste -sd' ')
    [ -n "$new" ] || { echo "dpdk: ldd finds no$(echo "$missing" | tr ' ' '\n' | sort -u | paste -sd' ') and no package left to fetch" >&2; return 1; }
  done
  [ -z "$missing" ] || { echo "dpdk: still missing after 6 rounds:$missing" >&2; return 1; }
  # copy each used file (and every link of its symlink chain) to its place in the Debian 13 folder
  : >"$CACHE/dpdk-files.txt.tmp"
  local rel pkgdir hop
  for u in $(echo "$used" | tr ' ' '\n' | sort -u); do
    pkgdir=$S/pkg/$(echo "$u" | cut -d/ -f5)
    rel=${u#$W/pkg/*/}
    for hop in 1 2 3 4 5 6 7 8; do
      mkdir -p "$T/$(dirname "$rel")"
      cp -a "$pkgdir/$rel" "$T/$rel"
      echo "/$rel" >>"$CACHE/dpdk-files.txt.tmp"
      [ -L "$pkgdir/$rel" ] || break
      rel=$(realpath -m -s --relative-to="$pkgdir" "$pkgdir/$(dirname "$rel")/$(readlink "$pkgdir/$rel")")
    done
  done
  ln -sf socat1 "$T/usr/bin/socat"
  echo /usr/bin/socat >>"$CACHE/dpdk-files.txt.tmp"
  sort -u "$CACHE/dpdk-files.txt.tmp" >"$CACHE/dpdk-files.txt"; rm -f "$CACHE/dpdk-files.txt.tmp"
  (cd "$S/deb" && ls *.deb) >"$CACHE/dpdk-packages.txt"
  rm -rf "$S"
  # everything resolves from the folder's own library path now
  if chroot "$T" ldd /usr/bin/dpdk-testpmd /usr/bin/socat1 /usr/lib/x86_64-linux-gnu/dpdk/pmds-25.0/librte_net_e1000.so.25 | grep "not found" >&2; then return 1; fi
}
step dpdk dpdk

# initramfs for one kernel: ROOT holds boot/vmlinuz-VER and lib/modules/VER
initramfs() {
  local name=$1 root=$2
  local ver
  ver=$(ls "$root/lib/modules" | sort -V | tail -1)
  local out=$CACHE/trixie/lab/$name
  local stage=$CACHE/stage-$name
  rm -rf "$stage"; mkdir -p "$stage"/{bin,sbin,proc,sys,dev,host,out,tmp,lib/modules/"$ver"} "$out"
  cp /bin/busybox "$stage/bin/busybox"
  for a in sh mount umount mkdir insmod modprobe rmmod cat echo sleep poweroff chroot ls dmesg ln mknod setsid; do
    ln -sf busybox "$stage/bin/$a"
  done
  ln -sf ../bin/busybox "$stage/sbin/modprobe"
  ln -sf ../bin/busybox "$stage/sbin/poweroff"
  # modules: everything the lab loads, with their dependencies (modules.dep), decompressed
  local want="9p 9pnet 9pnet_virtio virtio_pci virtio_ring virtio netfs fscache irqbypass vfio
    vfio_iommu_type1 vfio_virqfd vfio-pci-core vfio-pci pci-pf-stub igb igbvf dca i2c-algo-bit"
  local mdir=$root/lib/modules/$ver
  node - "$mdir" $want >"$stage/modlist" <<'EOF' || return 1
const fs = require("fs"), path = require("path");
const [mdir, ...want] = process.argv.slice(2);
const dep = new Map();
for (const line of fs.readFileSync(path.join(mdir, "modules.dep"), "utf8").split("\n")) {
  if (!line.includes(":")) continue;
  const [k, v] = line.split(":");
  dep.set(k.trim(), v.split(/\s+/).filter(Boolean));
}
const mname = (p) => path.basename(p).replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
const byname = new Map([...dep.keys()].map((k) => [mname(k), k]));
const order = [], seen = new Set();
const visit = (p) => { if (seen.has(p)) return; seen.add(p); for (const d of dep.get(p) ?? []) visit(d); order.push(p); };
for (const w of want) { const p = byname.get(w.replace(/-/g, "_")); if (p) visit(p); } // absent = built in
console.log(order.join("\n"));
EOF
  while read -r rel; do
    local src=$mdir/$rel dst=$stage/lib/modules/$ver/${rel%.xz}
    mkdir -p "$(dirname "$dst")"
    case $rel in *.xz) xz -dc "$src" >"$dst" ;; *) cp "$src" "$dst" ;; esac
  done <"$stage/modlist"
  cp "$mdir"/modules.{order,builtin,builtin.modinfo} "$stage/lib/modules/$ver/" 2>/dev/null || true
  depmod -b "$stage" "$ver"
  # init: load the always-needed modules, mount the host share, hand over to the job
  sed -n 's#^.*/\([^/]*\)\.ko\(\.xz\)\?$#\1#p' "$stage/modlist" | tr - _ >"$stage/modnames"
  cp "$HERE/guest-init.sh" "$stage/init"
  chmod +x "$stage/init"
  # written aside and renamed, so a guest booting meanwhile never reads a half-written file
  (cd "$stage" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$out/initramfs.cpio.gz.tmp"
  mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
  cp "$root/boot/vmlinuz-$ver" "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
  echo "$ver" >"$out/version"
  rm -rf "$stage"
}

k61_initramfs() { initramfs 6.1 "$CACHE/k61/root"; }
k612_initramfs() { initramfs 6.12 "$CACHE/trixie"; }
# the initramfs depends on guest-init.sh: rebuild when it changes
INIT_SUM=$(cat "$HERE/guest-init.sh" "$HERE/prepare.sh" | sha256sum | cut -c1-16)
for n in 6.1 6.12; do
  if [ "$(cat "$CACHE/.initsum-$n" 2>/dev/null)" != "$INIT_SUM" ]; then rm -f "$CACHE/.done-initramfs-$n"; fi
done
step initramfs-6.1 k61_initramfs && echo "$INIT_SUM" >"$CACHE/.initsum-6.1"
step initramfs-6.12 k612_initramfs && echo "$INIT_SUM" >"$CACHE/.initsum-6.12"

# ---- kernels beyond Debian's 6.1 and 6.12 (VFIOCTL_LAB_KERNELS)
EXTRA=${VFIOCTL_LAB_KERNELS:-7.3 7.3-cdev 6.12-cdev 7.3-e2big}
[ "$EXTRA" = none ] && EXTRA=
want() { case " $EXTRA " in *" $1 "*) return 0 ;; esac; return 1; }
BK="$HERE/build-kernel.sh"
# build-kernel.sh's own lines (unpack, build time) go to the log too
bk() { bash "$BK" "$@" 2> >(while read -r l; do say "$l"; done); }

# Debian 13 backports' own kernel (7.x: the image package is a stub over linux-base-*, -binary-*
# and -modules-*; vmlinuz and config under /usr/lib/modules/<ver>/), laid out like k61
k73() {
  local work=$CACHE/k73.tmp ver p
  rm -rf "$work"; mkdir -p "$work/root"
  ver=$(bash "$BK" fetch --depends-of linux-image-amd64/trixie-backports | sed -n 's/^linux-image-\(7\.[0-9.]*+deb13-amd64\)$/\1/p' | head -1)
  [ -n "$ver" ] || { echo "no 7.x linux-image in trixie-backports" >&2; return 1; }
  for p in base binary modules; do ls "$CACHE"/src/linux-$p-"$ver"_*.deb >/dev/null 2>&1 || bash "$BK" fetch "linux-$p-$ver"; done
  for p in base binary modules; do dpkg-deb -x "$(ls "$CACHE"/src/linux-$p-"$ver"_*.deb | tail -1)" "$work/root"; done
  mkdir -p "$work/root/lib/modules" "$work/root/boot"
  mv "$work/root/usr/lib/modules/$ver" "$work/root/lib/modules/$ver"
  cp "$work/root/lib/modules/$ver/vmlinuz" "$work/root/boot/vmlinuz-$ver"
  rm -rf "$work/root/usr/share"
  depmod -b "$work/root" "$ver"
  rm -rf "$CACHE/k73"; mv "$work" "$CACHE/k73"
}
# the kernel's vfio selftests, static, from the 7.3 source kept by the 7.3-cdev build
selftest() {
  local src=$CACHE/build/7.3-cdev/src out=$CACHE/selftest
  [ -d "$src" ] || { echo "selftest: no 7.3 source tree ($src)" >&2; return 1; }
  make -s -C "$src" headers >/dev/null
  make -s -C "$src/tools/testing/selftests/vfio" LDFLAGS=-static -j"${VFIOCTL_LAB_JOBS:-2}" >"$CACHE/selftest-build.log" 2>&1 ||
    { tail -30 "$CACHE/selftest-build.log" >&2; return 1; }
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  local b
  for b in vfio_pci_sriov_uapi_test; do
    file "$src/tools/testing/selftests/vfio/$b" 2>/dev/null | grep -q "statically linked" || echo "selftest: $b is not static" >&2
    cp "$src/tools/testing/selftests/vfio/$b" "$out.tmp/"
  done
  rm -rf "$out"; mv "$out.tmp" "$out"
}
if want 7.3; then
  step k73 k73
  [ "$(cat "$CACHE/.initsum-7.3" 2>/dev/null)" = "$INIT_SUM" ] || rm -f "$CACHE/.done-initramfs-7.3"
  step initramfs-7.3 initramfs 7.3 "$CACHE/k73/root" && echo "$INIT_SUM" >"$CACHE/.initsum-7.3"
fi
for k in 7.3-cdev 6.12-cdev 7.3-e2big; do
  # the e2big variant starts from 7.3-cdev's tree: build that first when both are wanted
  [ "$k" = 7.3-e2big ] && want 7.3-e2big && ! [ -d "$CACHE/build/7.3-cdev/src" ] && ! want 7.3-cdev && EXTRA="$EXTRA 7.3-cdev"
  want "$k" || { [ "$k" = 7.3-cdev ] && want selftest; } || continue
  # rebuilt when lab/kernel.config changes (a build made before the sum existed is adopted)
  KSUM=$(cat "$HERE/kernel.config" | sha256sum | cut -c1-16)
  if [ -d "$CACHE/build/$k/root/boot" ]; then
    [ -f "$CACHE/build/$k/config-sum" ] || echo "$KSUM" >"$CACHE/build/$k/config-sum"
    if [ "$(cat "$CACHE/build/$k/config-sum")" = "$KSUM" ]; then touch "$CACHE/.done-build-$k"; else rm -f "$CACHE/.done-build-$k"; fi
  else
    rm -f "$CACHE/.done-build-$k"
  fi
  case $k in
    7.3-cdev) step build-$k bk build "$k" linux-source-7.3 keep ;;
    6.12-cdev) step build-$k bk build "$k" linux-source-6.12 ;;
    # from the kept 7.3-cdev tree when it is there: only device_cdev.c and the release change
    7.3-e2big) VFIOCTL_LAB_FROM=7.3-cdev step build-$k bk build "$k" linux-source-7.3 e2big ;;
  esac
  echo "$KSUM" >"$CACHE/build/$k/config-sum"
  say "$k: built in $(cat "$CACHE/build/$k/build-seconds" 2>/dev/null || echo '?') s (make -j${VFIOCTL_LAB_JOBS:-2} bzImage modules)"
  [ "$(cat "$CACHE/.initsum-$k" 2>/dev/null)" = "$INIT_SUM" ] || rm -f "$CACHE/.done-initramfs-$k"
  step initramfs-$k initramfs "$k" "$CACHE/build/$k/root" && echo "$INIT_SUM" >"$CACHE/.initsum-$k"
done
if want 7.3-cdev || want selftest; then
  [ -x "$CACHE/selftest/vfio_pci_sriov_uapi_test" ] || rm -f "$CACHE/.done-selftest"
  step selftest selftest
fi

# kernels.json: every kernel that is ready (name, version, dir as before; lab/kernels.ts adds the rest)
{
  sep=
  printf '['
  for k in 6.1 6.12 7.3 7.3-cdev 6.12-cdev 7.3-e2big; do
    [ -f "$CACHE/trixie/lab/$k/version" ] && [ -f "$CACHE/trixie/lab/$k/initramfs.cpio.gz" ] || continue
    printf '%s{"name":"%s","version":"%s","dir":"/lab/%s"}' "$sep" "$k" "$(cat "$CACHE/trixie/lab/$k/version")" "$k"
    sep=,
  done
  printf ']\n'
} >"$CACHE/kernels.json.tmp" && mv "$CACHE/kernels.json.tmp" "$CACHE/kernels.json"
say "ready in $(echo "$(date +%s.%N) - $T0" | bc -l | xargs printf '%.1f') s: $(cat "$CACHE/kernels.json")"
