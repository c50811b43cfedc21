"""Each alert rule fires from a scenario that causes it, dedupes repeats and auto-resolves."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from apps.engine.errors import Conflict
from apps.engine.models import Execution, NodeRun
from apps.engine.start import StartRequest, start_execution
from apps.operations import evaluator, services
from apps.operations.models import Alert, HostSample, RuleSetting
from tests.conftest import run_until_done

pytestmark = pytest.mark.django_db

FAILING = {"name": "always fails",
           "nodes": [{"id": "boom", "type": "fail", "config": {"times": 99},
                      "retry": {"max_attempts": 1}}],
           "edges": []}
OK = {"name": "fine", "nodes": [{"id": "a", "type": "noop"}], "edges": []}


def alerts(rule, state=None):
    qs = Alert.objects.filter(rule=rule)
    return list(qs.filter(state=state) if state else qs)


def set_rule(rule, **values):
    RuleSetting.objects.update_or_create(rule=rule, defaults=values)


def test_a_failed_execution_opens_one_alert_per_workflow_with_the_action_to_take(run_graph):
    first = run_graph(FAILING)
    assert first.status == "failed"
    evaluator.evaluate()
    [alert] = alerts("execution_failed", "open")
    assert alert.severity == "critical"
    assert "failed and need an operator" in alert.title
    assert alert.details["executions"] == [str(first.pk)]
    assert "retry" in alert.details["action"]

    run_graph(FAILING)
    evaluator.evaluate()
    [alert] = alerts("execution_failed", "open")  # deduped: still one, now counting two
    assert alert.occurrences == 2


def test_a_resolved_failure_alert_stays_resolved_until_a_new_failure(run_graph):
    run_graph(FAILING)
    evaluator.evaluate()
    [alert] = alerts("execution_failed")
    operator = User.objects.create_user("olga")
    services.resolve(alert, operator, "looked at it")
    evaluator.evaluate()
    assert alerts("execution_failed", "open") == []
    run_graph(FAILING)
    evaluator.evaluate()
    assert len(alerts("execution_failed", "open")) == 1


def test_a_failure_alert_resolves_itself_when_its_executions_no_longer_fail(run_graph):
    failed = run_graph(FAILING)
    evaluator.evaluate()
    Execution.objects.filter(pk=failed.pk).update(status="succeeded")  # e.g. an operator retried
    evaluator.evaluate()
    [alert] = alerts("execution_failed")
    assert alert.state == "resolved" and alert.resolved_by == "auto"


def test_queue_backlog_fires_only_after_holding_for_its_duration_then_resolves(db):
    set_rule("queue_backlog", threshold=2, for_s=60)
    ids = [start_execution(StartRequest(definition=OK, queue="background")).pk for _ in range(3)]
    now = timezone.now()
    evaluator.evaluate(now)
    assert alerts("queue_backlog") == []  # holds, but not for 60 s yet
    evaluator.evaluate(now + timedelta(seconds=61))
    [alert] = alerts("queue_backlog", "open")
    assert alert.subject_id == "background" and alert.details["ready"] == 3
    for pk in ids:
        run_until_done(pk)
    evaluator.evaluate(now + timedelta(seconds=62))
    assert alerts("queue_backlog")[0].state == "resolved"


def test_a_queue_nobody_claims_from_raises_a_critical_alert(db):
    execution = start_execution(StartRequest(definition=OK))
    later = timezone.now() + timedelta(seconds=61)
    evaluator.evaluate(later)
    [alert] = alerts("queue_unclaimed", "open")
    assert alert.severity == "critical" and "no worker claims it" in alert.title
    run_until_done(execution.pk)
    evaluator.evaluate(later)
    assert alerts("queue_unclaimed")[0].state == "resolved"


def test_a_workflow_failing_over_ten_percent_raises_the_failure_rate_alert(run_graph, publish):
    set_rule("failure_rate", threshold=0.1)
    for _ in range(2):
        run_graph(FAILING)
    for _ in range(8):
        run_graph(OK)
    evaluator.evaluate()
    assert alerts("failure_rate") == []  # "fine" never fails, "always fails" ran only twice
    for _ in range(8):
        run_graph(FAILING)
    evaluator.evaluate()
    [alert] = alerts("failure_rate", "open")
    assert alert.details["failed"] == alert.details["total"] == 10


def test_a_node_running_far_past_its_usual_time_is_stuck(run_graph):
    done = run_graph(OK)
    run = NodeRun.objects.get(execution=done)
    started = start_execution(StartRequest(definition=OK))
    long_ago = timezone.now() - timedelta(seconds=120)
    NodeRun.objects.filter(execution=started).update(status="running", started_at=long_ago,
                                                     worker="host:1")
    NodeRun.objects.filter(pk=run.pk).update(duration_ms=5.0)
    evaluator.evaluate()
    [alert] = alerts("node_stuck", "open")
    assert alert.details["node"] == "a" and alert.details["ran_s"] >= 120
    assert alert.execution_id == started.pk
    NodeRun.objects.filter(execution=started).update(status="succeeded")
    evaluator.evaluate()
    assert alerts("node_stuck")[0].state == "resolved"


def test_an_execution_past_its_deadline_raises_an_alert(db):
    execution = start_execution(StartRequest(definition=OK, deadline_s=1))
    Execution.objects.filter(pk=execution.pk).update(deadline=timezone.now() - timedelta(minutes=5))
    evaluator.evaluate(timezone.now())
    evaluator.evaluate(timezone.now() + timedelta(seconds=31))
    [alert] = alerts("deadline_passed", "open")
    assert alert.execution_id == execution.pk


def test_a_hot_worker_host_raises_cpu_and_memory_alerts(db):
    set_rule("host_cpu", for_s=0)
    set_rule("host_memory", for_s=0)
    HostSample.objects.create(host="w1", at=timezone.now(), cpu_percent=97.0,
                              memory_percent=91.0, memory_used_mb=900.0)
    evaluator.evaluate()
    assert [a.subject_id for a in alerts("host_cpu", "open")] == ["w1"]
    assert [a.subject_id for a in alerts("host_memory", "open")] == ["w1"]
    HostSample.objects.create(host="w1", at=timezone.now() + timedelta(seconds=1),
                              cpu_percent=20.0, memory_percent=30.0, memory_used_mb=300.0)
    evaluator.evaluate()
    assert alerts("host_cpu")[0].state == "resolved"


def test_a_disabled_rule_fires_nothing_and_resolves_its_alerts(run_graph):
    run_graph(FAILING)
    evaluator.evaluate()
    set_rule("execution_failed", enabled=False)
    evaluator.evaluate()
    assert alerts("execution_failed")[0].state == "resolved"


def test_operators_acknowledge_assign_comment_and_resolve_with_a_history(run_graph):
    run_graph(FAILING)
    evaluator.evaluate()
    [alert] = alerts("execution_failed")
    olga = User.objects.create_user("olga")
    services.acknowledge(alert, olga, "on it")
    services.assign(alert, olga, olga)
    services.comment(alert, olga, "card provider was down")
    services.resolve(alert, olga)
    history = [(n.author, n.action) for n in alert.notes.all()]
    assert history == [("auto", "opened"), ("olga", "acknowledged"), ("olga", "assigned"),
                       ("olga", "comment"), ("olga", "resolved")]
    with pytest.raises(Conflict, match="resolved"):
        services.acknowledge(alert, olga)
    with pytest.raises(Conflict, match="needs text"):
        services.comment(alert, olga, "  ")


def test_a_viewer_sees_the_inbox_but_its_actions_are_not_offered(client, run_graph):
    run_graph(FAILING)
    evaluator.evaluate()
    viewer = User.objects.create_user("vera", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_alert"))
    client.force_login(viewer)
    page = client.get("/admin/operations/alert/")
    assert page.status_code == 200 and b"failed and need an operator" in page.content
    assert b"Acknowledge selected" not in page.content
    alert = Alert.objects.get()
    response = client.post("/admin/operations/alert/",
                           {"action": "resolve", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert alert.state == "open"
    assert response.status_code in (200, 302)

    operator = User.objects.create_user("otto", password="pw", is_staff=True)
    operator.user_permissions.add(*Permission.objects.filter(
        codename__in=["view_alert", "handle_alert"]))
    client.force_login(operator)
    client.post("/admin/operations/alert/", {"action": "resolve",
                                             "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_by == "otto"


def test_a_node_past_its_declared_expected_duration_is_stuck_without_history(db, settings):
    settings.BRAID_ALERT_RULES = {"node_stuck": {"min_s": 1.0}}
    spec = {"name": "declared", "nodes": [{"id": "slow", "type": "noop", "expected_s": 2}],
            "edges": []}
    started = start_execution(StartRequest(definition=spec))
    NodeRun.objects.filter(execution=started).update(
        status="running", worker="host:7", started_at=timezone.now() - timedelta(seconds=5))
    evaluator.evaluate()
    [alert] = alerts("node_stuck", "open")
    assert alert.details["expected_s"] == 2.0 and "expected at most 2 s" in alert.title
