#!/usr/bin/env bash
# Load: list reads through supagate against a stand-in with a fixed delay.
#   scripts/load.sh          1 000 connections for 60 s; zero errors required
#   scripts/load.sh soak     10 min, 100 connections, RSS sampled every 10 s (flat memory)
# Knobs: LOAD_SECONDS, LOAD_CONNS, LOAD_DELAY_MS (upstream delay), SAMPLE_SECS. 127.0.0.1 only.
source "$(dirname "$0")/lib.sh"
MODE="${1:-load}"
if [ "$MODE" = soak ]; then
  SECONDS_RUN="${LOAD_SECONDS:-600}"; CONNS="${LOAD_CONNS:-100}"; DELAY="${LOAD_DELAY_MS:-50}"
  SAMPLE="${SAMPLE_SECS:-10}"
else
  SECONDS_RUN="${LOAD_SECONDS:-60}"; CONNS="${LOAD_CONNS:-1000}"; DELAY="${LOAD_DELAY_MS:-20}"
  SAMPLE="${SAMPLE_SECS:-1}"
fi
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)"; exit 1; }
ulimit -n "$(ulimit -Hn)" || true
build
UP_PORT=$(free_port); GW_PORT=$(free_port)
start_upstream "$UP_PORT" --fault ok --delay-ms "$DELAY" --rows 20
start_supagate "$GW_PORT" "http://127.0.0.1:$UP_PORT"
URL="http://127.0.0.1:$GW_PORT/api/items?limit=20"
curl -fsS "$URL" -o "$RUN_DIR/first.json"; head -c 80 "$RUN_DIR/first.json"; echo " ..."
echo "== $MODE: $CONNS connections, ${SECONDS_RUN} s, upstream delay ${DELAY} ms, RSS every ${SAMPLE} s"
echo "start: $(stats "$SUPAGATE_PID")"
SAMPLES="$RUN_DIR/rss.csv"; echo "t_s,rss_kb,fds" >"$SAMPLES"
(
  t=0
  while kill -0 "$SUPAGATE_PID" 2>/dev/null; do
    echo "$t,$(awk '/^VmRSS/{print $2}' /proc/$SUPAGATE_PID/status),$(ls /proc/$SUPAGATE_PID/fd | wc -l)" >>"$SAMPLES"
    sleep "$SAMPLE"; t=$((t + SAMPLE))
  done
) &
PIDS+=($!)
wrk -t2 -c"$CONNS" -d"${SECONDS_RUN}s" --timeout 10s --latency "$URL" | tee "$RUN_DIR/wrk.txt"
echo "end:   $(stats "$SUPAGATE_PID")"
rps=$(awk '/Requests\/sec/{print $2}' "$RUN_DIR/wrk.txt")
p99=$(awk '$1=="99%"{print $2}' "$RUN_DIR/wrk.txt")
non2xx=$(awk '/Non-2xx/{print $NF}' "$RUN_DIR/wrk.txt"); non2xx=${non2xx:-0}
sockerr=$(awk -F'[ ,]+' '/Socket errors/{print $5+$7+$9+$11}' "$RUN_DIR/wrk.txt"); sockerr=${sockerr:-0}
peak=$(awk '/^VmHWM/{print $2}' /proc/$SUPAGATE_PID/status)
if [ "$MODE" = soak ]; then
  echo "== RSS samples (t_s,rss_kb,fds):"; cat "$SAMPLES"
  awk -F, 'NR>1 && $2!="" {n++; v[n]=$2} END {
    q=int(n/4); if (q<1) q=1; a=0; b=0;
    for(i=1;i<=q;i++){a+=v[i]; b+=v[n-q+i]}
    printf "first-quarter mean %.0f kB, last-quarter mean %.0f kB, growth %.1f%%\n", a/q, b/q, (b-a)*100/a }' "$SAMPLES"
fi
echo "RESULT mode=$MODE conns=$CONNS seconds=$SECONDS_RUN rps=$rps p99=$p99 non2xx=$non2xx socket_errors=$sockerr peak_rss_kb=$peak"
if [ "$non2xx" != 0 ] || [ "$sockerr" != 0 ]; then echo "FAIL: errors under load"; exit 1; fi
