#!/usr/bin/env bash
# Contract test: schemathesis generates requests from /openapi.json and checks every answer
# against the document (status codes, headers, content types, body schemas) and for 5xx.
# supagate runs against scripts/upstream_stub.py, a stdlib stand-in for PostgREST and Auth.
# Installs schemathesis into .venv-schemathesis on first use (PyPI).
# Usage: bash scripts/schemathesis.sh [extra schemathesis args, e.g. --max-examples 50]
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${SCHEMATHESIS_VENV:-.venv-schemathesis}
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'schemathesis>=4,<5'
fi
cargo build --quiet --bin supagate

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up_port=$(free_port)
port=$(free_port)
secret=$(python3 -c 'import json; print(json.load(open("tests/fixtures/jwt.json"))["hs256_secret"])')
user_id=$(python3 -c 'import json; print(json.load(open("tests/fixtures/jwt.json"))["user_id"])')
issuer=$(python3 -c 'import json; print(json.load(open("tests/fixtures/jwt.json"))["issuer"])')
# An admin HS256 token for the fixture user (valid for an hour), so admin-only and
# owner-only operations are exercised past the authorization check.
token=$(SECRET="$secret" SUB="$user_id" ISS="$issuer" python3 - <<'PY'
import base64, hashlib, hmac, json, os, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
claims = {"sub": os.environ["SUB"], "aud": "authenticated", "role": "authenticated",
          "iss": os.environ["ISS"], "iat": now, "exp": now + 3600, "email": "ada@example.com",
          "app_metadata": {"provider": "email", "role": "admin"}, "user_metadata": {},
          "session_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps(claims).encode())
sig = hmac.new(os.environ["SECRET"].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
print(f"{head}.{body}.{b64(sig)}")
PY
)

logdir=$(mktemp -d)
python3 scripts/upstream_stub.py "$up_port" "$user_id" >"$logdir/stub.log" 2>&1 &
stub=$!
APP_ENV=test HOST=127.0.0.1 PORT=$port SUPABASE_URL=http://127.0.0.1:$up_port \
  SUPABASE_ANON_KEY=stub-anon SUPABASE_SERVICE_ROLE_KEY=stub-service \
  SUPABASE_JWT_SECRET="$secret" SUPAGATE_AUTH__ISSUER="$issuer" STRIPE_WEBHOOK_SECRET=whsec_stub \
  SUPAGATE_RATE_LIMIT__ENABLED=false SUPAGATE_AUTH__API_KEYS__ENABLED=true RUST_LOG=warn \
  ./target/debug/supagate serve >"$logdir/supagate.log" 2>&1 &
server=$!
# The logs are kept (and named) only when the run fails.
trap 'status=$?; kill $server $stub 2>/dev/null || true
if [ "$status" = 0 ]; then rm -rf "$logdir"; else echo "logs: $logdir"; fi' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  sleep 0.1
done

"$venv/bin/schemathesis" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $token" \
  --max-examples "${MAX_EXAMPLES:-30}" \
  --seed "${SEED:-7}" \
  --generation-deterministic \
  --suppress-health-check all \
  --request-timeout 10 \
  --no-color \
  "$@"
