#!/usr/bin/env bash
# One hot product against orders spread over many products, same generator (wrk), same
# run: the engine on the embedded store and on PostgreSQL + Redis, every request a new
# order. Spread orders reach many product actors and commit in batches across products;
# a hot product keeps one actor busy. Prints orders/s, p50/p99 and the proof (wrk's 2xx
# count, the engine's and the store's units over the products ordered from).
#
#   loadtests/spread.sh [seconds per run, default 20] [connections, default 256] [products, default 10000]
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN="${1:-20}"
CONNECTIONS="${2:-256}"
PRODUCTS="${3:-10000}"
ADDRESS=127.0.0.1:18097
SECRET="spread-secret"
source loadtests/common.sh
begin_engine_runs flashcart_spread

printf '\n%-12s %-7s %10s %8s %8s  %s\n' store load orders/s "p50 ms" "p99 ms" "every request a new order?"
for store in embedded postgres-redis; do
    for load in hot spread; do
        start_engine "$store" "$ADDRESS" "$WORK/data-$load" flashcart_spread "$SECRET"
        spread=0
        [ "$load" = spread ] && spread="$PRODUCTS"
        "$BIN/flashcart-wrk" --host "http://$ADDRESS" prepare --jwt-secret "$SECRET" \
            --spread "$spread" --out "$WORK/plan.txt"
        count() { "$BIN/flashcart-wrk" --host "http://$ADDRESS" count --plan "$WORK/plan.txt" --database-url "$STORE_URL"; }
        before="$(count)"
        wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --timeout 10s -s loadtests/wrk/buy_now.lua \
            "http://$ADDRESS" -- "$WORK/plan.txt" | tail -1 >"$WORK/wrk.json"
        after="$(count)"
        python3 - "$WORK/wrk.json" "$before" "$after" "$store" "$load" "$CONNECTIONS" <<'PY'
import json, sys
wrk = json.load(open(sys.argv[1]))
before, after = json.loads(sys.argv[2]), json.loads(sys.argv[3])
store, load, connections = sys.argv[4], sys.argv[5], int(sys.argv[6])
answered = wrk["requests"] - wrk["non_2xx"]
engine = after["engine_units"] - before["engine_units"]
stored = after["store_units"] - before["store_units"]
holds = answered <= engine <= answered + connections and stored == engine
print(f"{store:<12} {load:<7} {answered / (wrk['duration_us'] / 1e6):>10.0f} {wrk['p50_us'] / 1000:>8.2f} "
      f"{wrk['p99_us'] / 1000:>8.2f}  {'yes' if holds else 'NO'}: 2xx {answered}, engine {engine}, "
      f"store {stored}, {wrk['non_2xx']} not 2xx")
PY
        kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
    done
done
echo "(wrk, the engine, PostgreSQL and Redis share this machine's cores)"
