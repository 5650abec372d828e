#!/usr/bin/env bash
# The whole test suite, as CI runs it: makes sure PostgreSQL, Redis and RabbitMQ are up on
# loopback (deploy/services.sh installs or starts them if needed), a Kafka-protocol broker
# too (deploy/kafka.sh: tansu, built once with cargo), headless Chromium, the Prometheus
# server and NGINX are installed (deploy/browser.sh, deploy/ops_servers.sh), then runs every test of
# the workspace against them. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/services.sh
./deploy/kafka.sh
./deploy/browser.sh
./deploy/ops_servers.sh
cargo test --workspace --locked "$@"
