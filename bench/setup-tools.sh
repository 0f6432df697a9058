#!/bin/sh
# Installs the tools the `list` benchmark compares against (Debian/Ubuntu): driverctl.
# Run as root once: sh bench/setup-tools.sh
set -e
if command -v driverctl >/dev/null 2>&1; then echo "driverctl: $(command -v driverctl)"; exit 0; fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends driverctl
command -v driverctl
