#!/usr/bin/env bash
# Buy Now throughput and latency, in one run, against:
#   echo:           the engine's HTTP stack with an echo handler (the ceiling of this box)
#   classic:        Buy Now done the usual way (Redis Lua check-and-DECRBY, one INSERT per order)
#   embedded:       the engine on its embedded store (SQLite)
#   postgres-redis: the engine on PostgreSQL + Redis
# and prints, per number of connections, orders/s, p50/p99, the ratios to echo and to
# classic, and the proof that every request was a new order: the units the engine counts
# and the units the store holds must be equal, and at least wrk's 2xx answers (at most one
# more per connection: the requests in flight when wrk stopped, which it does not count).
# For the engine it also prints the share of the order workflow's payment requests (one per
# order) sent by the end of the run: a workflow that fell behind does the rest afterwards,
# on the same cores, and the orders/s beside it did not pay for that. For the targets on
# PostgreSQL it prints the WAL syncs a second and what each took: every commit waits for
# one, so the classic design (a commit per order, grouped by PostgreSQL) is as fast as this
# machine's disk lets it be, and the ratios to it move from machine to machine with that.
#
#   loadtests/compare.sh [seconds per target, default 20] [connections ..., default 64 256]
#
# The generator is wrk (Debian package, installed if missing): a few percent of a core at
# these rates, where goose took more than the engine itself. Every request is a new order:
# shoppers' tokens take turns and each request has its own Idempotency-Key
# (loadtests/wrk/buy_now.lua). COMPARE_GENERATOR=goose runs the goose harness instead
# (connections become virtual users). COMPARE_BEFORE=<dir> (holding another build's
# `flashcart` binary) adds that build's engine on both stores: a before/after table.
#
# Needs PostgreSQL and Redis on loopback (deploy/services.sh). Bounded: each target runs
# for the given time; every server is stopped afterwards. Server and generator share this
# machine's cores, as every figure it prints does.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${1:-20}"
shift || true
CONNECTIONS=("$@")
if [ ${#CONNECTIONS[@]} -eq 0 ]; then CONNECTIONS=(64 256); fi
GENERATOR="${COMPARE_GENERATOR:-wrk}"
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
if [ "$GENERATOR" = wrk ]; then ensure_wrk; fi

stop_last() { kill "${PIDS[-1]}" 2>/dev/null || true; wait "${PIDS[-1]}" 2>/dev/null || true; }

# start <target>: starts it on $ADDRESS; sets STORE_URL (empty when nothing to check).
start() {
    local target="$1" engine="$BIN/flashcart"
    case "$target" in *-before) engine="$COMPARE_BEFORE/flashcart" ;; esac
    STORE_URL=""
    case "$target" in
        echo)
            ADDRESS=127.0.0.1:18081
            "$BIN/echo-server" "$ADDRESS" >/dev/null & PIDS+=($!) ;;
        classic)
            ADDRESS=127.0.0.1:18082
            local db; db="$(fresh_database flashcart_compare_classic)"
            "$BIN/classic-server" "$ADDRESS" "$db" "$REDIS_URL" "$SECRET" >/dev/null & PIDS+=($!) ;;
        embedded*)
            ADDRESS=127.0.0.1:18083
            rm -rf "$WORK/$target"
            STORE_URL="sqlite://$WORK/$target/flashcart.db"
            FLASHCART_AUTH__JWT_SECRET="$SECRET" "$engine" serve --listen "$ADDRESS" \
                --data-dir "$WORK/$target" >"$WORK/$target.log" 2>&1 & PIDS+=($!) ;;
        postgres-redis*)
            ADDRESS=127.0.0.1:18084
            STORE_URL="$(fresh_database flashcart_compare_engine)"
            FLASHCART_AUTH__JWT_SECRET="$SECRET" FLASHCART_STORE__DATABASE_URL="$STORE_URL" \
                FLASHCART_REDIS__URL="$REDIS_URL" FLASHCART_REDIS__KEY_PREFIX="compare:$(date +%s%N):" \
                "$engine" serve --listen "$ADDRESS" --data-dir "$WORK/$target" \
                >"$WORK/$target.log" 2>&1 & PIDS+=($!) ;;
    esac
    wait_ready "$ADDRESS"
}

# measure <target> <connections>: writes $WORK/<target>-<connections>.json.
measure() {
    local target="$1" connections="$2" out="$WORK/$1-$2.json"
    echo "== $target: ${SECONDS_PER_TARGET}s, $connections connections ($GENERATOR)"
    if [ "$GENERATOR" = goose ]; then
        local verify=(--no-verify)
        [ "$target" = echo ] || verify=()
        [ -z "$STORE_URL" ] || verify=(--verify-database-url "$STORE_URL")
        "$BIN/flashcart-load" --host "http://$ADDRESS" --jwt-secret "$SECRET" --scenario flash-sale \
            --users "$connections" --increase-rate "$connections" --run-time "${SECONDS_PER_TARGET}s" \
            --quiet --report-file "$WORK/$target.html" --summary-json "$out" "${verify[@]}" \
            | grep -E '^(buy-now|VERIFY)' | sed 's/^/   /'
        return
    fi
    local plan="$WORK/plan.txt" product count_args=()
    "$BIN/flashcart-wrk" --host "http://$ADDRESS" prepare --jwt-secret "$SECRET" --out "$plan"
    product="$(sed -n 's/^product //p' "$plan")"
    [ -z "$STORE_URL" ] || count_args=(--database-url "$STORE_URL")
    local before; before="$("$BIN/flashcart-wrk" --host "http://$ADDRESS" count --product "$product" "${count_args[@]}")"
    # PostgreSQL's WAL counters around the run, for the targets on it (classic and the
    # engine on postgres-redis); the others pass zeros.
    local on_postgres=false wal_before="0 0 0" wal_after="0 0 0"
    case "$target" in classic | postgres-redis*) on_postgres=true ;; esac
    if $on_postgres; then wal_before="$(wal_stats)"; fi
    local TIMEFORMAT="%U %S"
    { time wrk -t2 -c"$connections" -d"${SECONDS_PER_TARGET}s" --timeout 10s \
        -s loadtests/wrk/buy_now.lua "http://$ADDRESS" -- "$plan" \
        | tail -1 >"$WORK/wrk.json"; } 2>"$WORK/wrk.cpu"
    if $on_postgres; then wal_after="$(wal_stats)"; fi
    local after; after="$("$BIN/flashcart-wrk" --host "http://$ADDRESS" count --product "$product" "${count_args[@]}")"
    # The engine's own count of Buy Now answers by status: what a non-2xx was (wrk only
    # counts them). Echo and classic have no /metrics: an empty file.
    : >"$WORK/metrics.txt"
    [ -z "$STORE_URL" ] || curl -s "http://$ADDRESS/metrics" >"$WORK/metrics.txt" || true
    python3 - "$WORK/wrk.json" "$WORK/wrk.cpu" "$before" "$after" "$out" "$WORK/metrics.txt" \
        "$WORK/$target.log" "$wal_before" "$wal_after" <<'PY'
import collections, json, os, re, sys
wrk = json.load(open(sys.argv[1]))
user, system = map(float, open(sys.argv[2]).read().split())
before, after = json.loads(sys.argv[3]), json.loads(sys.argv[4])
seconds = wrk["duration_us"] / 1e6
answered_2xx = wrk["requests"] - wrk["non_2xx"]
store = None if after["store_units"] is None else after["store_units"] - before["store_units"]
summary = {
    "orders_per_sec": answered_2xx / seconds,
    "p50_ms": wrk["p50_us"] / 1000, "p99_ms": wrk["p99_us"] / 1000, "p999_ms": wrk["p999_us"] / 1000,
    "requests": wrk["requests"], "answered_2xx": answered_2xx, "non_2xx": wrk["non_2xx"],
    "socket_errors": wrk["socket_errors"],
    "engine_new_units": after["engine_units"] - before["engine_units"], "store_new_units": store,
    "generator_cpu_percent": 100 * (user + system) / seconds,
}
# flashcart_http_requests_total{route="/api/v1/buy-now",method="POST",status="503"} 72
not_2xx = {}
for line in open(sys.argv[6]):
    found = re.match(r'flashcart_http_requests_total\{(.*)\} (\d+)', line)
    if found and 'route="/api/v1/buy-now"' in found[1]:
        status = re.search(r'status="(\d+)"', found[1])[1]
        if not status.startswith("2"):
            not_2xx[status] = not_2xx.get(status, 0) + int(found[2])
summary["engine_not_2xx"] = not_2xx
# PostgreSQL's WAL syncs during the run (`wal_stats`): none for the targets not on it.
syncs, sync_ms, wal_bytes = (a - b for a, b in zip(map(int, sys.argv[9].split()), map(int, sys.argv[8].split())))
summary["wal_syncs_per_sec"] = syncs / seconds
summary["wal_sync_us"] = 1000 * sync_ms / syncs if syncs > 0 else None
summary["wal_kb_per_sync"] = wal_bytes / 1024 / syncs if syncs > 0 else None
# The order workflow's payment requests (one per order) sent by the end of the run: what
# the engine did not do beside the orders it does after them, on the same cores.
payment_requests = None
for line in open(sys.argv[6]):
    if (line.startswith("flashcart_jobs_total{") and 'outcome="done"' in line
            and re.search(r'queue="(jobs\.payment_provider|[^"]*payments\.initiate)"', line)):
        payment_requests = (payment_requests or 0) + int(float(line.split()[-1]))
summary["payment_requests_sent"] = payment_requests
# What the engine said about them: its warnings and errors, by message (times cut off).
said = collections.Counter()
if not_2xx and os.path.exists(sys.argv[7]):
    for line in open(sys.argv[7], errors="replace"):
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        level = re.search(r" (WARN|ERROR) ", line)
        if level:
            said[line[level.start():].strip()[:200]] += 1
json.dump(summary, open(sys.argv[5], "w"))
print(f"   {wrk['requests']} requests, {answered_2xx} answered 2xx, {wrk['non_2xx']} not, "
      f"{wrk['socket_errors']} socket errors; engine counts {summary['engine_new_units']} new units, "
      f"store {store}; p50 {summary['p50_ms']:.2f} ms, p99 {summary['p99_ms']:.2f} ms"
      + (f"; the engine answered {not_2xx} (status: count)" if not_2xx else "")
      + (f"; PostgreSQL's WAL: {summary['wal_syncs_per_sec']:.0f} syncs/s, {summary['wal_sync_us']:.0f} µs "
         f"and {summary['wal_kb_per_sync']:.1f} KB each" if summary["wal_sync_us"] is not None else ""))
for message, count in said.most_common(3):
    print(f"     {count} x {message}")
PY
}

TARGETS=(echo classic)
if [ -n "${COMPARE_BEFORE:-}" ]; then TARGETS+=(embedded-before postgres-redis-before); fi
TARGETS+=(embedded postgres-redis)
for connections in "${CONNECTIONS[@]}"; do
    for target in "${TARGETS[@]}"; do
        start "$target"
        measure "$target" "$connections"
        stop_last
    done
done

python3 - "$WORK" "$GENERATOR" "${CONNECTIONS[*]}" "${TARGETS[@]}" <<'PY'
import json, os, sys
work, generator, connections, targets = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4:]
for c in connections:
    rows = [(t, json.load(open(os.path.join(work, f"{t}-{c}.json")))) for t in targets]
    echo = rows[0][1]["orders_per_sec"] or 1
    classic = rows[1][1]["orders_per_sec"] or 1
    print(f"\n{c} connections ({generator}; server and generator share the machine)")
    print(f"{'target':<24}{'orders/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs echo':>9}{'vs classic':>12}"
          f"{'gen CPU':>9}{'WAL syncs/s':>12}{'µs each':>9}  every request a new order?")
    for name, r in rows:
        if "answered_2xx" in r:
            # wrk counts the answers it read; requests still in flight when it stopped
            # (one per connection at most) were answered after, and counted by the engine.
            new, answered = r["engine_new_units"], r["answered_2xx"]
            holds = answered <= new <= answered + int(c) and r["store_new_units"] in (None, new)
            check = "n/a (echo keeps nothing)" if name == "echo" else (
                f"{'yes' if holds else 'NO'}: 2xx {answered}, engine {new} "
                f"(+{new - answered} in flight at the end), store {r['store_new_units']}")
            if r.get("engine_not_2xx"):
                check += f"; not 2xx by status: {r['engine_not_2xx']}"
            if name not in ("echo", "classic"):
                sent = r.get("payment_requests_sent") or 0
                check += f"; payment requests sent in the run {100 * sent / max(new, 1):.0f}%"
        else:
            check = f"goose verified: {r['verified']}"
        # A commit waits for a WAL sync: on PostgreSQL, what the disk makes each one cost.
        syncs, sync_us = "-", "-"
        if r.get("wal_sync_us") is not None:
            syncs, sync_us = f"{r['wal_syncs_per_sec']:.0f}", f"{r['wal_sync_us']:.0f}"
        print(f"{name:<24}{r['orders_per_sec']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
              f"{r['orders_per_sec']/echo:>8.2f}x{r['orders_per_sec']/classic:>11.2f}x"
              f"{r['generator_cpu_percent']:>8.0f}%{syncs:>12}{sync_us:>9}  {check}")
PY
