#!/usr/bin/env bash
# Makes sure headless Chromium and its WebDriver are installed (Debian packages), for the
# browser test of the page at /. Idempotent: checks first, installs only what is missing.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "[browser] chromium and chromedriver present"
    exit 0
fi
echo "[browser] installing chromium and chromium-driver"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
echo "[browser] $(chromium --version 2>/dev/null || echo chromium installed)"
