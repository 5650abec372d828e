#!/usr/bin/env bash
# The whole test suite, as CI runs it: makes sure PostgreSQL and Redis are up on loopback
# (deploy/services.sh installs or starts them if needed) and headless Chromium is installed
# (deploy/browser.sh), then runs every test of the workspace against them. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/services.sh
./deploy/browser.sh
cargo test --workspace --locked "$@"
