#!/usr/bin/env bash
# Make sure the services and tools the tests use are present and running on this machine:
# Redis (127.0.0.1:6379), PostgreSQL (127.0.0.1:5432, database "test"), Chromium and docker-compose.
set -euo pipefail

need_packages=()
command -v chromium >/dev/null || need_packages+=(chromium)
command -v docker-compose >/dev/null || need_packages+=(docker-compose)
command -v redis-server >/dev/null || need_packages+=(redis-server)
if ((${#need_packages[@]})); then
    echo "Installing ${need_packages[*]}"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}"
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}"
    fi
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "Starting Redis on 127.0.0.1:6379"
    mkdir -p /tmp/pandulce-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir /tmp/pandulce-redis --logfile /tmp/pandulce-redis/redis.log
    for _ in $(seq 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    echo "Starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    for _ in $(seq 100); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
fi
if ! psql -h 127.0.0.1 -U postgres -d test -c "select 1" >/dev/null 2>&1; then
    echo "Creating the PostgreSQL database test"
    createdb -h 127.0.0.1 -U postgres test
fi

redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null
pg_isready -h 127.0.0.1 -p 5432 -q
echo "Test services are up: Redis, PostgreSQL, Chromium $(chromium --version 2>/dev/null | awk '{print $2}'), docker-compose."
