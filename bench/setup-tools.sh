#!/bin/sh
# Installs the tools the benchmarks compare against (Debian/Ubuntu), those that are missing:
#   driverctl  (the `list` benchmark's driverctl row)
#   pciutils   (lspci: the `list` benchmark's lspci row)
#   gcc        (only when there is no C compiler `cc`: the C walker of the `list` benchmark, the
#              C side of the FFI benchmark and the ioctl addon (tools/build-native.mjs, run by
#              npm install; the FFI benchmark's addon rows) are built with it)
# Run as root once: sh bench/setup-tools.sh
set -e
need=""
command -v driverctl >/dev/null 2>&1 || need="$need driverctl"
command -v lspci >/dev/null 2>&1 || need="$need pciutils"
command -v cc >/dev/null 2>&1 || need="$need gcc libc6-dev"
if [ -n "$need" ]; then
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
fi
for t in driverctl lspci cc; do echo "$t: $(command -v $t)"; done
