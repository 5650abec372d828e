#!/usr/bin/env bash
# Latency over time: one engine under Buy Now, measured in back-to-back slices of wrk (one
# second each by default), so a stall shows up as the slice it happened in rather than as
# a p99 averaged over a whole run. Each slice prints orders/s, p50/p99/p999, the engine's
# resident memory and, on the embedded store, the size of SQLite's WAL: the two things
# that grew with the stalls found so far; and the bytes the engine wrote to storage per
# order in that slice (`/proc/<pid>/io`: on the embedded store its WAL frames and the
# checkpoints' copies, which grow with the tables as the indexes' random leaves spread
# out; on PostgreSQL near zero, the server writes). Every slice uses its own Idempotency-Keys (a
# fresh run id in the plan), so every request is a new order; at the end, the proof over
# the whole run (wrk's 2xx answers <= the engine's new units = the store's units).
#
#   loadtests/timeline.sh [embedded|postgres] [slices, default 20] [connections, default 256] [seconds per slice, default 1]
set -euo pipefail
cd "$(dirname "$0")/.."

STORE="${1:-embedded}"
SLICES="${2:-20}"
CONNECTIONS="${3:-256}"
SLICE_SECONDS="${4:-1}"
ADDRESS=127.0.0.1:18096
SECRET="timeline-secret"
source loadtests/common.sh
begin_engine_runs flashcart_timeline

store=embedded
[ "$STORE" = postgres ] && store=postgres-redis
start_engine "$store" "$ADDRESS" "$WORK/data" flashcart_timeline "$SECRET"
"$BIN/flashcart-wrk" --host "http://$ADDRESS" prepare --jwt-secret "$SECRET" --out "$WORK/plan.txt"
count() { "$BIN/flashcart-wrk" --host "http://$ADDRESS" count --plan "$WORK/plan.txt" --database-url "$STORE_URL"; }
before="$(count)"

printf '%5s %10s %8s %8s %8s %9s %9s %9s\n' slice orders/s "p50 ms" "p99 ms" "p999 ms" "RSS MB" "WAL MB" "KB/order"
: >"$WORK/answered"
written() { awk '/^write_bytes:/ {print $2}' "/proc/$PID/io"; }
written_before="$(written)"
for slice in $(seq "$SLICES"); do
    sed -i "s/^run .*/run timeline-$slice-$(date +%s%N)/" "$WORK/plan.txt"
    wrk -t2 -c"$CONNECTIONS" -d"${SLICE_SECONDS}s" --timeout 10s -s loadtests/wrk/buy_now.lua \
        "http://$ADDRESS" -- "$WORK/plan.txt" | tail -1 >"$WORK/wrk.json"
    rss_kb="$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")"
    wal_bytes="$(stat -c %s "$WORK/data/flashcart.db-wal" 2>/dev/null || echo "")"
    written_now="$(written)"
    python3 - "$WORK/wrk.json" "$slice" "$rss_kb" "$wal_bytes" "$WORK/answered" \
        "$((written_now - written_before))" <<'PY'
import json, sys
wrk = json.load(open(sys.argv[1]))
slice_number, rss_kb, wal = sys.argv[2], int(sys.argv[3]), sys.argv[4]
answered = wrk["requests"] - wrk["non_2xx"]
open(sys.argv[5], "a").write(f"{answered}\n")
wal_mb = f"{int(wal) / 1e6:9.0f}" if wal else f"{'-':>9}"
written_kb = int(sys.argv[6]) / 1024 / max(answered, 1)
print(f"{slice_number:>5} {answered / (wrk['duration_us'] / 1e6):>10.0f} {wrk['p50_us'] / 1000:>8.1f} "
      f"{wrk['p99_us'] / 1000:>8.1f} {wrk['p999_us'] / 1000:>8.1f} {rss_kb / 1e3:>9.0f} {wal_mb} "
      f"{written_kb:>9.2f}")
PY
    written_before="$written_now"
done

after="$(count)"
python3 - "$WORK/answered" "$before" "$after" "$CONNECTIONS" "$SLICES" <<'PY'
import json, sys
answered = sum(int(line) for line in open(sys.argv[1]))
before, after = json.loads(sys.argv[2]), json.loads(sys.argv[3])
connections, slices = int(sys.argv[4]), int(sys.argv[5])
engine = after["engine_units"] - before["engine_units"]
stored = after["store_units"] - before["store_units"]
# Each slice's wrk stops with up to one request per connection in flight, which it does
# not count but the engine may still take.
holds = answered <= engine <= answered + connections * slices and stored == engine
print(f"every request a new order? {'yes' if holds else 'NO'}: 2xx {answered}, engine {engine}, store {stored}")
PY
echo "(wrk, the engine and its store share this machine's cores)"
