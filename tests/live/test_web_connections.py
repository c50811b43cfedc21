"""The web process under many concurrent API clients, over a real daphne.

An ASGI server runs each request's sync code in a thread of its own; with a
persistent database connection per thread, 50 clients used to open connections
until PostgreSQL refused more ("too many clients") and the API answered 500.
The web process takes its connections from a pool instead.
"""

import asyncio

import httpx
import pytest
from django.db import connection

from apps.api.tokens import create_token
from tests.live.conftest import start
from tests.live.processes import LiveProcesses, embedded

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

POOL_MAX = 5
CLIENTS = 60


@pytest.fixture
def procs(transactional_db):
    harness = LiveProcesses()
    try:
        yield harness
    finally:
        harness.stop()
        print(harness.logs())


def daphne_connections(database: str) -> int:
    """Connections to the test database other than this one (any thread's)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                           "AND pid <> pg_backend_pid()", [database])
            return cursor.fetchone()[0]
    finally:
        connection.close()


@pytest.mark.skipif(embedded(), reason="connection pooling is PostgreSQL's; the SQLite pass "
                    "has no server to run out of connections (CI runs the PostgreSQL pass)")
def test_sixty_concurrent_clients_are_all_answered_within_the_pool(procs, alice):
    procs.env["BRAID_DB_POOL_MAX"] = str(POOL_MAX)
    execution = start(alice)
    token = create_token(alice, "web test", "read,execute")[1]
    database = connection.settings_dict["NAME"]
    before = daphne_connections(database)
    _, url = procs.start_daphne()

    async def one(http):
        response = await http.get(f"/api/v1/executions/{execution.pk}/")
        return response.status_code

    async def scenario():
        async with httpx.AsyncClient(base_url=url, timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            statuses = []
            for _ in range(3):  # three waves of 60 at once
                statuses += await asyncio.gather(*(one(http) for _ in range(CLIENTS)))
                peak.append(await asyncio.to_thread(daphne_connections, database) - before)
            return statuses

    peak: list[int] = []
    statuses = asyncio.run(scenario())

    assert statuses == [200] * (3 * CLIENTS)
    assert max(peak) <= POOL_MAX
