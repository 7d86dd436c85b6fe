#!/usr/bin/env bash
# Loads /docs in a real headless Chromium (Debian's `chromium`), checks that the endpoint list
# rendered from /openapi.json, and saves a screenshot to docs/docs-page.png.
# Offline by construction: Chromium runs with background networking off and the page's CSP
# allows only same-origin requests. Usage: bash scripts/docs-screenshot.sh [output.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/docs-page.png}

if ! command -v chromium >/dev/null 2>&1; then
  echo "chromium is not installed (apt-get install -y chromium)" >&2
  exit 1
fi
cargo build --quiet --bin supagate
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
profile=$(mktemp -d)
log=$(mktemp)
# No Supabase is needed for /docs; the upstream is an address nothing listens on.
APP_ENV=development HOST=127.0.0.1 PORT=$port SUPABASE_URL=http://127.0.0.1:9 RUST_LOG=warn \
  ./target/debug/supagate serve >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$profile" "$log"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.1
done

chrome=(chromium --headless --no-sandbox --disable-gpu --disable-background-networking
  --disable-component-update --disable-sync --no-first-run --disable-extensions
  --hide-scrollbars --user-data-dir="$profile" --virtual-time-budget=10000)
url="http://127.0.0.1:$port/docs"

dom=$("${chrome[@]}" --dump-dom "$url" 2>/dev/null)
grep -q 'data-rendered="true"' <<<"$dom" || { echo "FAIL: /docs did not render" >&2; exit 1; }
missing=0
for path in /health /ready /api/items '/api/items/{id}' /api/categories /api/users \
  '/api/users/{id}/stats' /api/auth/register /api/auth/login /api/auth/refresh \
  /api/auth/logout /api/auth/user /api/auth/recover /api/billing/subscription /api/webhooks/stripe; do
  if ! grep -qF "<span class=\"path\">$path</span>" <<<"$dom"; then
    echo "missing endpoint on the page: $path" >&2
    missing=1
  fi
done
[ "$missing" = 0 ] || exit 1
echo "ok: /docs rendered $(grep -o 'class="op"' <<<"$dom" | wc -l) operations"

"${chrome[@]}" --window-size=1400,1800 --screenshot="$PWD/$out" "$url" 2>/dev/null
# A second one filtered to one operation, opened by the hash: security, body, responses.
detail="${out%.png}-operation.png"
"${chrome[@]}" --window-size=1400,2400 --screenshot="$PWD/$detail" "$url?q=post%20/api/items#post-api-items" 2>/dev/null
echo "screenshots: $out $detail"
