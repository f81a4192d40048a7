"""``bulwark demo``: idempotent seeding of two demo tenants in two regions.

Re-running it changes nothing that exists: tenants, users, groups and memberships are looked up
before they are created, and an API key already in the credentials file is reused while it still
verifies (secrets are stored hashed, so a lost key is replaced by a new one).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.runtime import Runtime
from audit.pseudonyms import SYSTEM_SUBJECT
from audit.services import AuditLog, AuditOrigin
from auth.devidp import DevIdp, DevUser, config_path, load_config, save_config
from auth.oidc import DEFAULT_CLAIMS, OidcConfigService, OidcSettings
from auth.repositories import ApiKeyRepository, GroupRepository, UserRepository
from auth.services import ApiKeyService, GroupService, UserService
from kernel.settings import Settings
from kernel.tenancy import TenantContext, TenantRoute
from tenants.repositories import TenantRepository
from tenants.schemas import TenantCreate
from tenants.services import TenantService


@dataclass(frozen=True)
class DemoUser:
    local: str
    display_name: str
    roles: tuple[str, ...]
    groups: tuple[str, ...]


DEMO_TENANTS = (("acme", "Acme Corporation", "eu"), ("globex", "Globex Inc.", "us"))
DEMO_USERS = (
    DemoUser("admin", "Ada Admin", ("tenant_admin",), ()),
    DemoUser("compliance", "Carl Compliance", ("compliance_officer",), ()),
    DemoUser("alice", "Alice Engineer", ("member",), ("engineering",)),
    DemoUser("bob", "Bob Seller", ("member",), ("sales",)),
)


def credentials_path(settings: Settings) -> Path:
    return settings.data_dir.absolute() / "demo-credentials.json"


def _existing_keys(path: Path) -> dict[tuple[str, str], str]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {
            (slug, user["email"]): user["api_key"]
            for slug, tenant in data.get("tenants", {}).items()
            for user in tenant.get("users", [])
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


def _dev_idp(settings: Settings, port: int) -> DevIdp:
    """The development IdP's client (its secret kept across runs) with no realms yet."""
    path = config_path(settings.data_dir)
    existing = load_config(path) if path.exists() else None
    return DevIdp(
        client_secret=existing.client_secret if existing else DevIdp().client_secret,
        port=port,
        redirect_prefix=f"{settings.identity.public_url.rstrip('/')}/auth/",
    )


async def _sign_in_through(
    runtime: Runtime, session: Any, ctx: TenantContext, audit: AuditLog, idp: DevIdp
) -> None:
    """Point the tenant's OIDC at the development IdP (once: a re-run changes nothing)."""
    config = OidcConfigService(session, ctx, runtime.keyring.for_tenant(session, ctx), audit)
    wanted = OidcSettings(
        issuer=idp.issuer_of(ctx.tenant_slug),
        client_id=idp.client_id,
        scopes=("openid", "email", "profile"),
        claims=dict(DEFAULT_CLAIMS),
        audience=idp.client_id,
        enabled=True,
    )
    stored = await config.read()
    if stored is None or stored[0] != wanted or not stored[1]:
        await config.write(wanted, idp.client_secret)


async def seed_demo(settings: Settings, *, dev_idp_port: int = 8001) -> dict[str, Any]:
    """Seed the demo tenants; their people sign in to the console through the development IdP
    (``bulwark serve --dev-idp``), whose configuration is written next to the credentials."""
    runtime = Runtime.build(settings)
    path = credentials_path(settings)
    known_keys = _existing_keys(path)
    output: dict[str, Any] = {"operator_token": runtime.operator_token, "tenants": {}}
    idp = _dev_idp(settings, dev_idp_port)
    try:
        for slug, name, region in DEMO_TENANTS:
            async with runtime.control.transaction(None) as session:
                tenants = TenantService(
                    TenantRepository(session),
                    runtime.registry,
                    runtime.keyring,
                    AuditOrigin(SYSTEM_SUBJECT),
                    runtime.system,
                )
                tenant = await tenants.repository.get_by_slug(slug) or await tenants.create(
                    TenantCreate(slug=slug, name=name, region=region)
                )
                route = TenantRoute.of(tenant)
            ctx = runtime.system.context(route)
            users_out = []
            async with runtime.registry.tenant_transaction(ctx) as session:
                audit = AuditLog(session, ctx)  # actor: "system"
                user_repo = UserRepository(session, ctx)
                users = UserService(user_repo, audit)
                groups = GroupService(GroupRepository(session, ctx), user_repo, audit)
                keys = ApiKeyService(
                    ApiKeyRepository(session, ctx), user_repo, runtime.pepper, audit
                )
                for spec in DEMO_USERS:
                    email = f"{spec.local}@{slug}.example"
                    user = await users.get_by_email(email) or await users.create(
                        email=email, display_name=spec.display_name, roles=spec.roles
                    )
                    for group_name in spec.groups:
                        group = await groups.get_by_name(group_name) or await groups.create(
                            group_name
                        )
                        await groups.add_member(group.id, user.id)
                    key = known_keys.get((slug, email))
                    if key is None or not await keys.verify(key):
                        key = (await keys.issue(user_id=user.id, name="demo key")).secret
                    users_out.append(
                        {
                            "email": email,
                            "roles": list(spec.roles),
                            "groups": list(spec.groups),
                            "api_key": key,
                        }
                    )
                idp.realms[slug] = [
                    DevUser(
                        f"dev-{slug}-{spec.local}",
                        f"{spec.local}@{slug}.example",
                        spec.display_name,
                        spec.groups,
                    )
                    for spec in DEMO_USERS
                ]
                await _sign_in_through(runtime, session, ctx, audit, idp)
            output["tenants"][slug] = {
                "id": str(tenant.id),
                "region": region,
                "users": users_out,
                "console": f"{settings.identity.public_url.rstrip('/')}/console/{slug}",
            }
    finally:
        await runtime.dispose()
    save_config(config_path(settings.data_dir), idp)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(output, handle, indent=2)
    return output
