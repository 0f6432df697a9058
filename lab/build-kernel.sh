#!/bin/bash
# Build one of the lab's own kernels from a Debian kernel source package, or fetch Debian packages
# from Debian 13 (+ trixie-backports) into the cache. Called by lab/prepare.sh; usable alone.
#
#   lab/build-kernel.sh build NAME SOURCE-PACKAGE [VARIANT]   -> $CACHE/build/NAME/root/
#   lab/build-kernel.sh fetch PACKAGE[=VERSION]...            -> $CACHE/src/*.deb
#
# build: the tarball of linux-source-X (Debian's patched tree) is unpacked into
# $CACHE/build/NAME.tmp/src, configured as `make tinyconfig` + lab/kernel.config (merge_config.sh,
# olddefconfig; every option of the fragment that is not "=n" must survive, else the build
# fails), built with `make -j${VFIOCTL_LAB_JOBS:-2} bzImage modules`, and installed as
# root/boot/vmlinuz-VER, root/boot/config-VER and root/lib/modules/VER (the layout prepare.sh's
# initramfs step reads). VARIANT:
#   e2big  revert 2f03f21fe751 ("vfio: Fix ksize arg while copying user struct in
#          vfio_df_ioctl_bind_iommufd()"): the bind copies only offsetofend(out_devid) = 16 bytes
#          (the kernel struct's size argument is minsz again), so a 24-byte bind with a token
#          pointer gets E2BIG from copy_struct_from_user, as on 6.17.x and 6.18.0-6.18.2.
#   keep   keep the source tree (root/../src) for the selftest build and for variants.
# VFIOCTL_LAB_FROM=<name>: start from the kept tree of that build when it is of the same source
# package (its objects are reused: the e2big variant of 7.3-cdev rebuilds a few files).
# The source tree is removed after the build unless VARIANT says keep (or "e2big,keep").
# Times go to stderr; the caller (prepare.sh) logs the step's total.
set -euo pipefail
CACHE=${VFIOCTL_LAB_CACHE:-/var/cache/vfioctl-lab}
HERE=$(cd "$(dirname "$0")" && pwd)
JOBS=${VFIOCTL_LAB_JOBS:-2}
MIRROR=${VFIOCTL_LAB_DEBIAN:-http://deb.debian.org/debian}

# apt-get download in the Debian 13 folder, with lists of its own (trixie + trixie-backports) in a
# scratch dir, so neither the host's nor the folder's apt state changes.
fetch() {
  local T=$CACHE/trixie W=/tmp/lab-debfetch
  local S=$T$W
  mkdir -p "$CACHE/src"
  rm -rf "$S"; mkdir -p "$S"/lists/partial "$S"/cache/archives/partial "$S"/deb
  printf 'deb %s trixie main\ndeb %s trixie-backports main\n' "$MIRROR" "$MIRROR" >"$S/sources.list"
  local A="-o Dir::State::Lists=$W/lists -o Dir::Cache=$W/cache -o Dir::Etc::SourceList=$W/sources.list -o Dir::Etc::SourceParts=/nonexistent -o APT::Sandbox::User=root"
  chroot "$T" apt-get -qq $A update
  if [ "${1:-}" = "--depends-of" ]; then # print the Depends of a package (for the image stubs)
    shift; chroot "$T" apt-cache $A depends "$@" | awk '/Depends:/{print $2}'; rm -rf "$S"; return 0
  fi
  chroot "$T" sh -c "cd $W/deb && apt-get -qq $A download $*"
  mv "$S"/deb/*.deb "$CACHE/src/"
  rm -rf "$S"
}

build() {
  local name=$1 pkg=$2 variant=${3:-}
  local B=$CACHE/build/$name
  local deb
  deb=$(ls "$CACHE"/src/"${pkg}"_*.deb 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$deb" ]; then fetch "$pkg"; deb=$(ls "$CACHE"/src/"${pkg}"_*.deb | sort -V | tail -1); fi
  local t0=$SECONDS
  rm -rf "$B.tmp"; mkdir -p "$B.tmp"
  # a variant of a kept build of the same source package starts from that tree and its objects
  # (only what the variant changes is rebuilt): VFIOCTL_LAB_FROM=<name of the kept build>
  local from=${VFIOCTL_LAB_FROM:+$CACHE/build/$VFIOCTL_LAB_FROM}
  if [ -n "$from" ] && [ -d "$from/src" ] && [ "$(cat "$from/source-deb" 2>/dev/null)" = "$(basename "$deb")" ]; then
    cp -a "$from/src" "$B.tmp/src"
    echo "build-kernel $name: copied the tree of $VFIOCTL_LAB_FROM ($(basename "$deb")) in $((SECONDS - t0)) s" >&2
  else
    local tarball
    tarball=$(dpkg-deb -c "$deb" | awk '{print $6}' | grep -E '^\./usr/src/linux-source-[0-9.]+\.tar\.(xz|bz2|gz)$' | head -1)
    [ -n "$tarball" ] || { echo "build-kernel: no source tarball in $deb" >&2; return 1; }
    dpkg-deb --fsys-tarfile "$deb" | tar -xO "$tarball" | tar -xJ -C "$B.tmp"
    mv "$B.tmp"/linux-source-* "$B.tmp/src"
    echo "build-kernel $name: unpacked $(basename "$deb") in $((SECONDS - t0)) s" >&2
  fi
  basename "$deb" >"$B.tmp/source-deb"
  cd "$B.tmp/src"
  case ",$variant," in
    *,e2big,*)
      grep -q 'copy_struct_from_user(&bind, sizeof(bind), arg, user_size)' drivers/vfio/device_cdev.c ||
        { echo "build-kernel: drivers/vfio/device_cdev.c has not the 2f03f21fe751 line to revert" >&2; return 1; }
      sed -i 's/copy_struct_from_user(&bind, sizeof(bind), arg, user_size)/copy_struct_from_user(\&bind, minsz, arg, user_size)/' \
        drivers/vfio/device_cdev.c
      grep -q 'copy_struct_from_user(&bind, minsz, arg, user_size)' drivers/vfio/device_cdev.c
      echo "build-kernel $name: reverted 2f03f21fe751 in drivers/vfio/device_cdev.c" >&2
      ;;
  esac
  make -s tinyconfig >/dev/null
  KCONFIG_CONFIG=.config scripts/kconfig/merge_config.sh -m .config "$HERE/kernel.config" >/dev/null
  # a variant says so in its release (uname -r): 7.3.4-lab-e2big
  case ",$variant," in *,e2big,*) scripts/config --set-str LOCALVERSION "-lab-e2big" ;; esac
  make -s olddefconfig >/dev/null
  local miss=0 line
  while read -r line; do
    case $line in CONFIG_*=n|CONFIG_LOCALVERSION*|\#*|"") continue ;; esac
    grep -qx -- "$line" .config && continue
    local sym=${line%%=*}; sym=${sym#CONFIG_}
    if grep -rqx --include='Kconfig*' -E "(menu)?config $sym" . ; then
      echo "build-kernel $name: $line did not survive olddefconfig" >&2; miss=1
    else
      echo "build-kernel $name: $line: no such option in this tree (ignored)" >&2
    fi
  done <"$HERE/kernel.config"
  [ $miss = 0 ] || return 1
  local tb=$SECONDS
  make -s -j"$JOBS" bzImage modules >"$B.tmp/make.log" 2>&1 || { tail -40 "$B.tmp/make.log" >&2; return 1; }
  local ver
  ver=$(make -s kernelrelease)
  mkdir -p "$B.tmp/root/boot"
  make -s modules_install INSTALL_MOD_PATH="$B.tmp/root" INSTALL_MOD_STRIP=1 >/dev/null
  cp arch/x86/boot/bzImage "$B.tmp/root/boot/vmlinuz-$ver"
  cp .config "$B.tmp/root/boot/config-$ver"
  rm -f "$B.tmp/root/lib/modules/$ver"/{build,source}
  echo "$((SECONDS - tb))" >"$B.tmp/build-seconds"
  echo "build-kernel $name: $ver built (make -j$JOBS bzImage modules) in $((SECONDS - tb)) s, $((SECONDS - t0)) s with unpacking" >&2
  cd /
  case ",$variant," in *,keep,*) ;; *) rm -rf "$B.tmp/src" ;; esac
  rm -rf "$B"; mv "$B.tmp" "$B"
}

case ${1:-} in
  fetch) shift; fetch "$@" ;;
  build) shift; build "$@" ;;
  *) echo "usage: $0 build NAME SOURCE-PACKAGE [e2big|keep] | fetch PACKAGE..." >&2; exit 2 ;;
esac
