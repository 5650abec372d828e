#!/usr/bin/env bash
# What one accepted order costs, and where the time between commits goes. Runs one engine
# (embedded, or on PostgreSQL + Redis) under wrk (every request a new order, as compare.sh
# does) and prints:
#   - CPU time per order of each process on the box: the engine, PostgreSQL (every
#     backend and helper), Redis, wrk itself, and the whole machine, with its idle share.
#     Idle time left under load means the pipeline waits on itself, not on the CPU.
#   - the group committer's rhythm, from its trace lines: writes per batch, how long a
#     commit takes, and the gap between one commit's end and the next one's start (the
#     time the store sits idle while answers go out and new orders come in).
#   - the spread of commit times; on the embedded store, whether the commits that ran
#     beside a background checkpoint of the WAL took longer than the others.
#   - the work an order leaves behind: how many of the order workflow's payment requests
#     (one per order) went out during the run, how long the rest took after it, and the
#     CPU per order with that catch-up counted.
#   - on PostgreSQL, the WAL syncs a second and what each took (a commit waits for one).
#   - on PostgreSQL with COST_SAMPLE_WAITS=1, where a commit's time goes: the batch
#     statement's backend sampled every 2 ms (`pg_stat_activity`) as running (on a CPU or
#     waiting for one), flushing the WAL, waiting for a lock or for other I/O, or not in
#     the database at all (the statement on its way, or the committer between batches).
#     The sampler is a backend too: its CPU counts in PostgreSQL's share of that run.
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
RUST_LOG="${RUST_LOG:-info,persistence::group_commit=trace,persistence::wal=debug}" \
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
# Samples, for $1 seconds, what the backend running the committer's batch statement (the
# one that starts `WITH fences`) is doing, and prints the share of each state. One sample
# every 2 ms; a sample with no such statement active counts as "not in the database".
sample_batch_backend() {
    psql "$ADMIN_DB" -qAt -F ' ' -v seconds="$1" <<'SQL'
CREATE TEMP TABLE samples (state text);
-- psql does not substitute variables inside a dollar-quoted body: passed as a setting.
SET flashcart.sample_seconds = :'seconds';
DO $$
DECLARE
    until timestamptz := clock_timestamp()
        + make_interval(secs => current_setting('flashcart.sample_seconds')::float8);
BEGIN
    WHILE clock_timestamp() < until LOOP
        PERFORM pg_stat_clear_snapshot();
        INSERT INTO samples SELECT COALESCE((
            SELECT CASE
                WHEN wait_event IS NULL THEN 'running'
                WHEN wait_event IN ('WALSync', 'WALWrite') THEN 'flushing the WAL'
                WHEN wait_event_type = 'Lock' THEN 'waiting for a lock'
                ELSE 'waiting: ' || wait_event END
            FROM pg_stat_activity
            WHERE application_name = 'flashcart' AND state = 'active'
              AND query LIKE 'WITH fences%' LIMIT 1), 'not in the database');
        PERFORM pg_sleep(0.002);
    END LOOP;
END $$;
SELECT round(100.0 * count(*) / (SELECT count(*) FROM samples)) || '%', state
    FROM samples GROUP BY state ORDER BY count(*) DESC;
SQL
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
wal_start=($(wal_stats))
if [ "$STORE" = postgres ] && [ "${COST_SAMPLE_WAITS:-0}" = 1 ]; then
    sample_batch_backend $((SECONDS_TOTAL - 2)) >"$WORK/waits.txt" 2>&1 &
    SAMPLER=$!
fi
sleep $((SECONDS_TOTAL - 1))
end=($(snapshot "$WRK"))
wal_end=($(wal_stats))
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
# A commit waits for a WAL sync (`wal_stats` in common.sh): what this machine's disk makes
# each one cost under this load.
syncs=$((wal_end[0] - wal_start[0]))
if [ "$STORE" = postgres ] && [ "$syncs" -gt 0 ]; then
    echo "== PostgreSQL's WAL"
    echo "syncs $((syncs / (SECONDS_TOTAL - 1)))/s, $(((wal_end[1] - wal_start[1]) * 1000 / syncs)) µs" \
        "and $(((wal_end[2] - wal_start[2]) / 1024 / syncs)) KB each"
fi

# The work an order leaves behind: the order workflow (outbox relay, saga) sends one
# payment request per order after the order is answered, through the same committer. Under
# load it may fall behind; what it did not do during the run is done after it, and costs
# CPU the figures above do not count. Counted from the engine's /metrics (payment request
# jobs done: the in-process queue's, or RabbitMQ's `payments.initiate` when
# FLASHCART_RABBITMQ__URL is set), polled until every order has had its request (at most
# COST_DRAIN_MAX_SECS, default 120).
payment_requests() {
    curl -s "http://$ADDRESS/metrics" | awk '
        /^flashcart_jobs_total\{/ && /queue="(jobs.payment_provider|[^"]*payments.initiate)"/ &&
            /outcome="done"/ { n += $NF }
        END { printf "%d\n", n }'
}
sent_in_run="$(payment_requests)"
drained_at=$SECONDS
drain_limit=$((SECONDS + ${COST_DRAIN_MAX_SECS:-120}))
while [ "$(payment_requests)" -lt "$orders" ] && [ $SECONDS -lt $drain_limit ]; do sleep 0.5; done
drain_secs=$((SECONDS - drained_at))
sent_after="$(payment_requests)"
drained=($(snapshot "$WRK"))
echo "== the order workflow (one payment request per order, sent after the answer)"
echo "payment requests sent by the end of the run: $sent_in_run of $orders" \
    "($((sent_in_run * 100 / (orders > 0 ? orders : 1)))%); $sent_after after ${drain_secs}s more"
# The machine's busy time, not PostgreSQL's processes: its backends are replaced every
# half minute (their CPU leaves with them), and the catch-up may take longer. wrk's share
# of the run is taken out.
echo "CPU per order, the run and the workflow's catch-up together (µs):" \
    "engine $(((drained[0] - start[0]) * per_tick / (orders > 0 ? orders : 1)))," \
    "the machine without wrk $(((drained[4] - start[4] - (end[3] - start[3])) * per_tick / (orders > 0 ? orders : 1)))"

echo "== group commit (middle half of the run)"
# Trace lines: "<RFC 3339 time> TRACE persistence::group_commit: batch done write_count=..
# elapsed_us=..". A gap is the next batch's start (its end minus its elapsed
# time) minus this batch's end.
sed -E 's/\x1b\[[0-9;]*m//g' "$WORK/data.log" >"$WORK/plain.log"
awk '
    /batch done/ {
        split(substr($1, 12, 15), hms, ":")
        at = (hms[1] * 3600 + hms[2] * 60 + hms[3]) * 1000000
        for (i = 2; i <= NF; i++) { split($i, kv, "="); value[kv[1]] = kv[2] }
        n++; end_us[n] = at; writes[n] = value["write_count"]; elapsed[n] = value["elapsed_us"]
    }
    END {
        if (n < 8) { print "too few batches traced (is RUST_LOG set to trace the committer?)"; exit }
        from = int(n / 4); to = int(n * 3 / 4)
        for (i = from; i <= to; i++) {
            count++; w += writes[i]; e += elapsed[i]
            gap = end_us[i + 1] - elapsed[i + 1] - end_us[i]
            if (gap >= 0) { gaps++; g += gap }
        }
        printf "batches %d, writes per batch %.1f, commit %.0f µs, gap %.0f µs (means)\n",
            count, w / count, e / count, (gaps ? g / gaps : 0)
    }' "$WORK/plain.log"
# The spread of commit times over the whole run: the tail of Buy Now is a few slow ones.
sed -nE 's/.*batch done.*elapsed_us=([0-9]+).*/\1/p' "$WORK/plain.log" | sort -n | awk '
    { at[NR] = $1 }
    END { if (NR) printf "commit p50 %d, p90 %d, p99 %d, p999 %d, max %d µs\n",
        at[int(NR * .5) + 1], at[int(NR * .9) + 1], at[int(NR * .99) + 1], at[int(NR * .999) + 1], at[NR] }'
# Embedded: do the commits that run beside a background checkpoint of the WAL (its
# `persistence::wal` debug lines: end time and length) take longer than the others?
if [ "$STORE" = embedded ]; then
    awk '
        function us(stamp, hms) {
            split(substr(stamp, 12, 15), hms, ":")
            return (hms[1] * 3600 + hms[2] * 60 + hms[3]) * 1000000
        }
        function elapsed(line) { match(line, /elapsed_us=[0-9]+/); return substr(line, RSTART + 11, RLENGTH - 11) + 0 }
        /passive checkpoint/ { k++; to[k] = us($1); from[k] = to[k] - elapsed($0) }
        /batch done/ { n++; end_at[n] = us($1); took[n] = elapsed($0) }
        END {
            j = 1
            for (i = 1; i <= n; i++) {
                start = end_at[i] - took[i]
                while (j <= k && to[j] < start) j++
                side = (j <= k && from[j] < end_at[i]) ? "beside a checkpoint" : "with none running"
                count[side]++; sum[side] += took[i]; if (took[i] > 3000) slow[side]++
            }
            for (side in count)
                printf "commits %s: %d, mean %.0f µs, %.1f%% over 3 ms\n",
                    side, count[side], sum[side] / count[side], 100 * slow[side] / count[side]
        }' "$WORK/plain.log"
fi
if [ -n "${SAMPLER:-}" ]; then
    wait "$SAMPLER" || true
    echo "== the batch statement's backend (PostgreSQL, sampled every 2 ms over the run)"
    cat "$WORK/waits.txt"
fi
