#!/usr/bin/env bash
# Leak check: 10 000 faulty requests through supagate, then its open sockets,
# threads and RSS compared with before. Phase A: an upstream rotating through every fault
# (reset before/mid answer, hang, trickle, 5xx, HTML, oversized declared and streamed);
# phase B: the upstream gone (connection refused). 127.0.0.1 only; ~1-2 min.
#   scripts/fault-soak.sh            (REQUESTS=10000 CONCURRENCY=50 by default)
source "$(dirname "$0")/lib.sh"
REQUESTS="${REQUESTS:-10000}"
CONCURRENCY="${CONCURRENCY:-50}"
build
UP_PORT=$(free_port); GW_PORT=$(free_port)
start_upstream "$UP_PORT" --fault cycle
start_supagate "$GW_PORT" "http://127.0.0.1:$UP_PORT" \
  SUPAGATE_UPSTREAM__REQUEST_TIMEOUT_MS=300 SUPAGATE_UPSTREAM__CONNECT_TIMEOUT_MS=200 \
  SUPAGATE_UPSTREAM__MAX_BODY_BYTES=65536
GW="http://127.0.0.1:$GW_PORT"
URLS="$GW/api/items?limit=20,$GW/api/items/33333333-3333-4333-8333-333333333333"

echo "== warm-up (500 faulty requests)"
"$FAULTLINE" hammer --url "$URLS" --requests 500 --concurrency "$CONCURRENCY" >/dev/null
sleep 2
before=$(stats "$SUPAGATE_PID"); echo "before:        $before"

echo "== phase A: $REQUESTS requests, upstream rotating through 8 faults"
"$FAULTLINE" hammer --url "$URLS" --requests "$REQUESTS" --concurrency "$CONCURRENCY"
echo "right after:   $(stats "$SUPAGATE_PID")"
sleep 3
after_a=$(stats "$SUPAGATE_PID"); echo "after 3 s:     $after_a"

echo "== phase B: $REQUESTS requests, upstream killed (connection refused)"
kill "$UPSTREAM_PID"; wait "$UPSTREAM_PID" 2>/dev/null || true
"$FAULTLINE" hammer --url "$URLS" --requests "$REQUESTS" --concurrency "$CONCURRENCY"
sleep 3
after_b=$(stats "$SUPAGATE_PID"); echo "after 3 s:     $after_b"
curl -fsS "$GW/health" >/dev/null && echo "health: 200"

fd0=$(field fds "$before"); fd1=$(field fds "$after_b")
t0=$(field threads "$before"); t1=$(field threads "$after_b")
r0=$(field rss_kb "$before"); r1=$(field rss_kb "$after_b")
echo "== fds $fd0 -> $fd1, threads $t0 -> $t1, rss ${r0} kB -> ${r1} kB"
if (( fd1 > fd0 + 10 )) || (( t1 > t0 )); then
  echo "LEAK: sockets or threads grew"; exit 1
fi
echo "OK: no socket or thread growth after $((2 * REQUESTS)) faulty requests"
