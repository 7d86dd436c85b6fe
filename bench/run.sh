#!/usr/bin/env bash
# The one command for supagate's load benchmark:
#
#   bench/run.sh                  # full run, ~22-25 min on 2 cores; writes bench/RESULTS.md
#   BENCH_SECONDS=3 bench/run.sh  # smoke run, ~4-7 min
#
# Installs nginx-light and wrk from Debian if missing (needs root), builds supagate
# --release, then hands over to bench/driver.py in a private run directory. Everything it
# starts listens on 127.0.0.1 only, on free ports, and is stopped on exit. Knobs (environment):
#   BENCH_SECONDS (10)  BENCH_ROUNDS (3)  BENCH_CONNS (32,128)  BENCH_WRK_THREADS (2)
#   BENCH_WARMUP_SECONDS (1)  BENCH_HALF_ROUNDS (=ROUNDS)  BENCH_HALF_DELAY_MS (10)
#   BENCH_C1000 (1000, 0 = skip)  BENCH_SCENARIOS (comma list)  BENCH_NGINX_WORKERS (auto)
#   BENCH_SUPAGATE_WORKERS (0 = per core)  BENCH_LABEL (smoke|full)  BENCH_OUT (bench/RESULTS.md)
#   BENCH_PIN (1 on 2+ CPUs: service on CPU 0, wrk + stand-in on CPU 1)  BENCH_RUST_LOG (unset = info)
#   BENCH_FRESH_TOKENS (60000)  BENCH_SKIP_BUILD=1  BENCH_SUPAGATE_BIN (target/release/supagate)  BENCH_KEEP=1 (keep logs)
#   BENCH_TIMEOUT (seconds; default = the driver's estimate x 2 + 300)
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if ! have nginx || ! have wrk || ! have redis-server; then
    if [ "$(id -u)" != 0 ]; then
        echo "bench: nginx, wrk and redis-server are needed: apt-get install nginx-light wrk redis-server (as root)" >&2
        exit 2
    fi
    echo "bench: installing nginx-light and wrk from Debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq
    timeout 600 apt-get install -y -qq --no-install-recommends nginx-light wrk redis-server \
        || timeout 600 apt-get install -y -qq --no-install-recommends nginx wrk redis-server
fi
# The cache-miss scenario signs its ES256 tokens with Python's `cryptography` (PyPI).
if ! python3 -c 'import cryptography' 2>/dev/null; then
    timeout 600 python3 -m pip install -q 'cryptography>=42'
fi
export PATH="$PATH:/usr/sbin"
# A Debian install may start the system nginx; it does not matter (ports 80/443, not ours).

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    echo "bench: cargo build --release" >&2
    timeout 3600 cargo build --release --locked --bin supagate
fi

# 1 000 connections need more than the usual 1 024 open files (wrk and supagate each).
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard" 2>/dev/null || true

RUN=$(mktemp -d /tmp/supagate-bench.XXXXXX)
export BENCH_RUN_DIR="$RUN"
export BENCH_COMMAND="${BENCH_COMMAND:-$(env | grep -E '^BENCH_(SECONDS|ROUNDS|CONNS|WRK_THREADS|SCENARIOS|LABEL|C1000|HALF_ROUNDS)=' | sort | tr '\n' ' ')bench/run.sh}"

cleanup() {
    local rc=$?
    # The driver stops what it started; this catches anything left if it was killed hard.
    if [ -f "$RUN/pids" ]; then
        while read -r pid; do
            [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null || true
        done <"$RUN/pids"
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
        echo "bench: logs kept in $RUN" >&2
    else
        rm -rf "$RUN"
    fi
    exit "$rc"
}
trap cleanup EXIT

estimate=$(python3 bench/driver.py --estimate)
limit=${BENCH_TIMEOUT:-$((estimate * 2 + 300))}
echo "bench: planned ~${estimate}s, hard limit ${limit}s, run directory $RUN" >&2
# In the background so that a signal to this script is handled at once (bash runs traps only
# between foreground commands); the driver stops its servers on SIGTERM.
timeout --foreground --kill-after=30 "$limit" python3 bench/driver.py &
driver=$!
trap 'kill -TERM "$driver" 2>/dev/null; wait "$driver"; exit 130' INT TERM HUP
wait "$driver"
