#!/usr/bin/env bash
# What one accepted order costs, and where the time between commits goes. Runs one engine
# (embedded, or on PostgreSQL + Redis) under wrk (every request a new order, as compare.sh
# does) and prints:
#   - CPU time per order of each process on the box: the engine, PostgreSQL (every
#     backend and helper), Redis, wrk itself, and the whole machine, with its idle share.
#     Idle time left under load means the pipeline waits on itself, not on the CPU.
#   - the group committer's rhythm, from its trace lines: writes and submitters per batch,
#     how long a commit takes, and the gap between one commit's end and the next one's
#     start (the time the store sits idle while answers go out and new orders come in).
#
#   loadtests/cost.sh [embedded|postgres] [seconds, default 16] [connections, default 64]
#
# Extra engine settings go through the environment, e.g.
#   FLASHCART_SHOP__COMMIT_BATCH_DELAY_US=0 loadtests/cost.sh embedded
# Bounded: one wrk run of the given length; the engine is stopped afterwards. CPU is read
# from /proc over the whole wrk run.
set -euo pipefail
cd "$(dirname "$0")/.."

STORE="${1:-embedded}"
SECONDS_TOTAL="${2:-16}"
CONNECTIONS="${3:-64}"
ADDRESS=127.0.0.1:18098
SECRET="cost-secret"
source loadtests/common.sh
begin_engine_runs flashcart_cost

store=embedded
[ "$STORE" = postgres ] && store=postgres-redis
RUST_LOG="${RUST_LOG:-info,persistence::group_commit=trace}" \
    start_engine "$store" "$ADDRESS" "$WORK/data" flashcart_cost "$SECRET"
"$BIN/flashcart-wrk" --host "http://$ADDRESS" prepare --jwt-secret "$SECRET" --out "$WORK/plan.txt"

# CPU ticks (user + system) of the given processes, summed over their threads.
ticks() {
    local sum=0 pid
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] && sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$sum"
}
# engine postgres redis wrk busy idle, in ticks.
snapshot() {
    echo "$(ticks "$PID") $(ticks $(pgrep -x postgres || true)) $(ticks $(pgrep -x redis-server || true))" \
        "$(ticks "$1") $(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat)"
}

wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_TOTAL}s" --timeout 10s -s loadtests/wrk/buy_now.lua \
    "http://$ADDRESS" -- "$WORK/plan.txt" >"$WORK/wrk.txt" &
WRK=$!
start=($(snapshot "$WRK"))
sleep $((SECONDS_TOTAL - 1))
end=($(snapshot "$WRK"))
wait "$WRK"
summary="$(tail -1 "$WORK/wrk.txt")"
orders="$(sed -E 's/.*"requests":([0-9]+).*/\1/' <<<"$summary")"
per_tick=$((1000000 / $(getconf CLK_TCK)))

echo "== $STORE, $CONNECTIONS connections, ${SECONDS_TOTAL}s (wrk and the servers share this machine)"
echo "wrk: $summary"
echo "orders: $orders ($((orders / SECONDS_TOTAL))/s)"
echo "== CPU per order (µs)"
names=(engine postgres redis wrk machine)
for i in 0 1 2 3 4; do
    printf '%-9s %6d\n' "${names[i]}" $(((end[i] - start[i]) * per_tick / (orders > 0 ? orders : 1)))
done
busy=$((end[4] - start[4]))
idle=$((end[5] - start[5]))
printf '%-9s %5d%%\n' idle $((idle * 100 / (busy + idle > 0 ? busy + idle : 1)))

echo "== group commit (middle half of the run)"
# Trace lines: "<RFC 3339 time> TRACE persistence::group_commit: batch done write_count=..
# submitters=.. elapsed_us=..". A gap is the next batch's start (its end minus its elapsed
# time) minus this batch's end.
sed -E 's/\x1b\[[0-9;]*m//g' "$WORK/data.log" | awk '
    /batch done/ {
        split(substr($1, 12, 15), hms, ":")
        at = (hms[1] * 3600 + hms[2] * 60 + hms[3]) * 1000000
        for (i = 2; i <= NF; i++) { split($i, kv, "="); value[kv[1]] = kv[2] }
        n++; end_us[n] = at; writes[n] = value["write_count"]
        submitters[n] = value["submitters"]; elapsed[n] = value["elapsed_us"]
    }
    END {
        if (n < 8) { print "too few batches traced (is RUST_LOG set to trace the committer?)"; exit }
        from = int(n / 4); to = int(n * 3 / 4)
        for (i = from; i <= to; i++) {
            count++; w += writes[i]; s += submitters[i]; e += elapsed[i]
            gap = end_us[i + 1] - elapsed[i + 1] - end_us[i]
            if (gap >= 0) { gaps++; g += gap }
        }
        printf "batches %d, writes per batch %.1f, submitters %.1f, commit %.0f µs, gap %.0f µs (means)\n",
            count, w / count, s / count, e / count, (gaps ? g / gaps : 0)
    }'
