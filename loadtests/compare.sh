#!/usr/bin/env bash
# The same load generator, in one go, against:
#   (a) echo:    the engine's HTTP stack with an echo handler (the ceiling of this box)
#   (b) classic: Buy Now done the usual way (Redis Lua check-and-DECRBY, one INSERT per order)
#   (c) engine on its embedded store (SQLite)
#   (d) engine on PostgreSQL + Redis
# and prints orders/s, p50/p99, the generator's own CPU, and ratios to (a) and (b).
#
#   loadtests/compare.sh [seconds per target, default 30] [virtual users, default 64]
#
# With COMPARE_BEFORE=<dir> (a directory holding another build's `flashcart` binary),
# the engine targets run with that build too, in the same run: a before/after table.
#
# Needs PostgreSQL and Redis on loopback (deploy/services.sh). Bounded: each target runs
# for the given time; every server is stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${1:-30}"
USERS="${2:-64}"
WORK="$(mktemp -d)"
SECRET="compare-secret"
source loadtests/common.sh
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    drop_database flashcart_compare_engine
    drop_database flashcart_compare_classic
    rm -rf "$WORK"
}
trap cleanup EXIT

services_and_build

run_load() { # name address extra-args...
    local name="$1" address="$2"
    shift 2
    echo "== $name: ${SECONDS_PER_TARGET}s, $USERS users"
    "$BIN/flashcart-load" --host "http://$address" --jwt-secret "$SECRET" --scenario flash-sale \
        --users "$USERS" --increase-rate "$USERS" --run-time "${SECONDS_PER_TARGET}s" --quiet \
        --report-file "$WORK/$name.html" --summary-json "$WORK/$name.json" "$@" \
        | grep -E '^(buy-now|all requests|VERIFY)' | sed 's/^/   /'
}

stop_last() { kill "${PIDS[-1]}" 2>/dev/null || true; wait "${PIDS[-1]}" 2>/dev/null || true; }

"$BIN/echo-server" 127.0.0.1:18081 >/dev/null & PIDS+=($!)
wait_ready 127.0.0.1:18081
run_load echo 127.0.0.1:18081 --no-verify
stop_last

CLASSIC_DB="$(fresh_database flashcart_compare_classic)"
"$BIN/classic-server" 127.0.0.1:18082 "$CLASSIC_DB" "$REDIS_URL" "$SECRET" >/dev/null & PIDS+=($!)
wait_ready 127.0.0.1:18082
run_load classic 127.0.0.1:18082
stop_last

run_engine() { # suffix flashcart-binary: targets embedded<suffix> and postgres-redis<suffix>
    local name="embedded$1" pg_name="postgres-redis$1" engine="$2"
    FLASHCART_AUTH__JWT_SECRET="$SECRET" "$engine" serve --listen 127.0.0.1:18083 \
        --data-dir "$WORK/$name" >"$WORK/$name.log" 2>&1 & PIDS+=($!)
    wait_ready 127.0.0.1:18083
    run_load "$name" 127.0.0.1:18083 --verify-database-url "sqlite://$WORK/$name/flashcart.db"
    stop_last

    ENGINE_DB="$(fresh_database flashcart_compare_engine)"
    FLASHCART_AUTH__JWT_SECRET="$SECRET" FLASHCART_STORE__DATABASE_URL="$ENGINE_DB" \
        FLASHCART_REDIS__URL="$REDIS_URL" FLASHCART_REDIS__KEY_PREFIX="compare:$(date +%s%N):" \
        "$engine" serve --listen 127.0.0.1:18084 --data-dir "$WORK/$pg_name" \
        >"$WORK/$pg_name.log" 2>&1 & PIDS+=($!)
    wait_ready 127.0.0.1:18084
    run_load "$pg_name" 127.0.0.1:18084 --verify-database-url "$ENGINE_DB"
    stop_last
}

TARGETS="echo classic"
if [ -n "${COMPARE_BEFORE:-}" ]; then
    run_engine -before "$COMPARE_BEFORE/flashcart"
    TARGETS="$TARGETS embedded-before postgres-redis-before"
fi
run_engine "" "$BIN/flashcart"
TARGETS="$TARGETS embedded postgres-redis"

python3 - "$WORK" $TARGETS <<'PY'
import json, sys, os
work = sys.argv[1]
rows = [(name, json.load(open(os.path.join(work, f"{name}.json"))))
        for name in sys.argv[2:]]
echo = rows[0][1]["orders_per_sec"] or 1
classic = rows[1][1]["orders_per_sec"] or 1
print()
print(f"{'target':<24}{'orders/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs echo':>9}{'vs classic':>12}{'gen CPU':>9}  verified")
for name, r in rows:
    print(f"{name:<24}{r['orders_per_sec']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
          f"{r['orders_per_sec']/echo:>8.2f}x{r['orders_per_sec']/classic:>11.2f}x"
          f"{r['generator_cpu_percent']:>8.0f}%  {r['verified']}")
PY
