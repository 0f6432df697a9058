#!/bin/sh
# explain as a preflight: each change is made only when explain says it would work.
# usage: explain-preflight.sh NODE VFIOCTL_JS STATE_DIR
node=$1; js=$2; state=$3
v() { "$node" "$js" --sim --state "$state" "$@"; }

try() { # try PF N: preflight, then act
  if v explain "$1" --numvfs "$2" >/dev/null; then
    v sriov "$1" "$2" >/dev/null && echo "set $1 to $2 VFs"
  else
    echo "refused $1 $2 VFs (explain exit $?)"
  fi
}

try 0000:01:00.0 99     # above sriov_totalvfs: ERANGE
try 0000:01:00.0 4      # from 0: works
try 0000:01:00.0 2      # 4 VFs exist: EBUSY
try 0000:01:00.0 0      # back to 0: works

if v explain 0000:af:10.0 --driver igbvf >/dev/null; then echo "bind igbvf would work"; else echo "bind igbvf refused (exit $?)"; fi
if v explain 0000:af:10.0 >/dev/null; then echo "open would work"; else echo "open refused (exit $?)"; fi
if v explain 0000:af:10.0 --errno EPERM >/dev/null; then echo "EPERM explained"; else echo "EPERM not explained (exit $?)"; fi
v explain 0000:af:10.0 --errno EFOO >/dev/null 2>&1; echo "EFOO: exit $?"
