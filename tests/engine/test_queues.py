"""Queues: realtime before bulk, priority within a queue, pause holds and resume releases."""

import pytest
from django.conf import settings

from apps.engine import protocol
from apps.engine.errors import InputInvalid
from apps.engine.models import Execution, NodeRun
from apps.engine.queues import pause_queue, queue_stats, resume_queue
from apps.engine.start import StartRequest, start_execution, start_many
from tests.conftest import run_until_done

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = {"name": "echo", "nodes": [{"id": "a", "type": "python",
                                   "config": {"function": "braid.echo"}}], "edges": []}


def start(queue="default", priority=5, n=1, **kwargs):
    return start_many([StartRequest(definition=ECHO, queue=queue, priority=priority,
                                    **kwargs) for _ in range(n)])


def claimed_queues(limit):
    return [Execution.objects.get(pk=c.execution_id).queue
            for c in protocol.claim("w", limit, 30).claims]


def test_realtime_is_claimed_before_a_background_backlog():
    start("background", n=20)
    start("default", n=3)
    start("realtime", n=2)

    assert claimed_queues(4) == ["realtime", "realtime", "default", "default"]


def test_higher_priority_first_within_a_queue_then_age():
    low = start(priority=1)[0]
    high = start(priority=9)[0]
    mid_a, mid_b = start(priority=5, n=2)

    order = [c.execution_id for c in protocol.claim("w", 4, 30).claims]
    assert order == [str(e.pk) for e in (high, mid_a, mid_b, low)]


def test_a_paused_queue_holds_its_work_and_resume_releases_it():
    held = start("background", n=3)
    pause_queue("background")

    assert protocol.claim("w", 10, 30).claims == []
    assert NodeRun.objects.filter(status="ready").count() == 3

    resume_queue("background")
    for execution in held:
        assert run_until_done(execution.pk).status == "succeeded"


def test_pausing_holds_the_next_step_of_a_running_execution():
    spec = {"name": "two", "nodes": [
        {"id": "a", "type": "python", "config": {"function": "braid.echo"}},
        {"id": "b", "type": "python", "config": {"function": "braid.echo"}}],
        "edges": [{"from": "a", "to": "b"}]}
    execution = start_execution(StartRequest(definition=spec, queue="background"))
    (claim,) = protocol.claim("w", 10, 30).claims
    pause_queue("background")

    done = protocol.Result(claim.run_id, claim.lease_token, claim.execution_id, "succeeded",
                           output={})
    assert protocol.complete([done], "w", 10, 30) == []  # b is not leased
    assert NodeRun.objects.get(execution=execution, node_id="b").status == "ready"
    resume_queue("background")
    assert run_until_done(execution.pk).status == "succeeded"


def test_unknown_queue_is_refused():
    with pytest.raises(InputInvalid) as err:
        start_execution(StartRequest(definition=ECHO, queue="nope"))
    assert "no queue 'nope'" in err.value.message


def test_queue_stats_count_ready_running_and_finished():
    start("background", n=2)
    start("realtime", n=1)
    protocol.claim("w", 1, 30)  # the realtime one is running now
    pause_queue("background")

    stats = {s["queue"]: s for s in queue_stats()}
    assert set(stats) == set(settings.BRAID_QUEUES)
    assert (stats["background"]["ready"], stats["background"]["paused"]) == (2, True)
    assert stats["background"]["oldest_ready_s"] >= 0
    assert (stats["realtime"]["running"], stats["realtime"]["ready"]) == (1, 0)
    assert stats["realtime"]["claims_per_s"] > 0


def test_admin_shows_queue_figures_and_pauses_a_queue(admin_client):
    start("background", n=2)

    page = admin_client.get("/admin/engine/queue/").content.decode()
    assert "realtime" in page and "background" in page and "Claims/s" in page

    done = admin_client.post("/admin/engine/queue/", {
        "action": "pause_selected", "_selected_action": ["background"]}, follow=True)
    assert b"Paused background." in done.content
    assert protocol.claim("w", 10, 30).claims == []


def test_queue_policy_gives_defaults_to_nodes_that_set_none():
    from apps.engine.worker import drain

    spec = {"name": "flaky", "nodes": [{"id": "f", "type": "fail",
                                        "config": {"times": 1, "error_class": "resource"}}],
            "edges": []}
    own = {"name": "own", "nodes": [{"id": "f", "type": "fail", "retry": {"max_attempts": 1},
                                     "config": {"times": 1, "error_class": "resource"}}],
           "edges": []}
    background = start_execution(StartRequest(definition=spec, queue="background"))
    default = start_execution(StartRequest(definition=spec))
    explicit = start_execution(StartRequest(definition=own, queue="background"))
    drain(budget_s=1)

    retry = NodeRun.objects.get(execution=background, attempt=2)  # the queue's policy
    assert retry.status == "ready" and retry.not_before is not None
    assert Execution.objects.get(pk=default.pk).status == "failed"  # no retry by default
    assert Execution.objects.get(pk=explicit.pk).status == "failed"  # its own policy wins

    start_execution(StartRequest(definition=ECHO, queue="realtime"))
    (claim,) = protocol.claim("w", 10, 30).claims
    assert claim.timeout_s == settings.BRAID_QUEUES["realtime"]["timeout_s"]


def test_bulk_queues_take_small_bites_only_while_urgent_work_is_around():
    start("background", n=10)
    assert len(protocol.claim("w", 32, 30).claims) == 10  # alone: a full bite

    start("background", n=10)
    start("realtime", n=1)
    queues = claimed_queues(32)

    bite = settings.BRAID_QUEUES["background"]["claim_batch"]
    assert queues == ["realtime"] + ["background"] * bite


def test_retention_deletes_old_finished_executions_of_each_queue():
    from datetime import timedelta

    from django.utils import timezone

    from apps.engine.maintenance import purge_expired
    from apps.engine.models import ExecutionEvent

    old_rt, fresh_rt, running_rt = start("realtime", n=3)
    (old_default,) = start("default")
    now = timezone.now()
    # An execution is created before it finishes (retention finds them by created_at).
    Execution.objects.filter(pk__in=[old_rt.pk, old_default.pk]).update(
        status="succeeded", created_at=now - timedelta(days=8),
        finished_at=now - timedelta(days=8))
    Execution.objects.filter(pk=fresh_rt.pk).update(status="succeeded",
                                                    created_at=now - timedelta(days=6),
                                                    finished_at=now - timedelta(days=6))
    Execution.objects.filter(pk=running_rt.pk).update(status="running",
                                                      created_at=now - timedelta(days=60))

    assert purge_expired() == 1  # realtime keeps 7 days, default 30

    assert not Execution.objects.filter(pk=old_rt.pk).exists()
    assert not NodeRun.objects.filter(execution_id=old_rt.pk).exists()
    assert not ExecutionEvent.objects.filter(execution_id=old_rt.pk).exists()
    assert Execution.objects.filter(pk__in=[fresh_rt.pk, running_rt.pk,
                                            old_default.pk]).count() == 3


def test_a_queue_takes_at_most_its_worker_share_of_a_workers_slots():
    import threading
    import time

    from django.test import override_settings

    from apps.engine.worker import drain
    from apps.nodes.registry import register_function

    lock, running, peak = threading.Lock(), [0], [0]

    @register_function("tests.concurrency_probe")
    def probe(ctx):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.1)
        with lock:
            running[0] -= 1
        return {}

    spec = {"name": "probe", "nodes": [{"id": "p", "type": "python",
                                        "config": {"function": "tests.concurrency_probe"}}],
            "edges": []}
    started = start_many([StartRequest(definition=spec, queue="background") for _ in range(8)])
    queues = {**settings.BRAID_QUEUES, "background": {
        **settings.BRAID_QUEUES["background"], "worker_share": 0.5}}
    with override_settings(BRAID={**settings.BRAID, "MAX_INFLIGHT": 4},
                           BRAID_QUEUES=queues):
        drain(budget_s=10)

    assert peak[0] == 2  # half of 4 slots, though 4 were free
    assert all(Execution.objects.get(pk=e.pk).status == "succeeded" for e in started)


def test_every_queue_gives_nodes_a_default_timeout_well_below_django_q2s():
    q2_timeout = settings.Q_CLUSTER["timeout"]
    for name, policy in settings.BRAID_QUEUES.items():
        start_execution(StartRequest(definition=ECHO, queue=name))
        (claim,) = protocol.claim("w", 10, 30).claims
        assert claim.timeout_s == policy["timeout_s"]
        assert claim.timeout_s <= q2_timeout / 2, name
