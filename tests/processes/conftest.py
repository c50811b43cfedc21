"""Fixtures for real-process tests: a Cluster bound to this test's database and Redis db."""

import pytest
from django.conf import settings

from tests.processes.harness import Cluster


@pytest.fixture
def cluster(transactional_db):
    """A not-yet-started Cluster on the test database; always stopped after the test.

    The broker (Redis, or the ORM queue on SQLite) is emptied first so no
    wake-up or stat of an earlier run leaks in. The
    children's logs are printed at teardown (pytest shows them when a test fails).
    """
    harness = Cluster(dict(settings.DATABASES["default"]), settings.REDIS_URL or None)
    harness.flush_broker()
    try:
        yield harness
    finally:
        harness.stop()
        print(harness.logs())
