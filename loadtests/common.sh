# Shared by compare.sh and overload.sh (sourced, from the repository root): where the
# services are, the release build, a fresh database, and waiting for a server to be ready.

ADMIN_DB="${FLASHCART_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
BASE_DB="${ADMIN_DB%/*}"
REDIS_URL="${FLASHCART_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
# LOADTEST_BIN names a directory of binaries built before (a copy of target/release), to
# measure two builds against each other: the scripts then run those and build nothing.
BIN="${LOADTEST_BIN:-target/release}"

# PostgreSQL and Redis up (deploy/services.sh is idempotent), then one release build.
services_and_build() {
    ./deploy/services.sh >/dev/null
    [ -n "${LOADTEST_BIN:-}" ] && return 0
    echo "building release binaries..."
    # The whole workspace, as CI and `cargo build --release` do: building only two packages
    # unifies features differently and rebuilds half the dependency tree.
    cargo build --release --locked -q --workspace
}

# Drops and recreates database $1; prints its URL. Its sessions time their WAL writes and
# syncs (`track_wal_io_timing`, a superuser's setting: skipped if refused), for wal_stats.
fresh_database() {
    psql "$ADMIN_DB" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
    psql "$ADMIN_DB" -qc "CREATE DATABASE $1" >/dev/null
    psql "$ADMIN_DB" -qc "ALTER DATABASE $1 SET track_wal_io_timing = on" >/dev/null 2>&1 || true
    echo "$BASE_DB/$1"
}

# PostgreSQL's WAL counters since the server started (`pg_stat_wal`, the whole cluster):
# "<syncs> <milliseconds syncing> <bytes>". A commit waits for its sync, and one sync
# covers every commit waiting then: the figures that say what a commit costs on this
# machine's disk, for the engine's batches and the classic design's INSERTs alike. The
# time counts only sessions of a fresh_database (the WAL writer's rare syncs are counted,
# untimed).
wal_stats() {
    psql "$ADMIN_DB" -qAt -F ' ' -c "SELECT wal_sync, round(wal_sync_time), wal_bytes FROM pg_stat_wal" \
        2>/dev/null || echo "0 0 0"
}

drop_database() {
    psql "$ADMIN_DB" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null 2>&1 || true
}

# Waits (up to 20 s) for the server on host:port $1 to answer /readyz.
wait_ready() {
    for _ in $(seq 100); do
        if curl -sf "http://$1/readyz" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "server on $1 did not become ready" >&2
    return 1
}

# wrk (Debian package), installed if missing.
ensure_wrk() {
    command -v wrk >/dev/null 2>&1 && return 0
    echo "installing wrk"
    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
}

# start_engine <embedded|postgres-redis> <host:port> <data dir> <database name> <jwt secret>:
# starts the release engine on that store (a fresh PostgreSQL database and its own Redis
# key prefix for postgres-redis), logging to <data dir>.log, and waits until it is ready.
# Sets PID and STORE_URL (the store flashcart-wrk count reads).
start_engine() {
    local store="$1" address="$2" data_dir="$3" database="$4" secret="$5"
    # Every simulated shopper calls from 127.0.0.1: the per-address buckets would measure
    # themselves. LOADTEST_RATE_LIMITS=true keeps them (the shoppers honour Retry-After);
    # =omit says nothing, for builds older than [rate_limits] (they refuse unknown keys).
    local environment=(FLASHCART_AUTH__JWT_SECRET="$secret")
    if [ "${LOADTEST_RATE_LIMITS:-false}" != omit ]; then
        environment+=(FLASHCART_RATE_LIMITS__ENABLED="${LOADTEST_RATE_LIMITS:-false}")
    fi
    STORE_URL="sqlite://$data_dir/flashcart.db"
    if [ "$store" = postgres-redis ]; then
        STORE_URL="$(fresh_database "$database")"
        environment+=(FLASHCART_STORE__DATABASE_URL="$STORE_URL" FLASHCART_REDIS__URL="$REDIS_URL"
                      FLASHCART_REDIS__KEY_PREFIX="$database:$(date +%s%N):")
    fi
    env "${environment[@]}" "$BIN/flashcart" serve --listen "$address" --data-dir "$data_dir" \
        >"$data_dir.log" 2>&1 &
    PID=$!
    wait_ready "$address" || { head -5 "$data_dir.log" >&2; return 1; }
}

# For scripts that run one engine at a time: a scratch directory ($WORK) and, on exit, the
# running engine ($PID), database $1 and that directory go away; then the services, the
# build and wrk.
begin_engine_runs() {
    WORK="$(mktemp -d)"
    PID=""
    RUNS_DATABASE="$1"
    trap end_engine_runs EXIT
    services_and_build
    ensure_wrk
}

end_engine_runs() {
    [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
    # LOADTEST_KEEP_LOG=<file>: the engine's log outlives the run (e.g. with
    # RUST_LOG=info,persistence=debug, to line stalls up with commits and checkpoints).
    [ -z "${LOADTEST_KEEP_LOG:-}" ] || cat "$WORK"/*.log >"$LOADTEST_KEEP_LOG" 2>/dev/null || true
    drop_database "$RUNS_DATABASE"
    rm -rf "$WORK"
}
