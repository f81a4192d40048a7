"""Schemathesis hooks for ``make fuzz`` (tests/e2e/fuzz.sh): which refusals a schema-valid
request may get, operation by operation, and why.

The OpenAPI document states every constraint the server puts on a request's shape (limits,
patterns, enums, formats, required and nullable fields, the rules between fields). A request it
allows may still be refused, but only by a rule about the state of the world that no schema can
state: an id that does not exist in this tenant, a name already taken, a quota the run itself
spent, a certificate that does not parse, a host the egress guard refuses. ``REFUSALS`` lists
those rules per operation, by status and problem ``code`` (and, where one code covers rules the
document does state, by the problem's ``detail``); the ``business_refusals_only`` check fails
every other 4xx answer to a schema-valid request. ``run_config`` writes the same statuses into
the run's configuration, so that schemathesis' own ``positive_data_acceptance`` accepts them on
those operations only.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import schemathesis


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    why: str
    # Only a refusal whose detail matches: the code also covers rules the document states.
    detail: str | None = None


# Any operation, any problem code: these statuses are business answers by definition.
EVERYWHERE = {
    404: "an id (or a tier's own model, a subject, a session) that does not exist in this tenant",
    409: "a conflict with what exists: a slug, email or group name the run created earlier, or "
    "a switch the deployment keeps off (raw-content debugging)",
    429: "a quota or rate limit the run itself set and then spent (with Retry-After)",
}

_EGRESS = Refusal(
    422,
    "egress_refused",
    "the egress guard refuses the destination once resolved (a private, loopback or "
    "unresolvable address, plain http); DNS answers are not part of any schema",
)
_UNKNOWN_MODEL = Refusal(
    422,
    "unknown_model",
    "a model this deployment configures in another region than the tenant's, or a tenant's own "
    "model of a tier it has not set (byo-<tier>): the document lists every configured name",
)
_TIER_FORBIDDEN = Refusal(
    403, "model_tier_forbidden", "a tier the tenant's model policy (set by the run) forbids"
)
_BLOCKED = Refusal(
    422,
    "personal_data_blocked",
    "personal data of a type the tenant's DLP policy (set by the run) blocks",
)
_INJECTION = Refusal(
    422,
    "prompt_injection_refused",
    "text the injection guard reads as an instruction to the model, under a policy that refuses",
)
_TOO_LONG = Refusal(
    422,
    "input_too_long",
    "more tokens than the context window of every model of the tenant's tiers (configuration)",
)
_MODEL_CALLS = (_UNKNOWN_MODEL, _TIER_FORBIDDEN, _BLOCKED, _INJECTION, _TOO_LONG)
_GONE = Refusal(410, "tenant_gone", "a tenant the operator deleted earlier in the run")

REFUSALS: dict[str, tuple[Refusal, ...]] = {
    "POST /v1/chat": _MODEL_CALLS,
    "POST /v1/chat/completions": _MODEL_CALLS,
    "POST /v1/gateway/chat/completions": _MODEL_CALLS,
    "POST /v1/search": (_BLOCKED, _INJECTION),
    "PUT /v1/admin/kms": (
        Refusal(
            422,
            "kms_key_wrong_region",
            "a key region other than the tenant's own: the region a tenant is pinned to is its "
            "state, not the request's shape",
        ),
        Refusal(
            422,
            "kms_provider_unsupported",
            "a KMS provider the tenant's region does not configure",
        ),
        Refusal(422, "kms_key_rejected", "a key the KMS does not let Bulwark use"),
    ),
    "PUT /v1/admin/byo-models/{tier}": (_EGRESS,),
    "PUT /v1/admin/sso/oidc": (_EGRESS,),
    "PUT /v1/admin/sso/saml": (
        Refusal(
            422,
            "saml_certificate_invalid",
            "text that is not a PEM X.509 certificate with an RSA (2048+) or EC key",
        ),
    ),
    "POST /v1/admin/sso/saml/metadata": (
        _EGRESS,
        Refusal(422, "saml_metadata_invalid", "text that is not an IdP's SAML metadata"),
        Refusal(422, "saml_metadata_malformed", "text that is not XML"),
        Refusal(422, "saml_metadata_no_idp", "metadata that describes no IdP"),
    ),
    "PUT /v1/admin/dlp": (
        Refusal(
            422,
            "invalid_dlp_policy",
            "a rule for an entity type that is neither built in nor defined in the same body, a "
            "type listed twice, a custom recognizer with no rule, or a regex that does not "
            "compile or could backtrack: relations between list items and regex grammar",
            detail=r"Unknown entity type|listed twice|must be unique|need an entry in entities"
            r"|pattern|Repetition counts",
        ),
    ),
    "POST /v1/documents/upload": (
        Refusal(415, "unsupported_media_type", "a file that is not txt, md, html, pdf or docx"),
        Refusal(422, "unparseable_document", "a file whose bytes do not parse as its type"),
    ),
    "POST /auth/logout": (
        Refusal(
            422,
            "not_a_session",
            "the fuzzer holds API keys, and logout ends a Bulwark session (the operation's "
            "security scheme)",
        ),
    ),
    **{
        f"{method} /v1/tenants/{{tenant_id}}{suffix}": (_GONE,)
        for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/admins"))
    },
}


def _problem(body: bytes) -> dict[str, Any]:
    try:
        problem = json.loads(body)
    except ValueError:
        return {}
    return problem if isinstance(problem, dict) else {}


@schemathesis.check
def business_refusals_only(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 4xx answer to a schema-valid request must be one of its operation's ``REFUSALS``."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    status = response.status_code
    if not 400 <= status < 500 or status in EVERYWHERE:
        return None
    problem = _problem(response.content)
    code, detail = problem.get("code"), str(problem.get("detail", ""))
    for refusal in REFUSALS.get(case.operation.label, ()):
        if (refusal.status, refusal.code) == (status, code) and (
            refusal.detail is None or re.search(refusal.detail, detail)
        ):
            return None
    raise AssertionError(
        f"A schema-valid request was refused with {status} {code!r} ({detail}), which is no "
        f"business rule of {case.operation.label}: the OpenAPI document and the server disagree."
    )


def run_config(base: Path, wfc: Path, user: str | None, peers: list[str]) -> str:
    """The configuration of one fuzz run: ``base`` (schemathesis.toml), each operation's
    business refusals added to the statuses ``positive_data_acceptance`` accepts, and the
    identities of the Web Fuzzing Commons document ``wfc``: ``user`` (None: nobody) sends every
    request, and each of ``peers`` replays the others' reads of their own objects
    (``object_level_authorization``)."""
    lines = [base.read_text()]
    accepted = ["2xx", *map(str, EVERYWHERE)]
    for label, refusals in sorted(REFUSALS.items()):
        statuses = sorted({str(r.status) for r in refusals} - set(accepted))
        lines += [
            "",
            "[[operations]]",
            f"include-name = {json.dumps(label)}",
            "checks.positive_data_acceptance.expected-statuses = "
            + json.dumps([*accepted, *statuses]),
        ]
    if user is not None:
        lines += ["", "[auth.wfc]", f"path = {json.dumps(str(wfc))}", f"user = {json.dumps(user)}"]
        if peers:
            lines.append(f"peers = {json.dumps(peers)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # python tests/e2e/fuzz_hooks.py BASE WFC [USER [PEER,PEER]]
    base, wfc, *who = sys.argv[1:]
    user = who[0] if who else None
    peers = who[1].split(",") if len(who) > 1 else []
    sys.stdout.write(run_config(Path(base), Path(wfc), user, peers))
