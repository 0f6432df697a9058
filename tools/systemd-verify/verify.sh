#!/bin/bash
# Check boot files (as `vfioctl install` lays them out under a root) with Debian 13's systemd and
# udev, in the root tools/systemd-verify/prepare.sh made. Needs root (chroot, mounts).
#
#   tools/systemd-verify/verify.sh [--exec PATH]... [--dump UNIT]... TREE
#
# TREE is a directory laid out like a host root: etc/systemd/system/*.service (and .wants/
# links), etc/udev/rules.d/*.rules, etc/modprobe.d/*.conf. It is copied into a temporary folder
# inside the Debian 13 root (with that root's own units, so After=/Before= names resolve), then:
#   systemd-analyze verify --root=…   every unit file (a template as TEMPLATE@test_instance);
#                                     any message fails (warnings included)
#   systemctl --root=… is-enabled     every unit with an [Install] section must say "enabled"
#   udevadm verify                    every rules file
#   modprobe --showconfig -C FILE     every modprobe.d file: parsed without a libkmod error
#   systemd --test --unit=UNIT        for each --dump UNIT: systemd's own parse of the unit,
#                                     printed as "DUMP UNIT<TAB>Key: value" lines (ExecStart=
#                                     argv as "Command Line:", RequiresMountsFor=, conditions …)
# --exec PATH creates an executable stub at PATH inside the copied root: verify requires every
# ExecStart= program to exist (pass node's and vfioctl.js's paths).
#
# Exit status: 0 every check passed; 1 a check failed; 77 the tools are not there (not root, or
# prepare.sh has not run): callers skip.
set -uo pipefail

CACHE=${VFIOCTL_SYSTEMD_VERIFY_CACHE:-/var/cache/vfioctl-systemd-verify}
ROOT=$CACHE/trixie
EXECS=()
DUMPS=()
while [ $# -gt 1 ]; do
  case $1 in
    --exec) EXECS+=("$2"); shift 2 ;;
    --dump) DUMPS+=("$2"); shift 2 ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || { echo "usage: $0 [--exec PATH]... [--dump UNIT]... TREE" >&2; exit 2; }
TREE=$1
[ -d "$TREE" ] || { echo "verify.sh: $TREE: not a directory" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "verify.sh: skipped: needs root (chroot into $ROOT)" >&2; exit 77; }
[ -x "$ROOT/usr/bin/systemd-analyze" ] && [ -x "$ROOT/usr/bin/udevadm" ] ||
  { echo "verify.sh: skipped: no Debian 13 root at $ROOT (run tools/systemd-verify/prepare.sh)" >&2; exit 77; }

work=$(mktemp -d "$ROOT/tmp/vfioctl-verify.XXXXXX")
trap 'rm -rf "$work"' EXIT
in=/tmp/$(basename "$work") # the same folder, as seen inside the chroot
mkdir -p "$work/root/usr/lib/systemd"
cp -a "$TREE"/. "$work/root/"
cp -a "$ROOT/usr/lib/systemd/system" "$work/root/usr/lib/systemd/"
for e in "${EXECS[@]}"; do
  mkdir -p "$work/root$(dirname "$e")"
  printf '#!/bin/sh\nexit 0\n' >"$work/root$e"
  chmod 755 "$work/root$e"
done
chmod -R a+rX "$work"

# run a command in the Debian 13 root, in a private mount namespace with /proc, /dev and /sys
# (systemctl and systemd want them), so nothing stays mounted afterwards
inroot() {
  unshare --mount --propagation private sh -c '
    r=$1; shift
    mount -t proc proc "$r/proc" && mount --bind /dev "$r/dev" && mount --rbind /sys "$r/sys" && exec chroot "$r" "$@"' sh "$ROOT" "$@"
}

fail=0
ok() { echo "ok    $*"; }
bad() { echo "FAIL  $*"; fail=1; }
sysv=$(chroot "$ROOT" systemctl --version | head -1)
echo "# $sysv, $(chroot "$ROOT" udevadm --version | sed 's/^/udevadm /'), $(chroot "$ROOT" modprobe --version | head -1)"

units=()
enabled=()
while IFS= read -r -d '' f; do units+=("${f#"$work/root"}"); done < <(find "$work/root/etc/systemd/system" -maxdepth 1 -type f -name '*.service' -print0 2>/dev/null | sort -z)
for u in "${units[@]}"; do
  out=$(inroot systemd-analyze verify --root="$in/root" "$u" 2>&1)
  rc=$?
  if [ $rc -eq 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify $u"; else bad "systemd-analyze verify $u (exit $rc)"; printf '%s\n' "$out" | sed 's/^/      /'; fi
  if grep -q '^\[Install\]' "$work/root$u"; then
    name=$(basename "$u")
    st=$(inroot systemctl --root="$in/root" is-enabled "$name" 2>&1)
    enabled+=("$name")
    if [ "$st" = enabled ]; then ok "systemctl is-enabled $name: enabled"; else bad "systemctl is-enabled $name: $st"; fi
  fi
done

while IFS= read -r -d '' f; do
  r=${f#"$work/root"}
  out=$(chroot "$ROOT" udevadm verify --resolve-names=never "$in/root$r" 2>&1)
  rc=$?
  if [ $rc -eq 0 ]; then ok "udevadm verify $r"; else bad "udevadm verify $r (exit $rc)"; printf '%s\n' "$out" | sed 's/^/      /'; fi
done < <(find "$work/root/etc/udev/rules.d" -maxdepth 1 -type f -name '*.rules' -print0 2>/dev/null | sort -z)

while IFS= read -r -d '' f; do
  r=${f#"$work/root"}
  out=$(chroot "$ROOT" modprobe --showconfig -C "$in/root$r" 2>&1)
  rc=$?
  want=$(grep -E '^(options|blacklist|install|remove|softdep|alias) ' "$f")
  if [ $rc -eq 0 ] && ! grep -q 'libkmod: ERROR' <<<"$out" && { [ -z "$want" ] || grep -qxF "$want" <<<"$out"; }; then
    ok "modprobe --showconfig -C $r: $(echo $want)"
  else
    bad "modprobe --showconfig -C $r (exit $rc)"; printf '%s\n' "$out" | grep -v '^#' | head -20 | sed 's/^/      /'
  fi
done < <(find "$work/root/etc/modprobe.d" -maxdepth 1 -type f -name '*.conf' -print0 2>/dev/null | sort -z)

# systemd's own reading of each unit: `systemd --test` (as nobody: it refuses root)
for u in "${DUMPS[@]}"; do
  out=$(inroot setpriv --reuid=65534 --regid=65534 --clear-groups env SYSTEMD_UNIT_PATH="$in/root/etc/systemd/system:" \
    /usr/lib/systemd/systemd --test --system --no-pager --unit="$u" 2>/dev/null)
  rc=$?
  sect=$(awk -v u="$u" '
    $0 ~ "^\t(→|->) Unit " u ":$" {f = 1; next}
    f && $0 ~ /^\t(→|->) Unit / {exit}
    f' <<<"$out")
  if [ $rc -ne 0 ] || [ -z "$sect" ]; then bad "systemd --test --unit=$u (exit $rc): unit not in the dump"; continue; fi
  ok "systemd --test --unit=$u"
  grep -E '^\s+(Description|Fragment Path|Condition[A-Za-z]+|Assert[A-Za-z]+|Wants|Requires|Before|After|Conflicts|RequiresMountsFor|DefaultDependencies|RemainAfterExit|Type|TimeoutStartSec|Command Line): ' <<<"$sect" |
    sed -E 's/^\s+//' | while IFS= read -r l; do printf 'DUMP %s\t%s\n' "$u" "$l"; done
done

# the whole boot: Debian 13's multi-user.target transaction with the enabled units in it, and
# no ordering cycle anywhere (systemd would break one by dropping a job at boot)
if [ ${#enabled[@]} -gt 0 ]; then
  inroot setpriv --reuid=65534 --regid=65534 --clear-groups env SYSTEMD_UNIT_PATH="$in/root/etc/systemd/system:" \
    /usr/lib/systemd/systemd --test --system --no-pager --unit=multi-user.target >"$work/boot.out" 2>"$work/boot.err"
  rc=$?
  for name in "${enabled[@]}"; do
    if [ $rc -eq 0 ] && grep -qE "^\s(→|->) Unit $name:\$" "$work/boot.out"; then ok "boot transaction (multi-user.target) has $name"; else bad "boot transaction (multi-user.target) lacks $name (exit $rc)"; fi
  done
  if grep -qi 'cycle' "$work/boot.err"; then bad "boot transaction has an ordering cycle:"; grep -i -A3 'cycle' "$work/boot.err" | head -20 | sed 's/^/      /'; else ok "boot transaction: no ordering cycle"; fi
fi

[ $fail -eq 0 ] && echo "all checks passed" || echo "some checks FAILED"
exit $fail
