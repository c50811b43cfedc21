"""An operator steps in: each intervention works from the states that allow it, is
refused with a clear error from those that do not, and is audited."""

import pytest
from django.contrib.auth.models import User

from apps.engine.errors import Conflict, InputInvalid, NotFound
from apps.engine.models import Execution, ExecutionEvent, NodeRun
from apps.engine.start import StartRequest, start_execution
from apps.operations import interventions as ops
from tests.conftest import run_until_done

pytestmark = pytest.mark.django_db(transaction=True)

# a → b → c, where b fails every time (no retry) unless its input says otherwise.
CHAIN = {
    "name": "chain",
    "nodes": [
        {"id": "a", "type": "transform", "config": {"output": {"n": "input.n + 1"}}},
        {"id": "b", "type": "fail", "config": {"times": 99},
         "output_schema": {"type": "object", "required": ["n"],
                           "properties": {"n": {"type": "integer"}}}},
        {"id": "c", "type": "transform", "config": {"output": {"n": "nodes.b.output.n * 10"}}},
    ],
    "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}],
    "output": {"n": "nodes.c.output.n"},
}
# a → b, where b fails once then succeeds: a retry by hand succeeds.
FLAKY = {
    "name": "flaky",
    "nodes": [{"id": "a", "type": "noop", "config": {"output": {"ok": True}}},
              {"id": "b", "type": "fail", "config": {"times": 1}}],
    "edges": [{"from": "a", "to": "b"}],
}
SAGA = {
    "name": "saga",
    "nodes": [
        {"id": "reserve", "type": "noop", "config": {"output": {"r": 1}}, "compensate": "release"},
        {"id": "charge", "type": "fail", "config": {"times": 99}},
        {"id": "release", "type": "noop", "config": {"output": {"released": True}}},
    ],
    "edges": [{"from": "reserve", "to": "charge"}],
}
WAIT = {"name": "waits", "nodes": [{"id": "first", "type": "noop"},
                                   {"id": "nap", "type": "delay", "config": {"seconds": 60}},
                                   {"id": "after", "type": "noop"}],
        "edges": [{"from": "first", "to": "nap"}, {"from": "nap", "to": "after"}]}


@pytest.fixture
def olga(db):
    return User.objects.create_user("olga")


def failed(spec, **input_):
    execution = start_execution(StartRequest(definition=spec, input=input_))
    done = run_until_done(execution.pk)
    assert done.status == "failed", done.status
    return done


def audit(execution, action):
    return ExecutionEvent.objects.filter(execution=execution, type=f"operator.{action}").get()


def runs_of(execution, node):
    return list(NodeRun.objects.filter(execution=execution, node_id=node).order_by("attempt"))


def test_retry_runs_a_failed_node_again_and_the_execution_carries_on(olga):
    execution = failed(FLAKY)
    ops.retry_node(execution.pk, "b", user=olga, reason="flaky card provider")
    done = run_until_done(execution.pk)
    assert done.status == "succeeded"
    assert [r.status for r in runs_of(done, "b")] == ["failed", "succeeded"]
    event = audit(done, "retried")
    assert event.payload == {"by": "olga", "reason": "flaky card provider", "node": "b",
                             "input_edited": False}


def test_retry_with_edited_input_gives_that_attempt_its_own_input(olga):
    spec = {"name": "echo", "nodes": [
        {"id": "e", "type": "python", "config": {"function": "braid.charge_card"}}], "edges": []}
    execution = failed(spec, amount=5, card_declined=True)
    ops.retry_node(execution.pk, "e", user=olga, node_input={"amount": 5})
    done = run_until_done(execution.pk)
    assert done.status == "succeeded"
    assert runs_of(done, "e")[-1].output["amount"] == 5
    assert done.input == {"amount": 5, "card_declined": True}  # the execution's own is kept


def test_retry_is_refused_for_a_node_that_did_not_fail_or_an_execution_that_did_not(olga):
    execution = failed(CHAIN, n=1)
    with pytest.raises(Conflict, match="node a is succeeded"):
        ops.retry_node(execution.pk, "a", user=olga)
    with pytest.raises(NotFound, match="has no node 'zz'"):
        ops.retry_node(execution.pk, "zz", user=olga)
    running = start_execution(StartRequest(definition=WAIT))
    with pytest.raises(Conflict, match="it is pending"):
        ops.retry_node(running.pk, "first", user=olga)
    with pytest.raises(InputInvalid, match="JSON object"):
        ops.retry_node(execution.pk, "b", user=olga, node_input=[1])
    assert not ExecutionEvent.objects.filter(type__startswith="operator.").exists()


def test_skip_with_a_supplied_output_feeds_the_downstream_nodes(olga):
    execution = failed(CHAIN, n=1)
    ops.skip_node(execution.pk, "b", {"n": 7}, user=olga, reason="paid by phone")
    done = run_until_done(execution.pk)
    assert done.status == "succeeded" and done.output == {"n": 70}
    b = runs_of(done, "b")[-1]
    assert (b.status, b.output) == ("succeeded", {"n": 7})
    supplied = ExecutionEvent.objects.get(execution=done, type="node.succeeded",
                                          payload__node="b")
    assert supplied.payload["supplied_by"] == "olga"
    assert audit(done, "skipped").payload["reason"] == "paid by phone"


def test_skip_refuses_an_output_its_schema_does_not_allow_and_changes_nothing(olga):
    execution = failed(CHAIN, n=1)
    with pytest.raises(InputInvalid, match="n: 'seven' is not of type 'integer'"):
        ops.skip_node(execution.pk, "b", {"n": "seven"}, user=olga)
    with pytest.raises(InputInvalid, match="nested more than"):
        ops.skip_node(execution.pk, "b", _deep(100), user=olga)
    with pytest.raises(Conflict, match="node a already succeeded"):
        ops.skip_node(execution.pk, "a", {"n": 1}, user=olga)
    assert Execution.objects.get(pk=execution.pk).status == "failed"


def _deep(levels):
    value = {}
    for _ in range(levels):
        value = {"n": value}
    return value


def test_skip_a_waiting_node_of_a_running_execution_moves_it_on(olga):
    execution = start_execution(StartRequest(definition=WAIT))
    from apps.engine.worker import drain

    drain(budget_s=1)
    assert runs_of(execution, "nap")[-1].status == "waiting"
    ops.skip_node(execution.pk, "nap", {"slept": False}, user=olga)
    assert run_until_done(execution.pk).status == "succeeded"


def test_resume_runs_what_failed_or_was_cancelled_and_keeps_what_succeeded(olga):
    execution = failed(FLAKY)
    ops.resume(execution.pk, user=olga)
    done = run_until_done(execution.pk)
    assert done.status == "succeeded"
    assert len(runs_of(done, "a")) == 1  # not run again
    assert audit(done, "resumed").payload["by"] == "olga"
    with pytest.raises(Conflict, match="it is succeeded"):
        ops.resume(done.pk, user=olga)


def test_rerun_from_a_node_reuses_earlier_outputs_on_the_pinned_version(olga):
    original = failed(CHAIN, n=1)
    with pytest.raises(Conflict, match="node b, upstream of c, did not succeed"):
        ops.rerun_from(original.pk, "c", user=olga)
    rerun = ops.rerun_from(original.pk, "b", user=olga, reason="after the fix")
    assert rerun.pk != original.pk and rerun.version_id == original.version_id
    assert rerun.input == original.input
    a_runs = runs_of(rerun, "a")
    assert [(r.status, r.output) for r in a_runs] == [("succeeded", {"n": 2})]
    assert ExecutionEvent.objects.filter(execution=rerun, type="node.reused").count() == 1
    assert runs_of(rerun, "b")[0].status in ("ready", "running")
    assert audit(original, "rerun").payload["execution"] == str(rerun.pk)
    assert run_until_done(rerun.pk).status == "failed"  # b still fails: same version
    assert len(runs_of(rerun, "a")) == 1


def test_compensate_is_refused_when_done_already_or_when_nothing_can_be_undone(olga):
    execution = start_execution(StartRequest(definition=SAGA))
    done = run_until_done(execution.pk)
    assert done.status == "compensated"  # the saga undid itself
    with pytest.raises(Conflict, match="it is compensated"):
        ops.compensate(done.pk, user=olga)

    no_saga = failed(CHAIN, n=1)
    with pytest.raises(Conflict, match="no completed step with a compensating node"):
        ops.compensate(no_saga.pk, user=olga)


def test_compensate_by_hand_after_an_operator_marked_a_saga_failed(olga):
    spec = {"name": "parked saga", "nodes": [
        {"id": "reserve", "type": "noop", "config": {"output": {"r": 1}},
         "compensate": "release"},
        {"id": "nap", "type": "delay", "config": {"seconds": 60}},
        {"id": "release", "type": "noop", "config": {"output": {"released": True}}}],
        "edges": [{"from": "reserve", "to": "nap"}]}
    execution = start_execution(StartRequest(definition=spec))
    from apps.engine.worker import drain

    drain(budget_s=1)
    assert runs_of(execution, "nap")[-1].status == "waiting"
    ops.mark_failed(execution.pk, user=olga, reason="order withdrawn")
    assert not NodeRun.objects.filter(execution=execution, compensation=True).exists()
    started = ops.compensate(execution.pk, user=olga, reason="release the stock")
    assert started.status == "compensating"
    done = run_until_done(execution.pk)
    assert done.status == "compensated"
    [release] = NodeRun.objects.filter(execution=done, compensation=True)
    assert (release.node_id, release.status) == ("release", "succeeded")
    assert audit(done, "compensation_started").payload["reason"] == "release the stock"
    with pytest.raises(Conflict, match="it is compensated"):
        ops.compensate(execution.pk, user=olga)


def test_mark_failed_stops_an_unfinished_execution_and_is_refused_once_finished(olga):
    execution = start_execution(StartRequest(definition=WAIT))
    marked = ops.mark_failed(execution.pk, user=olga, reason="customer cancelled")
    assert marked.status == "failed"
    assert marked.error["message"] == "marked failed by olga: customer cancelled"
    assert not NodeRun.objects.filter(execution=marked, status__in=["ready", "running"]).exists()
    with pytest.raises(Conflict, match="already failed"):
        ops.mark_failed(execution.pk, user=olga)
    resumed = ops.resume(execution.pk, user=olga)  # a marked-failed execution can resume
    assert resumed.status == "running"


def test_pause_holds_ready_work_without_a_worker_and_unpause_releases_it(olga):
    spec = {"name": "two steps", "nodes": [{"id": "a", "type": "noop"},
                                           {"id": "b", "type": "noop"}],
            "edges": [{"from": "a", "to": "b"}]}
    execution = start_execution(StartRequest(definition=spec))
    ops.pause(execution.pk, user=olga, reason="investigating")
    from apps.engine.diagnosis import why_execution
    from apps.engine.worker import drain

    drain(budget_s=0.5)
    assert [r.status for r in NodeRun.objects.filter(execution=execution)] == ["waiting"]
    assert [r.code for r in why_execution(execution.pk)] == ["paused"]
    with pytest.raises(Conflict, match="already paused"):
        ops.pause(execution.pk, user=olga)
    ops.unpause(execution.pk, user=olga)
    assert run_until_done(execution.pk).status == "succeeded"
    with pytest.raises(Conflict, match="not paused"):
        ops.unpause(execution.pk, user=olga)
    actions = list(ExecutionEvent.objects.filter(execution=execution,
                                                 type__startswith="operator.")
                   .values_list("type", flat=True))
    assert actions == ["operator.paused", "operator.unpaused"]


def test_interventions_on_an_unknown_execution_say_so():
    for call in (lambda: ops.resume("00000000-0000-0000-0000-000000000000"),
                 lambda: ops.pause("not-a-uuid")):
        with pytest.raises(NotFound, match="no execution"):
            call()
