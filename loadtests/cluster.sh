#!/usr/bin/env bash
# Cluster figures (issue 15), with wrk, every request a new order (loadtests/wrk/buy_now.lua):
#   1. Buy Now served by the product's owner against Buy Now forwarded by the other node, in
#      one run, alternating (local, forwarded, local, forwarded);
#   2. one node against two, each node pinned to its own core (taskset) and each fed by its
#      own wrk for a product it owns (the generator's share is the same in both).
#
#   loadtests/cluster.sh [seconds per run, default 10] [connections, default 64]
#
# Nodes come from deploy/cluster.sh (PostgreSQL, Redis, the local broker) on a fresh
# database. Two cores: nodes, PostgreSQL, Redis and wrk share them, as every figure printed
# here does. Each run's row ends with the orders PostgreSQL gained beside wrk's 2xx count.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNECTIONS="${2:-64}"
source loadtests/common.sh
export CLUSTER_DIR="target/loadtest-cluster"
export CLUSTER_DB="flashcart_loadtest_cluster"
export CLUSTER_BIN="$BIN/flashcart"
WORK="$(mktemp -d)"
cleanup() {
    ./deploy/cluster.sh down >/dev/null 2>&1 || true
    drop_database "$CLUSTER_DB"
    rm -rf "$WORK"
}
trap cleanup EXIT
services_and_build
ensure_wrk
command -v jq >/dev/null 2>&1 || apt-get install -y -qq jq >/dev/null
./deploy/kafka.sh >/dev/null

# A cluster of $1 nodes on a fresh database and broker prefix; waits until every shard is
# leased and sets ADMIN and SECRET.
fresh_cluster() {
    ./deploy/cluster.sh down >/dev/null 2>&1 || true
    drop_database "$CLUSTER_DB"
    rm -rf "$CLUSTER_DIR"
    CLUSTER_PREFIX="lt$(date +%s%N)." ./deploy/cluster.sh up "$1" >/dev/null
    SECRET="$(cat "$CLUSTER_DIR/jwt-secret")"
    ADMIN="$(FLASHCART_AUTH__JWT_SECRET="$SECRET" "$BIN/flashcart" demo-token --user 1 --role admin \
        --data-dir "$WORK" | tail -1)"
    for _ in $(seq 150); do
        local leased
        leased="$("$BIN/flashcart" cluster status --server http://127.0.0.1:8081 --token "$ADMIN" --json |
            jq '[.nodes[] | select(.alive) | .shards | length] | add // 0')"
        [ "$leased" = 256 ] && [ "$("$BIN/flashcart" cluster status --server http://127.0.0.1:8081 \
            --token "$ADMIN" --json | jq '[.nodes[] | select(.alive and (.shards | length) > 0)] | length')" = "$1" ] &&
            { sleep 3; return 0; } # the group may still settle a last rebalance
        sleep 0.2
    done
    echo "the cluster did not settle" >&2
    return 1
}

# A plan (product with a live sale, shopper tokens) prepared through node $1 into file $2;
# sets OWNER to the node serving its product.
prepare_plan() {
    local plan="$2"
    FLASHCART_AUTH__JWT_SECRET="$SECRET" "$BIN/flashcart-wrk" --host "http://127.0.0.1:808$1" \
        prepare --shoppers 20000 --out "$plan" >/dev/null
    local product
    product="$(sed -n 's/^product //p' "$plan")"
    OWNER="$("$BIN/flashcart" cluster where --product "$product" --server http://127.0.0.1:8081 \
        --token "$ADMIN" --json | jq -r '.node | ltrimstr("n")')"
}

# wrk against node $1 with plan $2 ($3 threads, $4 connections): one JSON line. Each run
# gets a run id of its own: the keys of a run that reused another's would be replays of
# its orders (answered without a commit), not new orders.
run_wrk() {
    local plan
    plan="$(mktemp -p "$WORK")"
    sed "s/^run .*/run r$(date +%s%N)/" "$2" >"$plan"
    grep -q '^run ' "$plan" || echo "run r$(date +%s%N)" >>"$plan"
    wrk -t"$3" -c"$4" -d"${DURATION}s" -s loadtests/wrk/buy_now.lua "http://127.0.0.1:808$1" \
        -- "$plan" | tail -1
}

# Orders PostgreSQL holds: every 2xx of a run must be one more.
stored_orders() {
    psql -h 127.0.0.1 -U postgres -d "$CLUSTER_DB" -tAc "SELECT count(*) FROM orders"
}

row() { # label, wrk JSON[, new orders in PostgreSQL]
    echo "$2" | jq -r --arg name "$1" --arg stored "${3:-}" --argjson seconds "$DURATION" \
        '"\($name)\t\(.requests - .non_2xx - .socket_errors) orders\t\(((.requests - .non_2xx) / $seconds) | floor)/s\tp50 \(.p50_us / 1000) ms\tp99 \(.p99_us / 1000) ms\tnon-2xx \(.non_2xx)\(if $stored == "" then "" else "\tstored \($stored)" end)"'
}

# row for one run against node $1 with plan $2, counting the orders it stored.
measured_row() { # label, node, plan, threads, connections
    local before answer
    before="$(stored_orders)"
    answer="$(run_wrk "$2" "$3" "$4" "$5")"
    row "$1" "$answer" "$(($(stored_orders) - before))"
}

echo "== 1. local against forwarded Buy Now (2 nodes, $CONNECTIONS connections, ${DURATION}s each)"
fresh_cluster 2
plan="$WORK/plan-forwarding"
prepare_plan 1 "$plan"
other=$((OWNER == 1 ? 2 : 1))
for round in 1 2; do
    measured_row "local (n$OWNER) #$round" "$OWNER" "$plan" 2 "$CONNECTIONS"
    measured_row "forwarded (n$other -> n$OWNER) #$round" "$other" "$plan" 2 "$CONNECTIONS"
done

echo "== 2. one node against two, each pinned to a core ($CONNECTIONS connections in all)"
CLUSTER_PIN=1 fresh_cluster 1
plan="$WORK/plan-one-node"
prepare_plan 1 "$plan"
measured_row "1 node (core 0)" 1 "$plan" 2 "$CONNECTIONS"
CLUSTER_PIN=1 fresh_cluster 2
declare -A plans=()
for attempt in $(seq 12); do
    plan="$WORK/plan-two-nodes-$attempt"
    prepare_plan $((attempt % 2 + 1)) "$plan"
    [ -n "${plans[$OWNER]:-}" ] || plans[$OWNER]="$plan"
    [ ${#plans[@]} = 2 ] && break
done
[ ${#plans[@]} = 2 ] || { echo "could not place a product on each node" >&2; exit 1; }
half=$((CONNECTIONS / 2))
before="$(stored_orders)"
run_wrk 1 "${plans[1]}" 1 "$half" >"$WORK/n1.json" &
run_wrk 2 "${plans[2]}" 1 "$half" >"$WORK/n2.json"
wait
row "2 nodes: n1 (core 0)" "$(cat "$WORK/n1.json")"
row "2 nodes: n2 (core 1)" "$(cat "$WORK/n2.json")"
jq -s --argjson seconds "$DURATION" --arg stored "$(($(stored_orders) - before))" \
    '"2 nodes in all\t\((map(.requests - .non_2xx) | add) / $seconds | floor)/s\tstored \($stored)"' -r \
    "$WORK/n1.json" "$WORK/n2.json"
