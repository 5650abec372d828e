#!/usr/bin/env bash
# A local cluster of flashcart nodes on loopback, against the local PostgreSQL, Redis and
# Kafka-protocol broker (deploy/services.sh, deploy/kafka.sh start them if needed).
#
#   deploy/cluster.sh up 3      # nodes n1..n3: public 127.0.0.1:8081.., internal :7101..
#   deploy/cluster.sh status    # which node is up, and its pid and log
#   deploy/cluster.sh down      # SIGTERM every node (each hands its shards off first)
#
# Settings (environment): CLUSTER_DIR (state, logs; default target/cluster), CLUSTER_DB
# (database name, default flashcart_cluster), CLUSTER_BIN (default target/release/flashcart,
# built if missing; not FLASHCART_*: the engine refuses environment variables it does not know), CLUSTER_SESSION_TIMEOUT_MS (default 6000), CLUSTER_PREFIX (Kafka topic
# and group prefix, default cluster.), CLUSTER_PIN=1 (node n runs on core n-1, `taskset`,
# for measuring nodes that do not share cores). Every node shares one JWT secret (in CLUSTER_DIR), so a
# token from `flashcart demo-token --data-dir $CLUSTER_DIR` works on any node.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${CLUSTER_DIR:-target/cluster}"
DB="${CLUSTER_DB:-flashcart_cluster}"
BIN="${CLUSTER_BIN:-target/release/flashcart}"
SESSION_TIMEOUT_MS="${CLUSTER_SESSION_TIMEOUT_MS:-6000}"
PREFIX="${CLUSTER_PREFIX:-cluster.}"
PUBLIC_BASE=8080
INTERNAL_BASE=7100

log() { printf '[cluster] %s\n' "$*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

node_pid() { # node number -> pid, if running
    local file="$DIR/n$1.pid"
    [ -f "$file" ] && kill -0 "$(cat "$file")" 2>/dev/null && cat "$file"
}

up() {
    local count="${1:-3}"
    if ! [[ "$count" =~ ^[1-9][0-9]?$ ]]; then
        echo "usage: $0 up N (1 to 99 nodes)" >&2
        exit 2
    fi
    ./deploy/services.sh
    ./deploy/kafka.sh
    if [ ! -x "$BIN" ]; then
        log "building $BIN"
        cargo build --release --workspace --locked
    fi
    mkdir -p "$DIR"
    if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
        log "creating database $DB"
        psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE \"$DB\""
    fi
    local secret_file="$DIR/jwt-secret"
    [ -f "$secret_file" ] || head -c 32 /dev/urandom | base64 | tr -d '\n' >"$secret_file"
    local webhook_file="$DIR/webhook-secret"
    [ -f "$webhook_file" ] || head -c 32 /dev/urandom | base64 | tr -d '\n' >"$webhook_file"
    for n in $(seq "$count"); do
        if node_pid "$n" >/dev/null; then
            log "n$n is already up (pid $(node_pid "$n"))"
            continue
        fi
        local public=$((PUBLIC_BASE + n)) internal=$((INTERNAL_BASE + n))
        mkdir -p "$DIR/n$n"
        local pin=()
        if [ "${CLUSTER_PIN:-0}" = 1 ]; then pin=(taskset -c $(((n - 1) % $(nproc)))); fi
        FLASHCART_STORE__DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" \
        FLASHCART_REDIS__URL="redis://127.0.0.1:6379" \
        FLASHCART_REDIS__KEY_PREFIX="$PREFIX" \
        FLASHCART_KAFKA__BROKERS="127.0.0.1:9092" \
        FLASHCART_KAFKA__PREFIX="$PREFIX" \
        FLASHCART_AUTH__JWT_SECRET="$(cat "$secret_file")" \
        FLASHCART_PAYMENTS__WEBHOOK_SECRET="$(cat "$webhook_file")" \
        FLASHCART_CLUSTER__NODE_ID="n$n" \
        FLASHCART_CLUSTER__INTERNAL_LISTEN="127.0.0.1:$internal" \
        FLASHCART_CLUSTER__SESSION_TIMEOUT_MS="$SESSION_TIMEOUT_MS" \
            nohup "${pin[@]}" "$BIN" serve --listen "127.0.0.1:$public" --data-dir "$DIR/n$n" \
            >"$DIR/n$n.log" 2>&1 &
        echo $! >"$DIR/n$n.pid"
        for _ in $(seq 100); do
            port_open "$public" && break
            if ! node_pid "$n" >/dev/null; then
                log "n$n exited; its log:"
                tail -20 "$DIR/n$n.log" >&2
                exit 1
            fi
            sleep 0.2
        done
        port_open "$public" || { log "n$n did not open port $public; see $DIR/n$n.log"; exit 1; }
        log "n$n up: http://127.0.0.1:$public (internal 127.0.0.1:$internal, pid $(node_pid "$n"))"
    done
    log "admin token: $BIN demo-token --user 1 --role admin (with FLASHCART_AUTH__JWT_SECRET=\$(cat $secret_file))"
}

status() {
    local found=0
    for file in "$DIR"/n*.pid; do
        [ -e "$file" ] || continue
        local name n
        name="$(basename "$file" .pid)"
        n="${name#n}"
        found=1
        if node_pid "$n" >/dev/null; then
            echo "$name up   pid $(node_pid "$n")  http://127.0.0.1:$((PUBLIC_BASE + n))  log $DIR/$name.log"
        else
            echo "$name down"
        fi
    done
    [ "$found" = 1 ] || echo "no nodes (deploy/cluster.sh up N)"
}

down() {
    for file in "$DIR"/n*.pid; do
        [ -e "$file" ] || continue
        local pid name
        pid="$(cat "$file")"
        name="$(basename "$file" .pid)"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            if kill -0 "$pid" 2>/dev/null; then
                log "$name did not stop in 30 s; killing it"
                kill -KILL "$pid"
            fi
            log "$name stopped"
        fi
        rm -f "$file"
    done
}

case "${1:-}" in
    up) up "${2:-3}" ;;
    status) status ;;
    down) down ;;
    *)
        echo "usage: $0 up N | status | down" >&2
        exit 2
        ;;
esac
