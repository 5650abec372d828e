#!/usr/bin/env bash
# Makes sure the Prometheus server is installed (Debian package `prometheus`), for the test
# that scrapes the engine with it. Idempotent: checks first, installs only if missing. The
# test starts its own server on a free loopback port; nothing is started here.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if command -v prometheus >/dev/null 2>&1; then
    echo "[prometheus] $(prometheus --version 2>&1 | head -1)"
    exit 0
fi
echo "[prometheus] installing the prometheus package"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
echo "[prometheus] $(prometheus --version 2>&1 | head -1)"
