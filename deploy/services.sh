#!/usr/bin/env bash
# Makes sure the local services the engine's tests (and `serve` with services) use are up
# on loopback: PostgreSQL, Redis and RabbitMQ. Idempotent: checks first, starts what is down,
# installs (Debian packages) what is missing. Safe to run before every test run.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
APT_UPDATED=0

log() { printf '[services] %s\n' "$*"; }

apt_install() {
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        $SUDO apt-get update -qq
        APT_UPDATED=1
    fi
    log "installing $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # description, tries, command...
    local what="$1" tries="$2"
    shift 2
    for _ in $(seq "$tries"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    log "$what did not come up"
    return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

psql_admin() { psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -tAq "$@"; }

ensure_postgres() {
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        apt_install postgresql
    fi
    if ! port_open 5432; then
        local version
        version="$(ls /etc/postgresql | sort -V | tail -1)"
        log "starting PostgreSQL $version"
        $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        wait_for "PostgreSQL" 30 port_open 5432
    fi
    if ! psql_admin -c 'SELECT 1' >/dev/null 2>&1; then
        # A fresh Debian install only trusts local peers; the tests connect over TCP as
        # postgres without a password, as on the CI machines.
        local version hba
        version="$(ls /etc/postgresql | sort -V | tail -1)"
        hba="/etc/postgresql/$version/main/pg_hba.conf"
        log "allowing trusted loopback connections in $hba"
        $SUDO sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main reload
        wait_for "PostgreSQL auth" 10 psql_admin -c 'SELECT 1'
    fi
    if [ "$(psql_admin -c "SELECT count(*) FROM pg_database WHERE datname = 'test'")" = 0 ]; then
        log "creating database test"
        psql_admin -c 'CREATE DATABASE test'
    fi
    # Databases of earlier runs that did not get to clean up after themselves.
    psql_admin -c "SELECT datname FROM pg_database WHERE datname LIKE 'flashcart\_test\_%'" |
        while read -r leftover; do
            [ -n "$leftover" ] && psql_admin -c "DROP DATABASE IF EXISTS \"$leftover\" WITH (FORCE)" >/dev/null
        done
    log "PostgreSQL ready on 127.0.0.1:5432"
}

ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        apt_install redis-server
    fi
    if ! port_open 6379; then
        log "starting Redis"
        $SUDO mkdir -p /var/lib/redis /var/log/redis
        $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
            --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
        wait_for "Redis" 30 port_open 6379
    fi
    log "Redis ready on 127.0.0.1:6379"
}

ensure_rabbitmq() {
    if ! port_open 5672; then
        if ! command -v rabbitmq-server >/dev/null 2>&1; then
            apt_install rabbitmq-server
        fi
        log "starting RabbitMQ"
        $SUDO env RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 rabbitmq-server -detached
        wait_for "RabbitMQ" 90 port_open 5672
    fi
    log "RabbitMQ ready on 127.0.0.1:5672"
}

ensure_postgres
ensure_redis
ensure_rabbitmq
