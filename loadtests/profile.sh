#!/usr/bin/env bash
# Where the engine spends its CPU under Buy Now load: runs it (embedded, or on PostgreSQL
# + Redis) with the settings compare.sh and cost.sh use (`start_engine`: rate limits off,
# so the profile shows what the ratio table measures), drives it with wrk (every request
# a new order), records `perf` samples of the engine in the middle of the run, and prints
# the share of each thread and the hottest functions. The perf data stays in
# target/profile/ for `perf report -i target/profile/perf.data`.
#
#   loadtests/profile.sh [embedded|postgres] [seconds, default 20] [connections, default 256]
#
# PERF_CALLGRAPH chooses how stacks are taken (default `-g`, frame pointers: cheap, but
# SQLite and the standard library have none, so their callers are often lost).
# `PERF_CALLGRAPH="--call-graph dwarf,16384"` gives whole stacks (issue 14: it showed
# where SQLite's `pcache1TruncateUnsafe` runs: the commit's `pager_end_transaction`).
set -euo pipefail
cd "$(dirname "$0")/.."

STORE="${1:-embedded}"
SECONDS_TOTAL="${2:-20}"
CONNECTIONS="${3:-256}"
OUT=target/profile
ADDRESS=127.0.0.1:18095
SECRET="profile-secret"
source loadtests/common.sh
command -v perf >/dev/null || { echo "perf is missing: apt-get install -y linux-perf" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT"
begin_engine_runs flashcart_profile
store=embedded
[ "$STORE" = postgres ] && store=postgres-redis
start_engine "$store" "$ADDRESS" "$OUT/data" flashcart_profile "$SECRET"
"$BIN/flashcart-wrk" --host "http://$ADDRESS" prepare --jwt-secret "$SECRET" --out "$OUT/plan.txt"
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_TOTAL}s" --timeout 10s -s loadtests/wrk/buy_now.lua \
    "http://$ADDRESS" -- "$OUT/plan.txt" >"$OUT/wrk.txt" &
WRK=$!
sleep $((SECONDS_TOTAL / 4))
perf record -F 499 ${PERF_CALLGRAPH:--g} -p "$PID" -o "$OUT/perf.data" -- sleep $((SECONDS_TOTAL / 2)) 2>/dev/null
wait "$WRK"
echo "== wrk ($STORE, $CONNECTIONS connections): $(tail -1 "$OUT/wrk.txt")"
echo "== CPU by thread"
perf report -i "$OUT/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null \
    | grep -E '^ +[0-9]' | head -10
echo "== hottest functions"
perf report -i "$OUT/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null \
    | grep -E '^ +[0-9]' | head -40
