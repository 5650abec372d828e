#!/usr/bin/env bash
# Where the orders' batch statement spends its time on PostgreSQL, part by part. Turns on
# PostgreSQL's auto_explain (with ANALYZE, a sample of the statements) for the role the
# engine connects as, runs `cost.sh postgres` once, turns it off again (also on Ctrl-C or
# failure), and prints from the server's log: the executor's mean time per batch
# statement, each part's (CTE's) mean time, and the cost of a row of the tables that take
# one per order. EXPLAIN's own timing is included, so compare runs of this script, not
# these figures with cost.sh's.
#
#   loadtests/statement_parts.sh [seconds, default 6] [connections, default 64]
#
# Needs the server's log at $PG_LOG (Debian's default below) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TOTAL="${1:-6}"
CONNECTIONS="${2:-64}"
PG_LOG="${PG_LOG:-/var/log/postgresql/postgresql-15-main.log}"
SAMPLE_RATE="${SAMPLE_RATE:-0.05}"
source loadtests/common.sh

role_sql() { psql "$ADMIN_DB" -qAtc "$1"; }
explain_off() { role_sql "ALTER ROLE CURRENT_USER RESET ALL" || true; }
trap explain_off EXIT
role_sql "ALTER ROLE CURRENT_USER SET session_preload_libraries = 'auto_explain'"
role_sql "ALTER ROLE CURRENT_USER SET auto_explain.log_min_duration = 0"
role_sql "ALTER ROLE CURRENT_USER SET auto_explain.log_analyze = on"
role_sql "ALTER ROLE CURRENT_USER SET auto_explain.sample_rate = $SAMPLE_RATE"

from_line=$(($(wc -l <"$PG_LOG") + 1))
loadtests/cost.sh postgres "$SECONDS_TOTAL" "$CONNECTIONS" | grep -E '^(wrk|orders):'
explain_off
trap - EXIT

tail -n "+$from_line" "$PG_LOG" | python3 -c '
import re, statistics, sys
entries = [e for e in re.split(r"\n(?=\S.*LOG:  duration:)", sys.stdin.read()) if "WITH fences" in e]
if not entries:
    sys.exit("no batch statement in the log (is auto_explain available?)")
durations = [float(re.search(r"duration: ([\d.]+) ms", e).group(1)) for e in entries]
print(f"batch statements sampled: {len(entries)}, executor mean {statistics.mean(durations):.3f} ms")
parts = {}
for e in entries:
    for part in re.finditer(r"CTE (\w+)\n\s+->.*?actual time=[\d.]+\.\.([\d.]+)", e):
        parts.setdefault(part.group(1), []).append(float(part.group(2)))
for name, times in sorted(parts.items(), key=lambda kv: -statistics.mean(kv[1])):
    print(f"  {name:<14} mean {statistics.mean(times):.3f} ms")
for table, scan in [("orders", "o"), ("order_items", "unnest"), ("notifications", "n")]:
    rows = took = 0
    for e in entries:
        m = re.search(r"Insert on " + table + r" .*?actual time=[\d.]+\.\.([\d.]+).*?Function Scan on " + scan + r" .*?rows=(\d+) loops", e, re.S)
        if m and int(m.group(2)) > 0:
            rows += int(m.group(2)); took += float(m.group(1))
    if rows:
        print(f"a row of {table}: {1000 * took / rows:.1f} µs ({rows} rows)")
'
