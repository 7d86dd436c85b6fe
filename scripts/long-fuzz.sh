#!/usr/bin/env bash
# Long hostile-input runs of the parser properties in tests/parsers.rs: cookie
# reader, Stripe signature header/verifier, JWT header+claims, JWKS parser, query strings —
# no panic, heap held per call bounded by 256 KiB + 16x the input.
#   scripts/long-fuzz.sh            200 000 cases per property (release build)
#   scripts/long-fuzz.sh 1000000    any other count
# Uses `cargo test` (not nextest) so the 240 s per-test limit does not apply.
set -euo pipefail
cd "$(dirname "$0")/.."
CASES="${1:-200000}"
started=$(date +%s)
SUPAGATE_LONG_FUZZ="$CASES" cargo test --release --locked --test parsers -- --test-threads=2
echo "== $CASES cases per property in $(( $(date +%s) - started )) s"
