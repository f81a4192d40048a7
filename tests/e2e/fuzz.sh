#!/usr/bin/env bash
# make fuzz: schemathesis (every check) against a live embedded server seeded with the demo.
# The server runs on a throw-away data dir and 127.0.0.1 only, and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
PORT=${FUZZ_PORT:-8765}
MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-50}
DATA=$(mktemp -d)
REPORTS=${FUZZ_REPORTS:-.fuzz}
mkdir -p "$REPORTS"
export BULWARK_DATA_DIR="$DATA"
export BULWARK_OBSERVABILITY__LOG_LEVEL=WARNING

# Every region's model tiers point at a zero-latency model peer: the fuzzer exercises the
# routes, not SmolLM2's speed (the local model serves one request at a time).
PEER_PORT=${FUZZ_PEER_PORT:-8766}
"$VENV/bin/python" -m tests.peers.llm_peer --port "$PEER_PORT" \
  --text "The sources do not say." >/dev/null 2>&1 &
PEER=$!
BULWARK_REGIONS=$("$VENV/bin/python" - "$DATA" "http://127.0.0.1:$PEER_PORT" <<'PY'
import json, sys
data, peer = sys.argv[1], sys.argv[2]
regions = {}
for name in ("eu", "us"):
    root = f"{data}/regions/{name}"
    regions[name] = {
        "database_url": f"sqlite+aiosqlite:///{root}/bulwark.db",
        "vector_store": f"{root}/vectors",
        "object_store": f"{root}/objects",
        "kms": {"provider": "local", "key_file": f"{root}/kms.key"},
        "models": [
            {"name": f"{name}-{tier}", "tier": tier, "base_url": peer, "model": tier}
            for tier in ("small", "mid", "frontier")
        ],
    }
print(json.dumps(regions))
PY
)
export BULWARK_REGIONS
# The fuzzer sends far more model requests per minute than a person: lift the request-rate limits
# (quotas still apply; their 429 is an expected business refusal, see schemathesis.toml).
export BULWARK_GATEWAY__IDENTITY_REQUESTS_PER_MINUTE=1000000
export BULWARK_GATEWAY__TENANT_REQUESTS_PER_MINUTE=1000000

"$VENV/bin/bulwark" migrate >/dev/null
"$VENV/bin/bulwark" demo >/dev/null
"$VENV/bin/bulwark" serve --port "$PORT" >"$REPORTS/server.log" 2>&1 &
SERVER=$!
cleanup() {
  local rc=$?
  kill "$SERVER" "$PEER" 2>/dev/null || true
  wait "$SERVER" "$PEER" 2>/dev/null || true
  rm -rf "$DATA"
  exit "$rc"
}
trap cleanup EXIT
# Up to two minutes for the server to come up (a busy 2-core machine is slow to load models).
up=0
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && { up=1; break; }
  sleep 0.2
done
if [ "$up" != 1 ]; then
  echo "the server did not come up; its log:" >&2
  tail -50 "$REPORTS/server.log" >&2
  exit 1
fi

creds="$DATA/demo-credentials.json"
OPERATOR=$("$VENV/bin/python" -c "import json,sys;print(json.load(open(sys.argv[1]))['operator_token'])" "$creds")
ADMIN=$("$VENV/bin/python" -c "import json,sys;print(json.load(open(sys.argv[1]))['tenants']['acme']['users'][0]['api_key'])" "$creds")
OFFICER=$("$VENV/bin/python" -c "import json,sys;print(next(u['api_key'] for u in json.load(open(sys.argv[1]))['tenants']['acme']['users'] if 'compliance_officer' in u['roles']))" "$creds")
SCHEMA="http://127.0.0.1:$PORT/schema/openapi.json"
common=(--checks all --max-examples "$MAX_EXAMPLES" --seed 20261129 --workers 1
        --suppress-health-check all)
ST=("$VENV/bin/schemathesis" --no-color --config-file tests/e2e/schemathesis.toml)

status=0
# The browser sign-in routes first, before the run below configures (random, unreachable) IdPs
# for the tenant: they would then rightly answer 503 idp_unavailable.
echo "== sign-in routes, no credentials"
"${ST[@]}" run "$SCHEMA" "${common[@]}" \
  --include-path-regex '^/auth/[^/]+/' --report junit --report-junit-path "$REPORTS/sign-in.xml" \
  || status=$?
echo "== tenant API as the acme tenant admin"
"${ST[@]}" run "$SCHEMA" "${common[@]}" -H "Authorization: Bearer $ADMIN" \
  --exclude-path-regex '^/v1/tenants|^/auth/[^/]+/|^/v1/documents/upload$' --report junit \
  --report-junit-path "$REPORTS/tenant.xml" || status=$?
# Multipart form fields carry no JSON types: "-21021" is a valid title or external id whether
# the fuzzer meant a string or an integer, so type-mutation negatives cannot be rejected there.
echo "== file upload (multipart) as the acme tenant admin"
"${ST[@]}" run "$SCHEMA" "${common[@]}" -H "Authorization: Bearer $ADMIN" \
  --include-path-regex '^/v1/documents/upload$' --exclude-checks negative_data_rejection \
  --report junit --report-junit-path "$REPORTS/upload.xml" || status=$?
echo "== subject-access requests as the acme compliance officer"
"${ST[@]}" run "$SCHEMA" "${common[@]}" -H "Authorization: Bearer $OFFICER" \
  --include-path-regex '^/v1/sar' --report junit --report-junit-path "$REPORTS/sar.xml" \
  || status=$?
echo "== operator API as the platform operator"
"${ST[@]}" run "$SCHEMA" "${common[@]}" -H "Authorization: Bearer $OPERATOR" \
  --include-path-regex '^/v1/tenants' --report junit --report-junit-path "$REPORTS/operator.xml" \
  || status=$?
if grep -q '"status": 500\|Traceback' "$REPORTS/server.log"; then
  echo "server log shows a 500 or a traceback"; status=1
fi
exit $status
