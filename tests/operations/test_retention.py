"""Prune deletes only what is past retention, in batches, and says what it did."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.engine.models import Execution, ExecutionEvent, NodeRun, NodeRunLog
from apps.operations import retention
from tests.conftest import run_until_done

OK = {"name": "fine", "nodes": [{"id": "a", "type": "noop"}, {"id": "b", "type": "noop"}],
      "edges": [{"from": "a", "to": "b"}]}

pytestmark = pytest.mark.django_db


def finished(run_graph, n, queue="default", age_days=0):
    ids = []
    for _ in range(n):
        execution = run_graph(OK, queue=queue)
        ids.append(execution.pk)
    if age_days:
        old = timezone.now() - timedelta(days=age_days)
        Execution.objects.filter(pk__in=ids).update(created_at=old, finished_at=old)
    return ids


def test_prune_deletes_only_finished_executions_past_their_queue_retention(run_graph):
    old = finished(run_graph, 5, age_days=31)            # default keeps 30 days
    recent = finished(run_graph, 2, age_days=29)
    background_kept = finished(run_graph, 1, queue="background", age_days=13)  # keeps 14
    from apps.engine.start import StartRequest, start_execution

    unfinished = start_execution(StartRequest(definition=OK))
    Execution.objects.filter(pk=unfinished.pk).update(
        created_at=timezone.now() - timedelta(days=90))

    assert retention.plan()["default"] == 5
    report = retention.prune(batch=2)
    assert report["executions"] == 5 and report["batches"] == 3
    assert report["longest_batch_ms"] >= 0
    remaining = set(Execution.objects.values_list("pk", flat=True))
    assert remaining == set(recent) | set(background_kept) | {unfinished.pk}
    assert not NodeRun.objects.filter(execution_id__in=old).exists()
    assert not ExecutionEvent.objects.filter(execution_id__in=old).exists()
    run_until_done(unfinished.pk)


def test_braid_prune_dry_run_counts_and_deletes_nothing(run_graph):
    finished(run_graph, 3, age_days=40)
    out = StringIO()
    call_command("braid", "prune", "--dry-run", stdout=out)
    assert "default: 3 finished execution(s) past retention" in out.getvalue()
    assert Execution.objects.count() == 3
    out = StringIO()
    call_command("braid", "prune", "--batch", "2", stdout=out)
    assert "deleted 3 execution(s)" in out.getvalue() and "in 2 batch(es)" in out.getvalue()
    assert Execution.objects.count() == 0


def test_prune_finds_every_table_that_points_at_an_execution():
    from apps.engine.purge import relations
    from apps.live.models import OutputDelta
    from apps.operations.models import Alert
    from apps.schedules.models import Schedule, ScheduleRun

    nulled, deleted = relations()
    assert {m for m, _, _ in nulled} >= {Alert, Schedule}
    assert {m for m, _, _ in deleted} >= {NodeRunLog, ExecutionEvent, OutputDelta, NodeRun}
    assert deleted[-1][0] is NodeRun  # after what points at node runs
    assert ScheduleRun in {m for m, _, _ in nulled + deleted}


def test_prune_keeps_an_alert_but_forgets_its_pruned_execution(run_graph):
    from apps.operations.models import Alert

    [pk] = finished(run_graph, 1, age_days=31)
    now = timezone.now()
    alert = Alert.objects.create(rule="execution_failed", severity="critical", dedupe_key="k",
                                 title="t", subject_kind="execution", execution_id=pk,
                                 first_seen=now, last_seen=now)
    retention.prune()
    alert.refresh_from_db()
    assert alert.execution_id is None
