"""The egress guard: every URL a tenant configures is untrusted.

A tenant admin chooses URLs that Bulwark's servers then call: BYO model endpoints, the OIDC
issuer (and the discovery document's endpoints and JWKS), SAML federation metadata. Without a
guard, such a URL reaches what the server can reach and the tenant cannot: loopback services,
the cloud metadata endpoint at 169.254.169.254, the private network. The guard refuses, unless
the operator allow-lists them:

- addresses that are loopback, link-local, private (RFC 1918, ULA), shared (CGNAT), multicast,
  reserved, unspecified or otherwise not global — IPv4 and IPv6 alike, IPv4-mapped IPv6
  unwrapped, and whatever spelling resolves to them (``localhost``, ``2130706433``, ``0x7f.1``,
  ``[::ffff:127.0.0.1]``: the check is on the resolved address, not the text);
- plain ``http`` (https only, unless the operator allows http);
- URLs with credentials in them.

Checked twice: at configuration time (``check_url``: a clear 422, and an audit event from the
caller), and at every connection, on the very addresses the connection uses (the HTTP
adapters resolve through ``resolve``), so a name that resolved to a public address when it was
configured and to 127.0.0.1 later (DNS rebinding) is still refused — a 503 at call time.
Redirects are not followed.

The operator's allow-list (``[egress]``: CIDRs and host names) applies to the whole deployment,
and may be given per tenant (a BYO model on a customer's private link has a private address).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from kernel.errors import InvalidInput

if TYPE_CHECKING:
    from kernel.settings import EgressSettings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# Why a destination is refused: a code (in problems, audit events and logs) and its words.
REASONS = {
    "loopback": "a loopback address",
    "link_local": "a link-local address",
    "multicast": "a multicast address",
    "unspecified": "an unspecified address",
    "private": "a private address",
    "reserved": "a reserved or non-global address",
    "plain_http": "plain http",
    "credentials_in_url": "credentials in the URL",
    "not_http": "not an http(s) URL",
    "unresolvable": "a name that does not resolve",
}


_CODE_LIKE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class EgressRefused(InvalidInput):
    code = "egress_refused"
    title = "Destination not allowed"

    def __init__(self, reason: str, host: str) -> None:
        super().__init__(
            f"Bulwark does not connect to {REASONS[reason]} from a URL a tenant configures. "
            "An operator can allow-list the destination in the deployment's egress settings.",
            reason=reason,
        )
        self.reason = reason
        self.host = host

    def audit_detail(self) -> dict[str, str]:
        """The refusal for an ``egress.refused`` audit event: the reason, and the host as
        written if it is code-like (an address, a plain name), else its SHA-256."""
        host = self.host
        if not _CODE_LIKE.match(host):
            host = hashlib.sha256(host.encode()).hexdigest()
        return {"reason": self.reason, "host": host}


class EgressBlocked(OSError):
    """Raised inside a connection attempt (the HTTP client's resolver): the call fails as a
    transport failure, which the caller turns into a 503."""

    def __init__(self, reason: str, host: str) -> None:
        super().__init__(f"egress refused: {REASONS[reason]}")
        self.reason = reason
        self.host = host


def _literal(host: str) -> Address | None:
    """The address ``host`` spells, in any of the forms resolvers accept (``127.1``,
    ``2130706433``, ``0x7f.0.0.1``, IPv6), or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _unwrapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return mapped
    return address


def _refusal(address: Address) -> str | None:
    """Why ``address`` is not a public destination, or None when it is."""
    address = _unwrapped(address)
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link_local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_private:
        return "private"
    if address.is_reserved or not address.is_global:
        return "reserved"
    return None


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Where tenant-configured URLs may lead: public addresses over https, plus what the
    operator allow-lists (``networks``, ``hosts``; ``allow_http`` for plain http; ``origins``:
    exact scheme, host and port, e.g. the development IdP of ``serve --dev-idp``)."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()
    allow_http: bool = False
    origins: frozenset[tuple[str, str, int]] = frozenset()
    # Further allowances for one tenant (its private link), by tenant id.
    tenants: Mapping[str, EgressPolicy] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        *,
        networks: Iterable[str] = (),
        hosts: Iterable[str] = (),
        allow_http: bool = False,
        origins: Iterable[str] = (),
        tenants: Mapping[str, EgressPolicy] | None = None,
    ) -> EgressPolicy:
        return cls(
            networks=tuple(ipaddress.ip_network(n, strict=False) for n in networks),
            hosts=frozenset(h.casefold().rstrip(".") for h in hosts),
            allow_http=allow_http,
            origins=frozenset(_origin(url) for url in origins),
            tenants=dict(tenants or {}),
        )

    def for_tenant(self, tenant_id: str | None) -> EgressPolicy:
        """This policy widened by the tenant's own allowances, if the operator gave any."""
        extra = self.tenants.get(tenant_id) if tenant_id else None
        if extra is None:
            return self
        return EgressPolicy(
            networks=self.networks + extra.networks,
            hosts=self.hosts | extra.hosts,
            allow_http=self.allow_http or extra.allow_http,
            origins=self.origins | extra.origins,
        )

    def host_allowed(self, host: str) -> bool:
        return host.casefold().rstrip(".") in self.hosts

    def _endpoint_allowed(self, host: str, port: int | None) -> bool:
        name = host.casefold().rstrip(".")
        return port is not None and any((h, p) == (name, port) for _, h, p in self.origins)

    def address_refusal(self, host: str, address: Address, port: int | None = None) -> str | None:
        if (
            self.host_allowed(host)
            or self._endpoint_allowed(host, port)
            or any(_unwrapped(address) in n for n in self.networks)
        ):
            return None
        return _refusal(address)

    def check_url(self, url: str) -> str:
        """The URL's host, after the checks that need no network (scheme, credentials, a
        literal address); ``EgressRefused`` (422) otherwise."""
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:  # e.g. an unclosed IPv6 bracket
            raise EgressRefused("not_http", "") from None
        if parts.scheme not in ("https", "http") or not host:
            raise EgressRefused("not_http", host)
        if _origin(url) in self.origins and parts.username is None and parts.password is None:
            return host
        if parts.scheme == "http" and not (self.allow_http or self.host_allowed(host)):
            raise EgressRefused("plain_http", host)
        if parts.username is not None or parts.password is not None:
            raise EgressRefused("credentials_in_url", host)
        literal = _literal(host)
        if literal is None:
            return host
        reason = self.address_refusal(host, literal)
        if reason is not None:
            raise EgressRefused(reason, host)
        return host

    async def check_destination(self, url: str) -> None:
        """``check_url`` and the addresses the host resolves to now (configuration time)."""
        host = self.check_url(url)
        try:
            port = urlsplit(url).port or (443 if url.startswith("https") else 80)
            await self.resolve(host, port)
        except EgressBlocked as exc:
            raise EgressRefused(exc.reason, host) from None
        except ValueError:  # a port that is no number, or out of range
            raise EgressRefused("not_http", host) from None

    async def resolve(self, host: str, port: int) -> list[Address]:
        """Resolve ``host`` once and return its addresses, every one of them checked:
        ``EgressBlocked`` if any is refused or the name does not resolve."""
        literal = _literal(host)
        if literal is not None:
            found: Sequence[Address] = [literal]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            except OSError:
                raise EgressBlocked("unresolvable", host) from None
            found = list(
                dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
            )
        for address in found:
            reason = self.address_refusal(host, address, port)
            if reason is not None:
                raise EgressBlocked(reason, host)
        return list(found)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    scheme = parts.scheme.casefold()
    default = 443 if scheme == "https" else 80
    return scheme, (parts.hostname or "").casefold().rstrip("."), port or default


def policy_of(settings: EgressSettings, *, extra_networks: Iterable[str] = ()) -> EgressPolicy:
    """The deployment's policy from its ``[egress]`` settings (``extra_networks``: what the
    command line adds, e.g. loopback for ``serve --dev-idp``)."""
    return EgressPolicy.of(
        networks=(*settings.allow_networks, *extra_networks),
        hosts=settings.allow_hosts,
        allow_http=settings.allow_http,
        origins=settings.allow_origins,
        tenants={
            slug: EgressPolicy.of(
                networks=t.allow_networks, hosts=t.allow_hosts, allow_http=t.allow_http
            )
            for slug, t in settings.tenants.items()
        },
    )


# Loopback only: what a development deployment (``serve --dev-idp``) and the test suite's own
# servers on 127.0.0.1 need, and nothing else.
LOOPBACK = ("127.0.0.0/8", "::1/128")
