#!/usr/bin/env bash
# make fuzz: schemathesis (every check, object-level authorization between the two demo tenants
# included) against a live embedded server seeded with the demo.
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

# Every identity the runs use, as a Web Fuzzing Commons auth document: each tenant's admin and
# compliance officer, and the platform operator.
WFC="$DATA/identities.json"
"$VENV/bin/python" - "$DATA/demo-credentials.json" "$WFC" <<'PY'
import json, sys
creds = json.load(open(sys.argv[1]))
def entry(name, key):
    return {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {key}"}]}
auth = [entry("operator", creds["operator_token"])]
for slug, tenant in creds["tenants"].items():
    users = tenant["users"]
    auth.append(entry(f"{slug}-admin", next(u["api_key"] for u in users if "tenant_admin" in u["roles"])))
    auth.append(entry(f"{slug}-officer", next(u["api_key"] for u in users if "compliance_officer" in u["roles"])))
json.dump({"auth": auth}, open(sys.argv[2], "w"))
PY
SCHEMA="http://127.0.0.1:$PORT/schema/openapi.json"
# Refusals of schema-valid requests are checked code by code (fuzz_hooks.business_refusals_only).
export SCHEMATHESIS_HOOKS=tests.e2e.fuzz_hooks
common=(--checks all --max-examples "$MAX_EXAMPLES" --seed 20261129 --workers 1
        --suppress-health-check all)
# run NAME USER PEERS ARGS...: one schemathesis run as USER (none: no credentials); each of the
# comma-separated PEERS replays the others' reads of their own objects and must be refused
# (object_level_authorization).
status=0
run() {
  local name=$1 user=$2 peers=$3
  shift 3
  "$VENV/bin/python" tests/e2e/fuzz_hooks.py tests/e2e/schemathesis.toml "$WFC" $user $peers \
    >"$DATA/$name.toml"
  "$VENV/bin/schemathesis" --no-color --config-file "$DATA/$name.toml" run "$SCHEMA" \
    "${common[@]}" --report junit --report-junit-path "$REPORTS/$name.xml" "$@" || status=$?
}

# The browser sign-in routes first, before the runs below configure (random, unreachable) IdPs
# for the tenants: they would then rightly answer 503 idp_unavailable.
echo "== sign-in routes, no credentials"
run sign-in "" "" --include-path-regex '^/auth/[^/]+/'
# Per tenant, the tenant admin's pass comes last: it may deactivate users and revoke their keys
# (the compliance officer's too), which the passes before it need.
for tenant in acme globex; do
  echo "== subject-access requests as the $tenant compliance officer, both officers as peers"
  run "sar-$tenant" "$tenant-officer" acme-officer,globex-officer --include-path-regex '^/v1/sar'
  # Multipart form fields carry no JSON types: "-21021" is a valid title or external id whether
  # the fuzzer meant a string or an integer, so type-mutation negatives cannot be rejected there.
  echo "== file upload (multipart) as the $tenant tenant admin, both admins as peers"
  run "upload-$tenant" "$tenant-admin" acme-admin,globex-admin \
    --include-path-regex '^/v1/documents/upload$' --exclude-checks negative_data_rejection
  echo "== tenant API as the $tenant tenant admin, both admins as peers"
  run "tenant-$tenant" "$tenant-admin" acme-admin,globex-admin \
    --exclude-path-regex '^/v1/tenants|^/v1/sar|^/auth/[^/]+/|^/v1/documents/upload$'
done
echo "== operator API as the platform operator"
run operator operator "" --include-path-regex '^/v1/tenants'
if grep -q '"status": 500\|Traceback\|"unhandled_error"' "$REPORTS/server.log"; then
  echo "server log shows a 500 or a traceback"; status=1
fi
exit $status
