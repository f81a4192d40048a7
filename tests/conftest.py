"""Test deployments on both databases.

Each backend gets one deployment per test session, migrated by the real ``bulwark migrate`` code
(never ``create_all``): SQLite files in a temporary data dir, or three fresh PostgreSQL databases
(control, eu, us) owned by the DSN's user, with the app connecting as ``bulwark_app`` so that
FORCE ROW LEVEL SECURITY applies. Tests isolate themselves by creating their own tenants.

PostgreSQL tests are skipped without ``BULWARK_TEST_POSTGRES_DSN``; ``.ci/run`` sets it and sets
``BULWARK_TEST_REQUIRE_POSTGRES=1`` so a missing server fails instead of skipping.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.runtime import Runtime

# The shared helpers' assertions keep pytest's introspection, as they had in the conftest and
# test modules they came from (pytest rewrites only those by default).
pytest.register_assert_rewrite("tests.support")

from tests.support.deployments import (  # noqa: E402
    BACKENDS,
    Deployment,
    drop_deployment,
    make_deployment,
)
from tests.support.tenants import Api  # noqa: E402


@pytest.fixture(scope="session", params=BACKENDS)
async def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    created = await make_deployment(request.param, tmp_path_factory.mktemp(request.param))
    yield created
    await drop_deployment(created)


@pytest.fixture(scope="session")
async def app(deployment: Deployment) -> Litestar:
    return create_app(deployment.settings)


@pytest.fixture(scope="session")
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        test_client.follow_redirects = False  # redirects (SSO) are asserted, never followed
        yield test_client


@pytest.fixture
def api(client: AsyncTestClient[Litestar]) -> Api:
    return Api(client)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("BULWARK_") and not key.startswith("BULWARK_TEST_"):
            monkeypatch.delenv(key)


@pytest.fixture
async def runtime(deployment: Deployment) -> AsyncIterator[Runtime]:
    """A second runtime over the same stores, for direct service-level work in a test.

    (The app under the test client serves from its own event loop; its pooled PostgreSQL
    connections cannot be used from the test's loop.)
    """
    direct = Runtime.build(deployment.settings)
    yield direct
    await direct.dispose()
