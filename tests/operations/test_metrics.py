"""Braid's own series on /metrics: counted after commit, summed across processes."""

import re

import pytest
from django.test import override_settings

from apps.engine.start import StartRequest, start_execution
from apps.operations import counters
from tests.conftest import run_until_done

TOKEN = "metrics-test-token"
RETRIED = {"name": "metered",
           "nodes": [{"id": "a", "type": "noop"},
                     {"id": "b", "type": "fail", "config": {"times": 1},
                      "retry": {"max_attempts": 2, "backoff_s": 0.01}}],
           "edges": [{"from": "a", "to": "b"}]}


def scrape(client) -> str:
    with override_settings(BRAID_METRICS_TOKEN=TOKEN):
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    return response.content.decode()


def value_where(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        label_text, number = line[len(name) + 1:].rsplit("} ", 1)
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(number)
    return total


@pytest.mark.django_db(transaction=True)
def test_metrics_count_executions_nodes_retries_and_durations_after_a_run(client):
    counters.flush()  # earlier tests' counts: not this test's to see
    before = scrape(client)
    execution = start_execution(StartRequest(definition=RETRIED))
    assert run_until_done(execution.pk).status == "succeeded"
    counters.flush()  # what the flushing thread does every few seconds
    after = scrape(client)

    def grew(name, **labels):
        return value_where(after, name, **labels) - value_where(before, name, **labels)

    assert grew("braid_executions_started_total", workflow=execution.definition.slug) == 1
    assert grew("braid_executions_finished_total", status="succeeded") == 1
    assert grew("braid_node_runs_total", node_type="fail", outcome="failed") == 1
    assert grew("braid_node_runs_total", node_type="fail", outcome="succeeded") == 1
    assert grew("braid_node_retries_total", node_type="fail") == 1
    assert grew("braid_node_duration_seconds_count", node_type="noop") == 1
    assert grew("braid_queue_wait_seconds_count", queue="default") == 3
    assert 'braid_queue_ready_runs' in after and "braid_alerts_open{severity=\"critical\"}" in after


def test_metrics_still_refuse_anonymous_scrapes(client, db):
    assert client.get("/metrics").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_a_duration_histogram_is_cumulative_on_every_bound(client):
    """Stored per bucket, served cumulatively: each `le` counts every observation
    at or under it, and +Inf equals _count."""
    counters.flush()
    before = scrape(client)
    for seconds in (0.003, 0.02, 0.02, 7.0):
        counters.observe("braid_node_duration_seconds", seconds, node_type="histotest")
    counters.flush()
    after = scrape(client)

    def grew(le):
        name = "braid_node_duration_seconds_bucket"
        return (value_where(after, name, node_type="histotest", le=le)
                - value_where(before, name, node_type="histotest", le=le))

    assert [grew(le) for le in ("0.005", "0.01", "0.025", "5.0", "10.0", "+Inf")] == [
        1, 1, 3, 3, 4, 4]
    assert value_where(after, "braid_node_duration_seconds_count", node_type="histotest") == 4
