"""Tenant-admin DLP policy: ``GET/PUT /v1/admin/dlp``."""

from __future__ import annotations

from litestar import Controller, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from dlp.models import DlpPolicyRow
from dlp.policies import DlpPolicy, EntityRule, InjectionPolicy
from dlp.ports import CustomRecognizer
from dlp.schemas import (
    CustomRecognizerSpec,
    DlpPolicyRead,
    DlpPolicyUpdate,
    EntityRuleSpec,
    InjectionSpec,
)
from dlp.services import DlpPolicyService
from kernel.api import SECURED, problem_responses
from kernel.guards import requires_role
from kernel.tenancy import Role


def policy_of(data: DlpPolicyUpdate) -> DlpPolicy:
    return DlpPolicy(
        entities=tuple(
            EntityRule(e.type, e.threshold, e.inbound, e.outbound, e.ingest) for e in data.entities
        ),
        custom=tuple(
            CustomRecognizer(c.type, tuple(c.patterns), tuple(c.terms), c.score)
            for c in data.custom
        ),
        allow_list=tuple(data.allow_list),
        tag_classification=data.tag_classification,
        injection=InjectionPolicy(
            user_message=data.injection.user_message,
            chunks=data.injection.chunks,
            allowed_hosts=tuple(h.lower() for h in data.injection.allowed_hosts),
        ),
    )


def policy_read(
    policy: DlpPolicy, row: DlpPolicyRow | None, supported: frozenset[str]
) -> DlpPolicyRead:
    return DlpPolicyRead(
        entities=[
            EntityRuleSpec(r.entity_type, r.threshold, r.inbound, r.outbound, r.ingest)
            for r in policy.entities
        ],
        custom=[
            CustomRecognizerSpec(c.entity_type, list(c.patterns), list(c.deny_list), c.score)
            for c in policy.custom
        ],
        allow_list=list(policy.allow_list),
        tag_classification=policy.tag_classification,
        injection=InjectionSpec(
            policy.injection.user_message,
            policy.injection.chunks,
            list(policy.injection.allowed_hosts),
        ),
        supported_entities=sorted(supported),
        configured=row is not None,
        version=row.version if row is not None else 0,
        updated_at=row.updated_at if row is not None else None,
    )


class DlpPolicyController(Controller):
    path = "/v1/admin/dlp"
    tags = ["tenant admin"]
    security = SECURED
    guards = [requires_role(Role.TENANT_ADMIN)]

    @get("/", responses=problem_responses(), summary="The tenant's DLP policy (or the default)")
    async def get_dlp(self, dlp_policies: NamedDependency[DlpPolicyService]) -> DlpPolicyRead:
        policy, row = await dlp_policies.current()
        return policy_read(policy, row, dlp_policies.supported)

    @put(
        "/",
        responses=problem_responses(422),
        summary="Replace the tenant's DLP policy (entity actions per direction, custom "
        "recognizers, allow-list, injection handling)",
    )
    async def put_dlp(
        self, dlp_policies: NamedDependency[DlpPolicyService], data: JSONBody[DlpPolicyUpdate]
    ) -> DlpPolicyRead:
        policy = policy_of(data)
        row = await dlp_policies.replace(policy)
        return policy_read(policy, row, dlp_policies.supported)
