"""Object-store replies that are not S3's, fed to boto3 by a real HTTP server on 127.0.0.1, and
objects that come back as something other than what was put (empty, cut short, altered) from S3
or from the local store. The adapter raises ``ObjectStoreUnreachable``, and the tenant's view of
the store (``TenantObjects``) answers 503 ``object_store_unavailable`` with Retry-After — never
a parser error or an ``EnvelopeError`` turned into a 500 — and a write whose reply does not
prove the object was stored is not taken as done."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from app.runtime import Runtime
from residency.adapters.s3_objects import ObjectStoreUnreachable, S3BlobStore
from residency.objects import ObjectStoreUnavailable, TenantObjects
from tests.peers.raw_http import RawHttpPeer, RawReply, RawRequest, cut
from tests.support.deployments import Deployment
from tests.support.keys import get_object, put_object
from tests.support.tenants import Api, context_of

XML = "application/xml"
SENTINEL = b"quarterly forecast, sealed before it leaves"
LOCATION = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">eu-west-1'
    b"</LocationConstraint>"
)
BROKEN = {
    "empty": RawReply(b"", content_type=XML),
    "html": RawReply(b"<html><body>Proxy error", content_type="text/html"),
    "truncated": RawReply(LOCATION[:60], content_type=XML),
    "cut_with_the_connection": cut(RawReply(LOCATION, content_type=XML), 60),
    "error_page_5xx": RawReply(b"<html>Bad gateway</html>", status=502, content_type="text/html"),
    "error_xml_cut": RawReply(b"<Error><Code>Inter", status=500, content_type=XML),
}

Call = Callable[[S3BlobStore], Awaitable[object]]
CALLS: dict[str, Call] = {
    "get": lambda s3: s3.get("t/document/o-1"),
    "put": lambda s3: s3.put("t/document/o-1", b"sealed bytes"),
    "delete": lambda s3: s3.delete("t/document/o-1"),
    "location": lambda s3: s3.location(),
}
# A delete has nothing to check in its reply (S3 answers 204 and no body): a 200 whose body is
# not XML says nothing about the delete either way.
NOTHING_TO_CHECK = {("delete", case) for case in ("empty", "html", "truncated")} | {
    ("get", case)
    for case in ("empty", "html", "truncated")  # bytes: checked by the caller
}


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def s3(peer: RawHttpPeer) -> S3BlobStore:
    return S3BlobStore("bulwark-eu", aws_region="eu-west-1", endpoint_url=peer.base_url)


async def test_whole_replies_from_this_peer_are_read() -> None:
    def answer(request: RawRequest) -> RawReply:
        if request.method == "PUT":
            return RawReply(b"", headers=(("ETag", '"0af1"'),))
        if request.path.endswith("?location"):
            return RawReply(LOCATION, content_type=XML)
        return RawReply(b"sealed bytes", content_type="binary/octet-stream")

    with RawHttpPeer(answer) as peer:
        store = s3(peer)
        await store.put("t/document/o-1", b"sealed bytes")
        assert await store.get("t/document/o-1") == b"sealed bytes"
        assert await store.location() == "eu-west-1"


@pytest.mark.parametrize(
    ("case", "call"),
    [(case, call) for case in BROKEN for call in CALLS if (call, case) not in NOTHING_TO_CHECK],
)
async def test_an_s3_reply_that_is_not_one_is_the_store_unreachable(case: str, call: str) -> None:
    with RawHttpPeer(lambda _: BROKEN[case]) as peer, pytest.raises(ObjectStoreUnreachable):
        await CALLS[call](s3(peer))
    assert peer.requests, "the call reached the peer"


async def test_a_put_whose_reply_does_not_say_it_stored_the_object_is_not_done() -> None:
    # An empty 200 (a proxy, a misrouted endpoint): S3 gives every stored object an ETag.
    with (
        RawHttpPeer(lambda _: RawReply(b"", content_type=None)) as peer,
        pytest.raises(ObjectStoreUnreachable, match="ETag"),
    ):
        await s3(peer).put("t/document/o-1", b"sealed bytes")


MANGLED: dict[str, Callable[[bytes], RawReply]] = {
    "empty": lambda sealed: RawReply(b"", content_type="binary/octet-stream"),
    "cut_short": lambda sealed: RawReply(sealed[: len(sealed) // 2], length=-1),
    "cut_with_the_connection": lambda sealed: cut(RawReply(sealed), len(sealed) // 2),
    "altered": lambda sealed: RawReply(sealed[:-1] + bytes([sealed[-1] ^ 1])),
    "html": lambda sealed: RawReply(b"<html>Sign in</html>", content_type="text/html"),
}


@pytest.mark.parametrize("case", MANGLED)
async def test_an_object_that_comes_back_mangled_from_s3_is_a_503(
    api: Api, runtime: Runtime, case: str
) -> None:
    tenant = await api.new_tenant("eu")
    ctx = context_of(tenant)
    async with runtime.registry.tenant_transaction(ctx) as session:
        keys = runtime.keyring.for_tenant(session, ctx)
        sealed = await keys.seal("document", "doc-1", SENTINEL)
        with RawHttpPeer(lambda _: MANGLED[case](sealed)) as peer:
            objects = TenantObjects(s3(peer), keys, ctx)
            with pytest.raises(ObjectStoreUnavailable) as raised:
                await objects.get("document", "doc-1")
        assert raised.value.status == 503
        assert int(raised.value.headers["Retry-After"]) > 0
        # The same object, served whole, opens: nothing about the tenant's keys changed.
        with RawHttpPeer(lambda _: RawReply(sealed)) as peer:
            assert await TenantObjects(s3(peer), keys, ctx).get("document", "doc-1") == SENTINEL


LOCAL_MANGLED: dict[str, Callable[[bytes], bytes]] = {
    "emptied": lambda sealed: b"",
    "cut_short": lambda sealed: sealed[: len(sealed) // 2],
    "altered": lambda sealed: sealed[:-1] + bytes([sealed[-1] ^ 1]),
}


@pytest.mark.parametrize("case", LOCAL_MANGLED)
async def test_an_object_file_mangled_on_disk_is_a_503_and_a_rewrite_restores_it(
    api: Api, runtime: Runtime, deployment: Deployment, case: str
) -> None:
    tenant = await api.new_tenant("eu")
    object_id = uuid.uuid4().hex
    await put_object(runtime, tenant, object_id, SENTINEL)
    root = Path(deployment.settings.regions["eu"].object_store)
    path = root / uuid.UUID(tenant.id).hex / "document" / object_id
    sealed = await asyncio.to_thread(path.read_bytes)
    await asyncio.to_thread(path.write_bytes, LOCAL_MANGLED[case](sealed))
    with pytest.raises(ObjectStoreUnavailable):
        await get_object(runtime, tenant, object_id)
    await asyncio.to_thread(path.write_bytes, sealed)
    assert await get_object(runtime, tenant, object_id) == SENTINEL
