#!/usr/bin/env bash
# What an operations feature costs Buy Now: the engine on PostgreSQL + Redis with the
# feature on and off, alternating (on, off, off, on, ...) in one go, each run a fresh engine
# and database with wrk and every request a new order (loadtests/wrk/buy_now.lua).
#   metrics      `[telemetry] metrics` (issue 16: under 3%); the "on" runs also scrape
#                /metrics once a second, as Prometheus would.
#   rate_limits  `[rate_limits]`: every request is a new user, so every one makes a bucket.
#   build=<dir>  a whole build: "on" runs this one (LOADTEST_BIN or target/release), "off"
#                the binaries in <dir> (e.g. an older commit built with CARGO_TARGET_DIR).
#
#   loadtests/feature_cost.sh <metrics|rate_limits> [seconds per run, default 10] [connections, default 64] [pairs, default 4]
#
# Two cores: the engine, PostgreSQL, Redis and wrk share them, as every figure printed here
# does.
set -euo pipefail
cd "$(dirname "$0")/.."

FEATURE="${1:?usage: loadtests/feature_cost.sh <metrics|rate_limits|build=DIR> [seconds] [connections] [pairs]}"
DURATION="${2:-10}"
CONNECTIONS="${3:-64}"
PAIRS="${4:-4}"
ADDRESS=127.0.0.1:18095
SECRET="feature-cost-secret"
OTHER_BIN=""
case "$FEATURE" in
    metrics|rate_limits) ;;
    build=*) OTHER_BIN="${FEATURE#build=}"; FEATURE=build ;;
    *) echo "unknown feature $FEATURE: metrics, rate_limits or build=DIR" >&2; exit 2 ;;
esac
source loadtests/common.sh
THIS_BIN="$BIN"
begin_engine_runs flashcart_feature_cost

run() { # on|off, pair number
    local enabled=true
    [ "$1" = off ] && enabled=false
    local data="$WORK/$1-$2"
    BIN="$THIS_BIN"
    if [ "$FEATURE" = metrics ]; then
        FLASHCART_TELEMETRY__METRICS="$enabled" start_engine postgres-redis "$ADDRESS" "$data" \
            flashcart_feature_cost "$SECRET"
    elif [ "$FEATURE" = build ]; then
        local limits=false
        if [ "$enabled" = false ]; then BIN="$OTHER_BIN"; limits=omit; fi
        LOADTEST_RATE_LIMITS="$limits" start_engine postgres-redis "$ADDRESS" "$data" \
            flashcart_feature_cost "$SECRET"
    else
        LOADTEST_RATE_LIMITS="$enabled" start_engine postgres-redis "$ADDRESS" "$data" \
            flashcart_feature_cost "$SECRET"
    fi
    local plan="$data.plan"
    "$BIN/flashcart-wrk" --host "http://$ADDRESS" prepare --jwt-secret "$SECRET" --out "$plan" >/dev/null
    local scraper=""
    if [ "$1" = on ] && [ "$FEATURE" = metrics ]; then
        (while true; do curl -sf "http://$ADDRESS/metrics" >/dev/null || true; sleep 1; done) &
        scraper=$!
    fi
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s loadtests/wrk/buy_now.lua \
        "http://$ADDRESS" -- "$plan" | tail -1 >"$data.json"
    [ -z "$scraper" ] || kill "$scraper" 2>/dev/null || true
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
    jq -r --arg name "$FEATURE $1 #$2" --argjson seconds "$DURATION" \
        '"\($name)\t\(((.requests - .non_2xx) / $seconds) | floor) orders/s\tp50 \(.p50_us / 1000) ms\tp99 \(.p99_us / 1000) ms\tnon-2xx \(.non_2xx)"' \
        "$data.json"
}

command -v jq >/dev/null 2>&1 || apt-get install -y -qq jq >/dev/null
echo "== Buy Now with $FEATURE on and off (PostgreSQL + Redis, $CONNECTIONS connections, ${DURATION}s each)"
# The order flips every pair (on-off, off-on, ...): whatever drifts during the runs (the
# database's checkpoints, the machine) weighs on both sides alike.
for pair in $(seq "$PAIRS"); do
    if [ $((pair % 2)) = 1 ]; then
        run on "$pair"
        run off "$pair"
    else
        run off "$pair"
        run on "$pair"
    fi
done
python3 - "$WORK" "$FEATURE" <<'PY'
import glob, json, sys
def rates(kind):
    out = []
    for path in sorted(glob.glob(f"{sys.argv[1]}/{kind}-*.json")):
        run = json.load(open(path))
        out.append((run["requests"] - run["non_2xx"]) / (run["duration_us"] / 1e6))
    return out
on, off = rates("on"), rates("off")
mean = lambda values: sum(values) / len(values)
print(f"{sys.argv[2]} on: {mean(on):,.0f} orders/s, off: {mean(off):,.0f} orders/s "
      f"({len(on)} runs each): on is {100 * (mean(on) / mean(off) - 1):+.1f}%")
PY
