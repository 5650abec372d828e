#!/usr/bin/env bash
# Overload, measured: the engine on PostgreSQL + Redis under its nominal load and then
# under a multiple of it, in one go on this machine. Prints, for each, orders placed per
# second, the share shed (503/429), and the latency of the requests that were admitted
# (placed orders), so "sheds quickly and keeps admitted latency" is a ratio, not a claim.
# The overload runs twice: with shoppers that wait out the 503's Retry-After as the shop's
# app does, and with impatient ones that press again at once (--ignore-retry-after).
#
#   loadtests/overload.sh [seconds per run, default 30] [nominal users, default 256] [factor, default 3]
#
# Extra engine settings pass through the environment (FLASHCART_SHOP__..., e.g.
# FLASHCART_SHOP__IN_FLIGHT_PER_PRODUCT_MAX=64). Needs PostgreSQL and Redis on loopback
# (deploy/services.sh). Bounded in time; the server and its database are removed after.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN="${1:-30}"
USERS="${2:-256}"
FACTOR="${3:-3}"
WORK="$(mktemp -d)"
SECRET="overload-secret"
source loadtests/common.sh
DB_NAME=flashcart_overload
SERVER=""
cleanup() {
    if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    drop_database "$DB_NAME"
    rm -rf "$WORK"
}
trap cleanup EXIT

services_and_build

run() { # name users [extra harness args...]
    local name="$1" users="$2"
    shift 2
    local url
    url="$(fresh_database "$DB_NAME")"
    FLASHCART_AUTH__JWT_SECRET="$SECRET" FLASHCART_STORE__DATABASE_URL="$url" \
        FLASHCART_REDIS__URL="$REDIS_URL" FLASHCART_REDIS__KEY_PREFIX="overload:$(date +%s%N):" \
        "$BIN/flashcart" serve --listen 127.0.0.1:18090 --data-dir "$WORK/$name" \
        >"$WORK/$name.log" 2>&1 &
    SERVER=$!
    wait_ready 127.0.0.1:18090
    echo "== $name: ${SECONDS_PER_RUN}s, $users users"
    "$BIN/flashcart-load" --host http://127.0.0.1:18090 --jwt-secret "$SECRET" --scenario flash-sale \
        --users "$users" --increase-rate "$users" --run-time "${SECONDS_PER_RUN}s" --quiet \
        --report-file "$WORK/$name.html" --summary-json "$WORK/$name.json" --verify-database-url "$url" "$@" \
        | grep -E '^(buy-now|all requests|VERIFY)' | sed 's/^/   /'
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
}

run nominal "$USERS"
# Shed shoppers wait out Retry-After (the shop's app), then the same load from clients
# that press again at once (the worst case: every shed request comes straight back).
run overload "$((USERS * FACTOR))"
run overload-impatient "$((USERS * FACTOR))" --ignore-retry-after

python3 - "$WORK" "$FACTOR" <<'PY'
import json, sys, os
work, factor = sys.argv[1], sys.argv[2]
nominal = json.load(open(os.path.join(work, "nominal.json")))
over = json.load(open(os.path.join(work, "overload.json")))
impatient = json.load(open(os.path.join(work, "overload-impatient.json")))
print()
print(f"{'run':<16}{'orders/s':>10}{'shed %':>8}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}  verified")
for name, r in [("nominal", nominal), (f"{factor}x", over), (f"{factor}x impatient", impatient)]:
    asked = r["buy_now_requests"] or 1
    print(f"{name:<16}{r['orders_per_sec']:>10.0f}{100 * r['shed'] / asked:>7.0f}%"
          f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['p999_ms']:>10.2f}  {r['verified']}")
for name, r in [(f"{factor}x", over), (f"{factor}x impatient", impatient)]:
    print(f"{name}/nominal: orders/s {r['orders_per_sec'] / (nominal['orders_per_sec'] or 1):.2f}x, "
          f"p99 of admitted {r['p99_ms'] / (nominal['p99_ms'] or 1):.2f}x")
PY
