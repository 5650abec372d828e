#!/usr/bin/env bash
# The whole test suite, as CI runs it: makes sure PostgreSQL and Redis are up on loopback
# (deploy/services.sh installs or starts them if needed), then runs every test of the
# workspace against them. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/services.sh
cargo test --workspace --locked "$@"
