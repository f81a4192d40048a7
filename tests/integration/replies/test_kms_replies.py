"""KMS replies that are not KMS's: AWS KMS (and STS) fed truncated, empty, foreign and mangled
replies by a real HTTP server on 127.0.0.1 that boto3 talks to, and the local KMS fed a key file
cut short, emptied or mangled. Each is ``KmsUnreachable`` — 503 ``kms_unavailable`` with
Retry-After for the caller — never a KeyError (the 500 ``make loadtest`` saw when a KMS reply
was cut mid-way), and a broken key file is never rewritten."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from app.main import create_app
from keys.adapters.aws import AwsKms
from keys.adapters.local import LocalKms
from keys.kms import DataKey, KeyRef, KmsUnreachable
from migrations.runner import migrate
from tests.peers.raw_http import RawHttpPeer, RawReply, RawRequest, cut, forward
from tests.support.aws import aws_settings
from tests.support.deployments import Deployment
from tests.support.http import assert_problem
from tests.support.tenants import Api

KEY = KeyRef("aws-kms", "arn:aws:kms:eu-west-1:111122223333:key/k-1", "eu-west-1")
ROLE_KEY = KeyRef("aws-kms", KEY.key_id, "eu-west-1", role_arn="arn:aws:iam::111122223333:role/kms")
CONTEXT = {"tenant_id": "t-1", "purpose": "bulwark-dek", "version": "1"}
AMZ_JSON = "application/x-amz-json-1.1"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


WHOLE = json.dumps(
    {
        "KeyId": KEY.key_id,
        "Plaintext": b64(b"k" * 32),
        "CiphertextBlob": b64(b"w" * 64),
        "KeyMetadata": {"Arn": KEY.key_id},
    }
).encode()
BROKEN = {
    "empty": RawReply(b"", content_type=AMZ_JSON),
    "truncated": RawReply(WHOLE[:40], content_type=AMZ_JSON),
    "cut_with_the_connection": cut(RawReply(WHOLE, content_type=AMZ_JSON), 40),
    "ends_at_close_cut_short": RawReply(WHOLE[:40], content_type=AMZ_JSON, length=-1),
    "html": RawReply(b"<html><body>Proxy error</body></html>", content_type="text/html"),
    "no_fields": RawReply(b"{}", content_type=AMZ_JSON),
    "a_list": RawReply(b"[]", content_type=AMZ_JSON),
    "blob_not_base64": RawReply(
        b'{"Plaintext": "!!!", "CiphertextBlob": "!!!"}', content_type=AMZ_JSON
    ),
    "blob_not_a_string": RawReply(
        b'{"Plaintext": 7, "CiphertextBlob": 7, "KeyMetadata": {"Arn": 7}, "KeyId": 7}',
        content_type=AMZ_JSON,
    ),
    "not_utf8": RawReply(b'{"Plaintext": "\xff\xfe"}', content_type=AMZ_JSON),
}

Call = Callable[[AwsKms], Awaitable[object]]
CALLS: dict[str, Call] = {
    "generate_data_key": lambda kms: kms.generate_data_key(KEY, CONTEXT),
    "encrypt": lambda kms: kms.encrypt(KEY, b"k" * 32, CONTEXT),
    "decrypt": lambda kms: kms.decrypt(KEY, b"w" * 64, CONTEXT),
    "re_encrypt": lambda kms: kms.re_encrypt(KEY, b"w" * 64, CONTEXT, KEY),
    "create_key": lambda kms: kms.create_key(description="d", owner="t-1"),
    "destroy_key": lambda kms: kms.destroy_key(KEY),
}


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


async def test_a_whole_reply_from_this_peer_is_read() -> None:
    with RawHttpPeer(lambda _: RawReply(WHOLE, content_type=AMZ_JSON)) as peer:
        kms = AwsKms(default_region="eu-west-1", endpoint_url=peer.base_url)
        assert await kms.generate_data_key(KEY, CONTEXT) == DataKey(b"k" * 32, b"w" * 64)
        assert await kms.decrypt(KEY, b"w" * 64, CONTEXT) == b"k" * 32
        assert (await kms.create_key(description="d", owner=None)).key_id == KEY.key_id
        await kms.destroy_key(KEY)
    targets = [r.headers["X-Amz-Target"] for r in peer.requests]
    assert targets == [
        "TrentService.GenerateDataKey",
        "TrentService.Decrypt",
        "TrentService.CreateKey",
        "TrentService.ScheduleKeyDeletion",
    ]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("case", BROKEN)
async def test_a_kms_reply_that_is_not_one_is_kms_unreachable(case: str, call: str) -> None:
    with RawHttpPeer(lambda _: BROKEN[case]) as peer:
        kms = AwsKms(default_region="eu-west-1", endpoint_url=peer.base_url)
        with pytest.raises(KmsUnreachable):
            await CALLS[call](kms)
    assert peer.requests, "the call reached the peer"


async def test_a_data_key_of_the_wrong_size_is_kms_unreachable() -> None:
    short = json.dumps({"Plaintext": b64(b"k" * 16), "CiphertextBlob": b64(b"w" * 64)}).encode()
    with RawHttpPeer(lambda _: RawReply(short, content_type=AMZ_JSON)) as peer:
        kms = AwsKms(default_region="eu-west-1", endpoint_url=peer.base_url)
        with pytest.raises(KmsUnreachable):
            await kms.generate_data_key(KEY, CONTEXT)


STS_BROKEN = {
    "empty": RawReply(b"", content_type="text/xml"),
    "html": RawReply(b"<html><body>Proxy error", content_type="text/html"),
    "truncated": RawReply(
        b'<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleRes',
        content_type="text/xml",
    ),
    "no_credentials": RawReply(
        b'<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        b"<AssumeRoleResult></AssumeRoleResult></AssumeRoleResponse>",
        content_type="text/xml",
    ),
}


@pytest.mark.parametrize("case", STS_BROKEN)
async def test_an_assume_role_reply_that_is_not_one_is_kms_unreachable(case: str) -> None:
    with RawHttpPeer(lambda _: STS_BROKEN[case]) as peer:
        kms = AwsKms(default_region="eu-west-1", endpoint_url=peer.base_url)
        with pytest.raises(KmsUnreachable):
            await kms.decrypt(ROLE_KEY, b"w" * 64, CONTEXT)
    assert b"Action=AssumeRole" in peer.requests[0].body


# --- the local KMS: its key file is its reply ---------------------------------------------


async def keyed(path: Path) -> tuple[LocalKms, KeyRef, bytes]:
    kms = LocalKms(path)
    key = await kms.create_key(description="t-1", owner="t-1")
    wrapped = (await kms.generate_data_key(key, CONTEXT)).wrapped
    return kms, key, wrapped


def mangled_entry(text: str, key_id: str, material: object) -> bytes:
    data = json.loads(text)
    data["keys"][key_id]["material"] = material
    return json.dumps(data).encode()


KEY_FILES: dict[str, Callable[[str, str], bytes]] = {
    "emptied": lambda text, _: b"",
    "truncated": lambda text, _: text.encode()[: len(text) // 2],
    "not_text": lambda text, _: b"\x00\xff\xfe" * 10,
    "not_a_table": lambda text, _: b"[]",
    "no_keys": lambda text, _: b'{"version": 1}',
    "entry_not_an_object": lambda text, key_id: json.dumps({"keys": {key_id: "x"}}).encode(),
    "material_not_base64": lambda text, key_id: mangled_entry(text, key_id, "not base64!"),
    "material_too_short": lambda text, key_id: mangled_entry(text, key_id, b64(b"x" * 16)),
    "material_not_a_string": lambda text, key_id: mangled_entry(text, key_id, 42),
}


WHOLE_FILE_BROKEN = {"emptied", "truncated", "not_text", "not_a_table", "no_keys"}


@pytest.mark.parametrize("case", KEY_FILES)
async def test_a_broken_key_file_is_kms_unreachable_and_never_rewritten(
    tmp_path: Path, case: str
) -> None:
    path = tmp_path / "kms.key"
    kms, key, wrapped = await keyed(path)
    broken = KEY_FILES[case](path.read_text(), key.key_id)
    path.write_bytes(broken)
    reader = LocalKms(path)  # another process: nothing cached
    for use in (
        lambda: reader.decrypt(key, wrapped, CONTEXT),
        lambda: reader.generate_data_key(key, CONTEXT),
        lambda: kms.decrypt(key, wrapped, CONTEXT),
    ):
        with pytest.raises(KmsUnreachable):
            await use()
    if case in WHOLE_FILE_BROKEN:
        # Creating a key would rewrite the file: it must not, or every key in it is lost.
        with pytest.raises(KmsUnreachable):
            await kms.create_key(description="t-2", owner="t-2")
    assert path.read_bytes() == broken


async def test_tenants_wait_for_a_broken_key_file_with_a_503_and_nothing_is_lost(
    api: Api, deployment: Deployment
) -> None:
    """Through the API: while the region's key file does not parse, creating a tenant (which
    needs a new key) is 503 ``kms_unavailable`` with Retry-After and creates nothing; once the
    file is whole again, the same request succeeds and earlier tenants' keys still work."""
    earlier = await api.new_tenant("eu")
    path = Path(deployment.settings.regions["eu"].kms.key_file or "")
    whole = await asyncio.to_thread(path.read_bytes)
    body = {"slug": f"t-{uuid.uuid4().hex[:12]}", "name": "Waits for its key", "region": "eu"}
    try:
        await asyncio.to_thread(path.write_bytes, whole[: len(whole) // 2])
        refused = await api.client.post("/v1/tenants", json=body, headers=api.operator)
        assert_problem(refused, 503, "kms_unavailable")
        assert int(refused.headers["retry-after"]) > 0
        assert await asyncio.to_thread(path.read_bytes) == whole[: len(whole) // 2]
    finally:
        await asyncio.to_thread(path.write_bytes, whole)
    created = await api.client.post("/v1/tenants", json=body, headers=api.operator)
    assert created.status_code == 201, created.text
    kms = await api.client.get("/v1/admin/kms", headers=earlier.admin)
    assert kms.status_code == 200 and kms.json()["current_version"] == 1
    rotated = await api.client.post("/v1/admin/kms/rotate", headers=earlier.admin)
    assert rotated.status_code == 200, rotated.text


# --- AWS KMS behind a proxy that cuts its replies, through the API -------------------------

# The AWS peer (moto_server on 127.0.0.1) and its credentials: the ``moto_endpoint`` and
# ``aws_env`` fixtures of tests/integration/conftest.py.


def short_plaintext(reply: RawReply) -> RawReply:
    """The reply with a Plaintext of 3 bytes (what lenient base64 makes of a mangled one)."""
    body = json.loads(reply.body)
    if "Plaintext" not in body:
        return reply
    return RawReply(json.dumps({**body, "Plaintext": "AAAA"}).encode(), content_type=AMZ_JSON)


MANGLES: dict[str, Callable[[RawReply], RawReply]] = {
    "cut_mid_way": lambda reply: cut(reply, len(reply.body) // 2),
    "short_data_key": short_plaintext,
}


@pytest.mark.parametrize("mangle", MANGLES)
async def test_mangled_kms_replies_are_a_503_and_the_tenant_recovers(
    moto_endpoint: str, aws_env: None, tmp_path: Path, mangle: str
) -> None:
    """What ``make loadtest`` saw: KMS replies cut mid-way (here by a proxy in front of the AWS
    peer), or carrying a data key that is not one. Every tenant route that needs the tenant's
    data key answers 503 ``kms_unavailable`` with Retry-After while they do, and serves again,
    with the same data, once they do not."""
    cutting = {"on": False}

    def answer(request: RawRequest) -> RawReply:
        reply = forward(request, moto_endpoint)
        return MANGLES[mangle](reply) if cutting["on"] else reply

    with RawHttpPeer(answer) as proxy:
        settings = aws_settings(tmp_path, moto_endpoint)
        regions = {
            name: region.model_copy(
                update={"kms": region.kms.model_copy(update={"endpoint_url": proxy.base_url})}
            )
            for name, region in settings.regions.items()
        }
        # No unwrapped data key outlives a request: each one asks the KMS.
        keys = settings.keys.model_copy(update={"dek_cache_ttl_seconds": 0.0})
        settings = settings.model_copy(update={"regions": regions, "keys": keys})
        await asyncio.to_thread(migrate, settings)
        async with AsyncTestClient(app=create_app(settings)) as client:
            api = Api(client)
            tenant = await api.new_tenant("eu")
            user = await api.new_user(tenant)
            before = await client.get(f"/v1/admin/users/{user['id']}", headers=tenant.admin)
            assert before.status_code == 200, before.text

            cutting["on"] = True
            asked = len(proxy.requests)
            refused = await client.get(f"/v1/admin/users/{user['id']}", headers=tenant.admin)
            assert_problem(refused, 503, "kms_unavailable")
            assert int(refused.headers["retry-after"]) > 0
            assert any(
                r.headers.get("X-Amz-Target") == "TrentService.Decrypt"
                for r in proxy.requests[asked:]
            )

            cutting["on"] = False
            after = await client.get(f"/v1/admin/users/{user['id']}", headers=tenant.admin)
            assert after.status_code == 200 and after.json() == before.json()
