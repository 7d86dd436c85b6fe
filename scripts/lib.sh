# Shared helpers for the reliability scripts (sourced). Everything listens on 127.0.0.1;
# every process started here is recorded and killed by pid on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PIDS=()
RUN_DIR="$(mktemp -d /tmp/supagate-rely.XXXXXX)"
cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  [ "${RELY_KEEP:-0}" = 1 ] || rm -rf "$RUN_DIR"
}
trap cleanup EXIT INT TERM

BIN="${SUPAGATE_BIN:-$ROOT/target/release/supagate}"
FAULTLINE="${FAULTLINE_BIN:-$ROOT/target/release/examples/faultline}"

build() {
  if [ "${RELY_NO_BUILD:-0}" != 1 ]; then
    cargo build --release --locked --bin supagate --example faultline >&2
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_upstream PORT ARGS... : the faultline stand-in
start_upstream() {
  local port=$1; shift
  "$FAULTLINE" upstream --port "$port" "$@" >"$RUN_DIR/upstream.$port.log" 2>&1 &
  PIDS+=($!)
  UPSTREAM_PID=$!
  for _ in $(seq 100); do
    grep -q listening "$RUN_DIR/upstream.$port.log" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "upstream did not start" >&2; exit 1
}

# start_supagate PORT UPSTREAM_URL [VAR=value ...] : the release binary, APP_ENV=test
start_supagate() {
  local port=$1 upstream=$2; shift 2
  env -i PATH="$PATH" APP_ENV=test SUPAGATE_CONFIG_DIR="$ROOT/config" \
    SUPABASE_URL="$upstream" SUPABASE_ANON_KEY=rely-anon-key \
    SUPABASE_SERVICE_ROLE_KEY=rely-service-key HOST=127.0.0.1 PORT="$port" \
    SUPAGATE_RATE_LIMIT__ENABLED=false RUST_LOG="${RUST_LOG:-error}" "$@" \
    "$BIN" serve >"$RUN_DIR/supagate.$port.log" 2>&1 &
  PIDS+=($!)
  SUPAGATE_PID=$!
  for _ in $(seq 200); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "supagate did not start:" >&2; cat "$RUN_DIR/supagate.$port.log" >&2; exit 1
}

# stats PID : open fds, RSS, peak RSS, threads, TCP sockets of the process
stats() {
  local pid=$1
  local fds rss hwm threads tcp
  fds=$(ls "/proc/$pid/fd" | wc -l)
  rss=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status")
  hwm=$(awk '/^VmHWM/{print $2}' "/proc/$pid/status")
  threads=$(awk '/^Threads/{print $2}' "/proc/$pid/status")
  tcp=$(ss -tanp 2>/dev/null | grep -c "pid=$pid," || true)
  echo "fds=$fds tcp=$tcp threads=$threads rss_kb=$rss peak_rss_kb=$hwm"
}

field() { # field NAME "k=v k=v" -> v
  echo "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1==k{print $2}'
}
