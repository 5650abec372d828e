#!/usr/bin/env bash
# Makes sure the servers that run in front of and beside the engine are installed, for the
# tests that start them: the Prometheus server (Debian package `prometheus`, scrapes the
# engine) and NGINX (package `nginx`, runs deploy/nginx/flashcart.conf in front of it).
# Idempotent: checks first, installs only what is missing, in one apt run. The tests start
# their own servers on free loopback ports; nothing is started here (the nginx package's own
# service is stopped if its install started it).
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "[ops-servers] installing ${missing[*]}"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    if [[ " ${missing[*]} " == *" nginx "* ]]; then
        # The package starts a default site on port 80; the tests bring their own.
        $SUDO /usr/sbin/nginx -s quit 2>/dev/null || true
    fi
fi
echo "[ops-servers] $(prometheus --version 2>&1 | head -1)"
echo "[ops-servers] $(/usr/sbin/nginx -v 2>&1)"
