#!/usr/bin/env bash
# cargo-fuzz (libFuzzer) over supagate's parsers: cookie, stripe_signature, jwt, query.
# Needs a nightly toolchain and `cargo install cargo-fuzz`. Fails on the first crash, panic,
# or an input that makes a parser hold more than 512 MB (-rss_limit_mb).
#   scripts/cargo-fuzz.sh                 60 s per target, all four
#   FUZZ_SECONDS=600 scripts/cargo-fuzz.sh jwt
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${FUZZ_SECONDS:-60}"
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=(cookie stripe_signature jwt query); fi
for t in "${TARGETS[@]}"; do
  log="$(mktemp)"
  echo "== $t (${SECS} s)"
  if cargo +nightly fuzz run "$t" -- -max_total_time="$SECS" -rss_limit_mb=512 -max_len=65536 >"$log" 2>&1; then
    grep -E "^Done [0-9]+ runs|#[0-9]+\s+DONE" "$log" | tail -1
    rm -f "$log"
  else
    tail -40 "$log"; echo "FAIL: $t (log $log)"; exit 1
  fi
done
