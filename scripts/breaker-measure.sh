#!/usr/bin/env bash
# Does a circuit breaker earn its place? Measures supagate with a dead upstream:
#  1. refused (nothing listening): list reads, all 503 after the one retry — how fast?
#  2. /health on the same instance: what an open breaker could at best answer (no upstream);
#  3. a hanging upstream (request timeout 2 s): throughput, p99, sockets and RSS, and whether
#     /health stays fast while 200 requests are stuck on the upstream.
# ~40 s; 127.0.0.1 only.  scripts/breaker-measure.sh
source "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null || { echo "wrk is needed"; exit 1; }
ulimit -n "$(ulimit -Hn)" || true
build
D="${MEASURE_SECONDS:-10}"
summ() { # wrk output -> one line
  awk '/Requests\/sec/{r=$2} $1=="50%"{p50=$2} $1=="99%"{p99=$2} /requests in/{n=$1}
       /Non-2xx/{e=$NF} END{printf "requests=%s rps=%s p50=%s p99=%s non2xx=%s\n", n, r, p50, p99, e+0}'
}
DEAD=$(free_port); GW1=$(free_port)
start_supagate "$GW1" "http://127.0.0.1:$DEAD"
echo "== refused upstream, 64 connections, ${D} s, GET /api/items (expect all 503)"
wrk -t2 -c64 -d"${D}s" --latency "http://127.0.0.1:$GW1/api/items" | summ
curl -s "http://127.0.0.1:$GW1/api/items" -o /dev/null -w "status=%{http_code} time=%{time_total}s\n"
echo "   $(stats "$SUPAGATE_PID")"
echo "== same instance, GET /health (no upstream: the best an open breaker could do)"
wrk -t2 -c64 -d"${D}s" --latency "http://127.0.0.1:$GW1/health" | summ

UP=$(free_port); GW2=$(free_port)
start_upstream "$UP" --fault hang
start_supagate "$GW2" "http://127.0.0.1:$UP" SUPAGATE_UPSTREAM__REQUEST_TIMEOUT_MS=2000
echo "== hanging upstream (timeout 2 s), 200 connections, ${D} s, GET /api/items (expect all 504)"
wrk -t1 -c200 -d"${D}s" --timeout 5s --latency "http://127.0.0.1:$GW2/api/items" | summ &
WRK=$!
sleep $((D / 2))
echo "   mid-run: $(stats "$SUPAGATE_PID")"
for _ in 1 2 3; do
  curl -s "http://127.0.0.1:$GW2/health" -o /dev/null -w "   /health during the hang: %{http_code} in %{time_total}s\n"
done
wait $WRK
sleep 3
echo "   after:   $(stats "$SUPAGATE_PID")"
