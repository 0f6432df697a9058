# shellcheck shell=bash
# Shared by lab/prepare.sh, tools/systemd-verify/prepare.sh and tools/podman/prepare.sh (sourced):
# the Debian mirror this host already uses, and a trimmed debootstrap root. Each function returns
# non-zero on failure and leaves the caller to say what that means for it (exit, or a test skip).

# The Debian mirror this host's apt already uses (debootstrap needs a URL; apt's sources name it).
apt_mirror() {
  local u
  u=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$u" ] || u=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1)
  echo "$u"
}

# need_debootstrap: install the host's debootstrap when it is missing. Prints what it did.
need_debootstrap() {
  command -v debootstrap >/dev/null && return 0
  local t0
  t0=$(date +%s.%N)
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null || return 1
  echo "host package debootstrap installed in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
}

# debian_root SUITE PACKAGES ROOT MIRROR LOG: debootstrap --variant=minbase --include=PACKAGES
# into ROOT.tmp, drop what no tool here reads (docs, locales, downloaded packages, apt lists),
# then replace ROOT with it. On failure the log's tail goes to stderr and ROOT is left as it was.
debian_root() {
  local suite=$1 packages=$2 root=$3 mirror=$4 log=$5
  rm -rf "$root.tmp"
  if ! debootstrap --variant=minbase --include="$packages" "$suite" "$root.tmp" "$mirror" >"$log" 2>&1; then
    tail -30 "$log" >&2
    rm -rf "$root.tmp"
    return 1
  fi
  rm -rf "$root.tmp"/usr/share/{doc,man,locale,info} "$root.tmp"/var/cache/apt/archives/*.deb \
    "$root.tmp"/var/lib/apt/lists/* 2>/dev/null || true
  rm -rf "$root"
  mv "$root.tmp" "$root"
}
