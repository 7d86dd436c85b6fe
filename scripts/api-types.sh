#!/usr/bin/env bash
# Regenerates what is derived from the OpenAPI document: the reviewed snapshot
# (tests/api/snapshots/api__openapi__openapi.snap) and the TypeScript types
# (examples/supagate-api.d.ts, openapi-typescript 7.13.0 from the npm registry). The types
# end with the SHA-256 of the document they came from, which a test compares with the
# current document. Review `git diff` afterwards: a snapshot change is an API change.
set -euo pipefail
cd "$(dirname "$0")/.."

doc=$(mktemp)
trap 'rm -f "$doc"' EXIT
cargo run -q -- openapi > "$doc"
INSTA_UPDATE=always INSTA_FORCE_PASS=1 cargo nextest run --test api \
  -E "test(=openapi::the_document_matches_the_reviewed_snapshot)" >/dev/null 2>&1
npx --yes openapi-typescript@7.13.0 "$doc" -o examples/supagate-api.d.ts >/dev/null
sum=$(sha256sum "$doc" | cut -d' ' -f1)
printf '\n// Generated from the OpenAPI document with SHA-256 %s (scripts/api-types.sh).\n' "$sum" \
  >> examples/supagate-api.d.ts
echo "regenerated the OpenAPI snapshot and examples/supagate-api.d.ts ($sum)"
