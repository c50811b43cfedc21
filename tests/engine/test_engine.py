"""The engine end to end, in this process: start → drain → ticker → finished.

These run on SQLite in `make test` and on PostgreSQL in CI's second pass.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.engine import maintenance, protocol
from apps.engine.control import cancel_execution
from apps.engine.errors import Conflict, InputInvalid
from apps.engine.models import Execution, ExecutionEvent, NodeRun
from apps.engine.start import StartRequest, start_execution, start_many
from apps.workflows.errors import DefinitionInvalid
from tests.conftest import load_example, run_until_done

pytestmark = pytest.mark.django_db(transaction=True)


def chain(*nodes, edges=None, **extra):
    ids = [n["id"] for n in nodes]
    if edges is None:
        edges = [{"from": a, "to": b} for a, b in zip(ids, ids[1:], strict=False)]
    return {"name": "test", "nodes": list(nodes), "edges": edges, **extra}


def runs(execution, node_id=None):
    qs = NodeRun.objects.filter(execution=execution).order_by("id")
    if node_id:
        qs = qs.filter(node_id=node_id)
    return list(qs)


def test_three_steps_succeed_with_output_and_gap_free_events(run_graph):
    execution = run_graph(load_example("three_steps"), input={"who": "ann"})

    assert execution.status == "succeeded"
    assert execution.output == {"step": 3, "who": "ann"}
    assert (execution.completed_nodes, execution.total_nodes) == (3, 3)
    seqs = list(ExecutionEvent.objects.filter(execution=execution).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    types = list(execution.events.values_list("type", flat=True))
    assert types[0] == "execution.created" and types[-1] == "execution.succeeded"
    assert types.count("node.succeeded") == 3


def test_fan_out_fan_in_join_runs_once_after_every_branch(run_graph):
    branches = [{"id": f"b{i}", "type": "noop", "config": {"output": {"n": i}}}
                for i in range(10)]
    spec = {
        "name": "fan",
        "nodes": [{"id": "start", "type": "noop"}, *branches,
                  {"id": "join", "type": "transform", "config": {"output": {
                      "total": " + ".join(f"nodes.b{i}.output.n" for i in range(10))}}}],
        "edges": [{"from": "start", "to": f"b{i}"} for i in range(10)]
        + [{"from": f"b{i}", "to": "join"} for i in range(10)],
    }
    execution = run_graph(spec)

    assert execution.status == "succeeded"
    assert execution.output == {"join": {"total": 45}}
    assert len(runs(execution, "join")) == 1


def test_condition_takes_one_branch_and_skips_propagate(run_graph):
    spec = chain(
        {"id": "start", "type": "noop"},
        {"id": "big", "type": "noop", "config": {"output": {"path": "big"}}},
        {"id": "big_2", "type": "noop"},
        {"id": "small", "type": "noop", "config": {"output": {"path": "small"}}},
        {"id": "end", "type": "noop", "config": {"output": {"done": True}}},
        edges=[{"from": "start", "to": "big", "when": "input.amount > 100"},
               {"from": "big", "to": "big_2"},
               {"from": "start", "to": "small", "when": "input.amount <= 100"},
               {"from": "big_2", "to": "end"}, {"from": "small", "to": "end"}],
    )
    execution = run_graph(spec, input={"amount": 5})

    status = {r.node_id: r.status for r in runs(execution)}
    assert execution.status == "succeeded"
    assert status == {"start": "succeeded", "small": "succeeded", "big": "skipped",
                      "big_2": "skipped", "end": "succeeded"}


def test_retry_then_succeed_records_each_attempt(run_graph):
    spec = chain({"id": "flaky", "type": "fail",
                  "config": {"times": 2, "error_class": "resource"},
                  "retry": {"max_attempts": 3, "backoff_s": 0.05, "jitter": False}})
    execution = run_graph(spec)

    attempts = runs(execution, "flaky")
    assert execution.status == "succeeded"
    assert [(r.attempt, r.status, r.error_class) for r in attempts] == [
        (1, "failed", "resource"), (2, "failed", "resource"), (3, "succeeded", "")]
    # Back-off was scheduled (both times are on the engine's clock; created_at is not).
    assert attempts[0].finished_at < attempts[1].not_before


def test_error_class_outside_retry_on_fails_at_once(run_graph):
    spec = chain({"id": "bad", "type": "fail", "config": {"error_class": "execution"},
                  "retry": {"max_attempts": 5, "retry_on": ["resource"]}})
    execution = run_graph(spec)

    assert execution.status == "failed"
    assert len(runs(execution, "bad")) == 1
    assert execution.error["class"] == "execution" and execution.error["node"] == "bad"


def test_timeout_is_classified_as_timeout(run_graph):
    spec = chain({"id": "slow", "type": "python", "timeout_s": 0.2,
                  "config": {"function": "braid.sleep", "args": {"seconds": 2}}})
    execution = run_graph(spec)

    (attempt,) = runs(execution, "slow")
    assert execution.status == "failed"
    assert attempt.error_class == "timeout"
    assert execution.error["class"] == "timeout"


def test_fallback_takes_over_the_failed_nodes_outgoing_edges(run_graph):
    spec = {
        "name": "fallback",
        "nodes": [{"id": "primary", "type": "fail", "fallback": "backup"},
                  {"id": "backup", "type": "noop", "config": {"output": {"from": "backup"}}},
                  {"id": "after", "type": "transform",
                   "config": {"output": {"from": "nodes.backup.output.from",
                                         "primary_ran": "has(nodes.primary)",
                                         "primary_output": "has(nodes.primary.output)"}}},
                  {"id": "done", "type": "transform", "config": {"output": {"ok": "true"}}}],
        "edges": [{"from": "primary", "to": "after"}, {"from": "after", "to": "done"}],
    }
    execution = run_graph(spec)

    status = {r.node_id: r.status for r in runs(execution)}
    assert execution.status == "succeeded"
    assert status == {"primary": "failed", "backup": "succeeded", "after": "succeeded",
                      "done": "succeeded"}
    (after,) = runs(execution, "after")
    assert after.output == {"from": "backup", "primary_ran": True, "primary_output": False}
    started = [e.payload["node"] for e in execution.events.order_by("seq")
               if e.type == "node.started"]
    assert started.index("backup") < started.index("after")  # after waited for the fallback


def test_successors_of_a_node_whose_fallback_failed_too_never_run(run_graph):
    spec = {"name": "fallback fails",
            "nodes": [{"id": "primary", "type": "fail", "fallback": "backup"},
                      {"id": "backup", "type": "fail"},
                      {"id": "after", "type": "noop"}],
            "edges": [{"from": "primary", "to": "after"}]}
    execution = run_graph(spec)

    assert execution.status == "failed"
    assert execution.error["node"] == "backup"
    assert {r.node_id: r.status for r in runs(execution)} == {"primary": "failed",
                                                              "backup": "failed"}


def test_fallback_is_skipped_when_node_succeeds(run_graph):
    spec = {"name": "fb", "nodes": [{"id": "primary", "type": "noop", "fallback": "backup"},
                                    {"id": "backup", "type": "noop"}], "edges": []}
    execution = run_graph(spec)

    assert execution.status == "succeeded"
    assert {r.node_id: r.status for r in runs(execution)} == {
        "primary": "succeeded", "backup": "skipped"}


def test_failure_compensates_completed_steps_in_reverse_order(run_graph):
    spec = chain(
        {"id": "reserve", "type": "noop", "compensate": "release"},
        {"id": "charge", "type": "noop", "compensate": "refund"},
        {"id": "ship", "type": "fail", "config": {"message": "warehouse down"}},
        {"id": "release", "type": "noop", "config": {"output": {"released": True}}},
        {"id": "refund", "type": "noop", "config": {"output": {"refunded": True}}},
        edges=[{"from": "reserve", "to": "charge"}, {"from": "charge", "to": "ship"}],
    )
    execution = run_graph(spec)

    compensations = [r.node_id for r in runs(execution) if r.compensation]
    assert execution.status == "compensated"
    assert compensations == ["refund", "release"]
    assert execution.error["node"] == "ship" and "warehouse down" in execution.error["message"]
    types = list(execution.events.values_list("type", flat=True))
    assert "execution.compensating" in types and types[-1] == "execution.compensated"


def test_failed_compensation_fails_the_execution(run_graph):
    spec = chain(
        {"id": "reserve", "type": "noop", "compensate": "release"},
        {"id": "ship", "type": "fail"},
        {"id": "release", "type": "fail", "config": {"message": "cannot release"}},
        edges=[{"from": "reserve", "to": "ship"}],
    )
    execution = run_graph(spec)

    assert execution.status == "failed"
    assert execution.error["compensation"]["node"] == "release"


def test_delay_parks_without_a_worker_then_the_ticker_completes_it(db):
    spec = chain({"id": "wait", "type": "delay", "config": {"seconds": 0.3}},
                 {"id": "after", "type": "noop"})
    execution = start_execution(StartRequest(definition=spec))
    from apps.engine.worker import drain

    drain(budget_s=1)  # returns as soon as nothing is ready: the delay holds no worker
    parked = NodeRun.objects.get(execution=execution, node_id="wait")
    assert parked.status == "waiting" and parked.wake_at > timezone.now()
    assert Execution.objects.get(pk=execution.pk).status == "waiting"

    execution = run_until_done(execution.pk)
    assert execution.status == "succeeded"
    assert runs(execution, "wait")[0].output == {"waited_s": 0.3}


def test_cancel_marks_pending_nodes_cancelled(db):
    spec = chain({"id": "a", "type": "noop"}, {"id": "b", "type": "noop"})
    execution = start_execution(StartRequest(definition=spec))

    cancelled = cancel_execution(execution.pk, reason="not needed")

    assert cancelled.status == "cancelled"
    assert [(r.node_id, r.status) for r in runs(execution)] == [("a", "cancelled")]
    with pytest.raises(Conflict):
        cancel_execution(execution.pk)
    assert protocol.claim("w", 10, 5).claims == []


ECHO = {"type": "python", "config": {"function": "braid.echo"}}


def test_cancel_drops_the_result_of_a_running_node(db):
    spec = chain({"id": "a", **ECHO}, {"id": "b", "type": "noop"})
    execution = start_execution(StartRequest(definition=spec))
    (claim,) = protocol.claim("w1", 10, 30).claims

    cancel_execution(execution.pk)
    late = protocol.Result(claim.run_id, claim.lease_token, claim.execution_id, "succeeded",
                           output={})
    assert protocol.complete([late], "w1", 10, 30) == []
    assert protocol.heartbeat("w1", {claim.run_id: claim.lease_token}, 30) == {claim.run_id}

    assert Execution.objects.get(pk=execution.pk).status == "cancelled"
    assert [(r.node_id, r.status) for r in runs(execution)] == [("a", "cancelled")]


def test_expired_lease_is_requeued_as_a_new_attempt_and_late_result_dropped(db):
    spec = chain({"id": "a", **ECHO})
    execution = start_execution(StartRequest(definition=spec))
    (claim,) = protocol.claim("dead-worker", 10, 30).claims
    NodeRun.objects.filter(pk=claim.run_id).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1))

    assert maintenance.reap_expired_leases() == 1
    late = protocol.Result(claim.run_id, claim.lease_token, claim.execution_id, "succeeded",
                           output={"late": True})
    protocol.complete([late], "dead-worker", 10, 30)

    execution = run_until_done(execution.pk)
    first, second = runs(execution, "a")
    assert (first.attempt, first.status, first.error_class) == (1, "failed", "resource")
    assert "lease expired" in first.error_message
    assert (second.attempt, second.status) == (2, "succeeded")
    assert "late" not in second.output


def test_deadline_times_out_the_execution(db):
    spec = chain({"id": "wait", "type": "delay", "config": {"seconds": 30}})
    execution = start_execution(StartRequest(definition=spec, deadline_s=0.2))
    from apps.engine.worker import drain

    drain(budget_s=1)
    execution = run_until_done(execution.pk, timeout=5)

    assert execution.status == "failed"
    assert execution.error["class"] == "timeout"
    assert runs(execution, "wait")[0].status == "cancelled"


def test_same_idempotency_key_returns_the_same_execution(db):
    spec = chain({"id": "a", "type": "noop"})
    first = start_execution(StartRequest(definition=spec, idempotency_key="order-42"))
    again = start_execution(StartRequest(definition=spec, idempotency_key="order-42"))

    assert first.pk == again.pk
    assert Execution.objects.count() == 1


def test_input_is_checked_against_input_schema(publish):
    spec = chain({"id": "a", "type": "noop"}, input_schema={
        "type": "object", "required": ["amount"],
        "properties": {"amount": {"type": "number"}}})
    publish("orders", spec)

    with pytest.raises(InputInvalid) as err:
        start_execution(StartRequest(workflow="orders", input={"amount": "ten"}))
    assert err.value.problems[0]["where"] == "input/amount"
    assert Execution.objects.count() == 0


def test_invalid_definition_is_rejected_with_every_problem(db):
    spec = {"name": "broken",
            "nodes": [{"id": "a", "type": "noop"}, {"id": "a", "type": "noop"},
                      {"id": "b", "type": "nope"}, {"id": "c", "type": "transform"}],
            "edges": [{"from": "a", "to": "ghost"}, {"from": "a", "to": "c", "when": "input.x >"}]}

    with pytest.raises(DefinitionInvalid) as err:
        start_execution(StartRequest(definition=spec))
    messages = " | ".join(p["message"] for p in err.value.problems)
    for fragment in ("duplicate id", "unknown type 'nope'", "dangling", "bad condition",
                     "'output' is a required property"):
        assert fragment in messages
    assert Execution.objects.count() == 0


def test_start_by_slug_pins_the_current_version(publish):
    publish("pinned", chain({"id": "a", "type": "noop", "config": {"output": {"v": 1}}}))
    execution = start_execution(StartRequest(workflow="pinned"))
    publish("pinned", chain({"id": "a", "type": "noop", "config": {"output": {"v": 2}}}))

    assert run_until_done(execution.pk).output == {"a": {"v": 1}}
    newer = start_execution(StartRequest(workflow="pinned"))
    assert run_until_done(newer.pk).output == {"a": {"v": 2}}


def test_bulk_start_runs_every_execution(db):
    spec = load_example("three_steps")
    started = start_many([StartRequest(definition=spec, input={"who": i}) for i in range(30)])
    for execution in started:
        run_until_done(execution.pk)

    outputs = sorted(e.output["who"] for e in Execution.objects.all())
    assert outputs == list(range(30))


def test_handler_output_that_is_not_json_fails_the_node(run_graph):
    from apps.nodes.registry import register_function

    @register_function("tests.not_json")
    def not_json(ctx):
        return {"when": object()}

    execution = run_graph(chain({"id": "a", "type": "python",
                                 "config": {"function": "tests.not_json"}}))
    assert execution.status == "failed"
    assert "not JSON" in execution.error["message"]


def test_handler_sees_input_upstream_outputs_and_idempotency_key(run_graph):
    from apps.nodes.registry import register_function

    @register_function("tests.capture")
    def capture(ctx):
        return {"key": ctx.idempotency_key, "up": ctx.nodes["first"]["output"],
                "input": ctx.input}

    execution = run_graph(chain({"id": "first", "type": "noop", "config": {"output": {"x": 1}}},
                                {"id": "second", "type": "python",
                                 "config": {"function": "tests.capture"}}), input={"q": 2})
    out = execution.output["second"]
    assert out == {"key": f"{execution.pk}:second:1", "up": {"x": 1}, "input": {"q": 2}}


def test_rerun_after_a_lost_worker_keeps_its_key_and_costs_no_retry(db):
    from apps.nodes.registry import register_function

    seen = []

    @register_function("tests.record_key")
    def record_key(ctx):
        seen.append((ctx.idempotency_key, ctx.attempt))
        return {}

    spec = chain({"id": "a", "type": "python", "config": {"function": "tests.record_key"},
                  "retry": {"max_attempts": 1}})
    execution = start_execution(StartRequest(definition=spec))
    assert len(protocol.claim("dead-worker", 10, 30).claims) == 1
    NodeRun.objects.filter(execution=execution).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1))
    maintenance.reap_expired_leases()

    execution = run_until_done(execution.pk)
    assert execution.status == "succeeded"  # max_attempts 1, yet the crash did not fail it
    assert seen == [(f"{execution.pk}:a:1", 1)]
    assert [r.attempt for r in runs(execution, "a")] == [1, 2]


def test_transform_reads_status_of_nodes_that_ran_and_has_is_false_for_a_skipped_one(
        run_graph):
    spec = chain({"id": "a", "type": "noop", "fallback": "b"}, {"id": "b", "type": "noop"},
                 {"id": "c", "type": "transform",
                  "config": {"output": {"a": "nodes.a.status",
                                        "b": "has(nodes.b) ? nodes.b.status : 'did not run'"}}},
                 edges=[{"from": "a", "to": "c"}, {"from": "b", "to": "c"}])
    execution = run_graph(spec)

    assert {r.node_id: r.status for r in runs(execution)}["b"] == "skipped"
    assert execution.output == {"c": {"a": "succeeded", "b": "did not run"}}


def test_compensation_runs_emit_compensation_events(run_graph):
    spec = chain({"id": "a", "type": "noop", "compensate": "undo"}, {"id": "b", "type": "fail"},
                 {"id": "undo", "type": "noop"}, edges=[{"from": "a", "to": "b"}])
    execution = run_graph(spec)

    types = list(execution.events.values_list("type", flat=True))
    assert execution.status == "compensated"
    assert types.index("compensation.started") < types.index("compensation.succeeded")


def test_a_chain_of_pure_nodes_finishes_in_the_claim_that_leased_it(db):
    execution = start_execution(StartRequest(definition=load_example("three_steps"),
                                             input={"who": "x"}))

    got = protocol.claim("w", 10, 30)

    assert (got.claims, got.fused) == ([], 3)
    execution.refresh_from_db()
    assert execution.status == "succeeded" and execution.output == {"step": 3, "who": "x"}
    types = list(execution.events.values_list("type", flat=True))
    assert types.count("node.started") == types.count("node.succeeded") == 3


def test_a_fused_chain_is_stamped_as_it_ran_not_when_its_claim_began(db):
    execution = start_execution(StartRequest(definition=load_example("three_steps"),
                                             input={"who": "x"}))

    protocol.claim("w", 10, 30)

    execution.refresh_from_db()
    a, b, c = (r.finished_at for r in runs(execution))
    # The entry node ran first, at the claim's time; each later one in a round after it.
    assert a < b < c == execution.finished_at
    assert execution.finished_at > execution.started_at


def test_pure_successors_of_a_side_effect_node_are_fused_into_its_completion(db):
    spec = chain({"id": "a", **ECHO}, {"id": "b", "type": "noop"}, {"id": "c", "type": "noop"})
    execution = start_execution(StartRequest(definition=spec))
    (claim,) = protocol.claim("w", 10, 30).claims
    result = protocol.Result(claim.run_id, claim.lease_token, claim.execution_id, "succeeded",
                             output={"ok": 1})

    assert protocol.complete([result], "w", 10, 30) == []
    execution.refresh_from_db()
    assert execution.status == "succeeded"
    assert [(r.node_id, r.status) for r in runs(execution)] == [
        ("a", "succeeded"), ("b", "succeeded"), ("c", "succeeded")]
