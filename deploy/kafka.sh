#!/usr/bin/env bash
# Makes sure a Kafka-protocol broker answers on 127.0.0.1:9092 for the event tests and
# `serve` with events. No Kafka is preinstalled here, so this installs tansu (a Kafka
# protocol broker in Rust, Apache-2.0) with cargo when it is missing (about 9 minutes on
# two cores, once; later runs find it), then starts it with in-memory storage.
set -euo pipefail

PORT=9092
LOG_DIR="${TMPDIR:-/tmp}"
TANSU="$(command -v tansu || true)"
if [ -z "$TANSU" ] && [ -x "$HOME/.cargo/bin/tansu" ]; then TANSU="$HOME/.cargo/bin/tansu"; fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

if port_open; then
    echo "[kafka] a broker answers on 127.0.0.1:$PORT"
    exit 0
fi
if [ -z "$TANSU" ]; then
    echo "[kafka] installing tansu (cargo install, once)"
    cargo install tansu --locked --features dynostore --quiet
    TANSU="$HOME/.cargo/bin/tansu"
fi
echo "[kafka] starting tansu on 127.0.0.1:$PORT (memory storage)"
nohup "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$PORT" \
    --storage-engine memory://tansu/ >"$LOG_DIR/tansu.log" 2>&1 &
for _ in $(seq 50); do
    if port_open; then
        echo "[kafka] broker ready"
        exit 0
    fi
    sleep 0.2
done
echo "[kafka] the broker did not come up; see $LOG_DIR/tansu.log" >&2
exit 1
