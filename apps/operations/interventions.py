"""An operator steps in: retry, skip with an output, resume, re-run from a node,
compensate, mark failed, pause and unpause.

Each service locks the execution like every other writer (one lock order, no
deadlocks), checks that its state allows the step — else `Conflict` (409 in
the API) saying why — changes runs through the engine's `Batch`, and appends
an `operator.<action>` event (who, why, what) so the audit trail is the event
log. Work it makes ready is woken after commit. An execution keeps its pinned
version through all of them; a re-run is a new execution on the same version.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from apps.engine.errors import Conflict, InputInvalid, NotFound
from apps.engine.models import Execution, NodeRun
from apps.engine.statuses import ACTIVE_RUN, TERMINAL_EXECUTION
from apps.engine.transitions import (
    PAUSED,
    Batch,
    ExecutionState,
    cancel_active,
    finish_execution,
    finish_run,
    load_states,
    lock_executions,
    settle,
    start_compensation,
    update_progress,
)
from apps.engine.wakeup import wake_on_commit
from apps.engine.writelock import write_transaction
from apps.nodes import payloads

STOPPED = frozenset({"failed", "cancelled"})


def _who(user) -> str:
    return user.get_username() if user is not None and hasattr(user, "get_username") else \
        (str(user) if user else "system")


@contextmanager
def _locked(execution_id, user, action: str, reason: str, **details) -> Iterator[tuple]:
    """Lock one execution, load it, yield (state, batch); audit and flush on the way out."""
    try:
        pk = uuid.UUID(str(execution_id))
    except ValueError:
        raise NotFound(f"no execution {execution_id!r} (not a valid execution id)") from None
    with write_transaction():
        executions = lock_executions([pk])
        if not executions:
            raise NotFound(f"no execution {pk}")
        state = load_states(executions)[pk]
        batch = Batch(worker=f"operator:{_who(user)}")
        yield state, batch
        batch.event(state.execution, f"operator.{action}",
                    {"by": _who(user), "reason": reason, **details})
        batch.flush()
        wake_on_commit()


def _node(state: ExecutionState, node_id: str):
    node = state.graph.nodes.get(node_id)
    if node is None:
        raise NotFound(f"execution {state.execution.id} has no node {node_id!r} "
                       f"(its nodes: {', '.join(sorted(state.graph.nodes))})")
    return node


def _must_be(state: ExecutionState, allowed: set[str], action: str) -> None:
    status = state.execution.status
    if status not in allowed:
        raise Conflict(f"cannot {action} execution {state.execution.id}: it is {status} "
                       f"(allowed when {' or '.join(sorted(allowed))})")


def _reopen(state: ExecutionState) -> None:
    """A failed execution goes back to running: its error and end are cleared."""
    execution = state.execution
    execution.status = "running"
    execution.error = None
    execution.output = None
    execution.finished_at = None


def _stopped_forward_nodes(state: ExecutionState) -> list[str]:
    """Forward nodes whose latest attempt failed or was cancelled: where it stopped."""
    forward = set(state.graph.forward_nodes)
    return sorted(n for n, run in state.latest.items()
                  if n in forward and run.status in STOPPED)


def _restart(batch: Batch, state: ExecutionState, node_id: str, node_input=None) -> NodeRun:
    previous = state.latest[node_id]
    run = batch.add_run(state, node_id, attempt=previous.attempt + 1)
    run.input = node_input
    return run


def _check_output(state: ExecutionState, node_id: str, output) -> None:
    try:
        payloads.check(output, "output", settings.BRAID["MAX_PAYLOAD_BYTES"])
    except payloads.PayloadError as exc:
        raise InputInvalid(str(exc)) from None
    schema = state.graph.nodes[node_id].output_schema
    if schema:
        from jsonschema import Draft202012Validator

        errors = sorted(Draft202012Validator(schema).iter_errors(output), key=str)
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "output"
            raise InputInvalid(f"output does not match node {node_id}'s output_schema: "
                               f"{where}: {errors[0].message}")


# --- the services --------------------------------------------------------------------------

def retry_node(execution_id, node_id: str, *, user=None, reason: str = "",
               node_input: dict | None = None) -> Execution:
    """Run a failed node again (optionally with its own input), and whatever was
    cancelled beside it when the execution failed."""
    if node_input is not None:
        if not isinstance(node_input, dict):
            raise InputInvalid("input must be a JSON object")
        try:
            payloads.check(node_input, "input", settings.BRAID["MAX_PAYLOAD_BYTES"])
        except payloads.PayloadError as exc:
            raise InputInvalid(str(exc)) from None
    with _locked(execution_id, user, "retried", reason, node=node_id,
                 input_edited=node_input is not None) as (state, batch):
        _node(state, node_id)
        _must_be(state, {"failed"}, "retry a node of")
        latest = state.latest.get(node_id)
        if latest is None or latest.status not in STOPPED:
            status = latest.status if latest else "not reached"
            raise Conflict(f"node {node_id} is {status}; only a failed or cancelled node can be "
                           "retried")
        _reopen(state)
        for stopped in _stopped_forward_nodes(state):
            _restart(batch, state, stopped, node_input if stopped == node_id else None)
        update_progress(batch, state)
    return Execution.objects.get(pk=state.execution.pk)


def resume(execution_id, *, user=None, reason: str = "") -> Execution:
    """Carry a failed execution on from where it stopped: every node that failed or was
    cancelled runs again; what succeeded keeps its output."""
    with _locked(execution_id, user, "resumed", reason) as (state, batch):
        _must_be(state, {"failed"}, "resume")
        stopped = _stopped_forward_nodes(state)
        if not stopped:
            raise Conflict(f"execution {state.execution.id} has no failed or cancelled node to "
                           "run again (it failed on an expression: re-run it on a fixed version)")
        _reopen(state)
        for node_id in stopped:
            _restart(batch, state, node_id)
        update_progress(batch, state)
    return Execution.objects.get(pk=state.execution.pk)


def skip_node(execution_id, node_id: str, output, *, user=None, reason: str = "") -> Execution:
    """Treat a node as succeeded with `output` (checked against its output_schema):
    downstream runs as if the node had produced it."""
    with _locked(execution_id, user, "skipped", reason, node=node_id) as (state, batch):
        _node(state, node_id)
        _check_output(state, node_id, output)
        _must_be(state, {"failed", "running", "waiting", "pending"}, "skip a node of")
        latest = state.latest.get(node_id)
        if latest is None:
            raise Conflict(f"node {node_id} has not been reached yet; skip it once it runs, "
                           "fails or waits")
        if latest.status in ("succeeded", "skipped"):
            raise Conflict(f"node {node_id} already {latest.status}")
        if state.execution.status == "failed":
            if latest.status not in STOPPED:
                raise Conflict(f"node {node_id} is {latest.status}")
            _reopen(state)
            for stopped in _stopped_forward_nodes(state):
                if stopped != node_id:
                    _restart(batch, state, stopped)
        # An attempt still running loses its result: the completion's lease check
        # finds the run no longer RUNNING.
        run = latest if latest.status in ACTIVE_RUN else _restart(batch, state, node_id)
        finish_run(batch, state, run, "succeeded", output=output)
        batch.events[-1].payload["supplied_by"] = _who(user)
        settle(batch, state, [node_id], [], 0.0, [0])
    return Execution.objects.get(pk=state.execution.pk)


def compensate(execution_id, *, user=None, reason: str = "") -> Execution:
    """Undo the completed steps of a failed execution now (their compensating nodes, last
    completed first)."""
    with _locked(execution_id, user, "compensation_started", reason) as (state, batch):
        _must_be(state, {"failed"}, "compensate")
        if state.compensations:
            raise Conflict(f"execution {state.execution.id} was already compensated as far as "
                           "it could be")
        if not start_compensation(batch, state):
            raise Conflict(f"execution {state.execution.id} has no completed step with a "
                           "compensating node")
    return Execution.objects.get(pk=state.execution.pk)


def mark_failed(execution_id, *, user=None, reason: str = "") -> Execution:
    """Stop an unfinished execution as failed (cancelling what has not finished); it can
    then be retried, resumed or compensated like any failed execution."""
    message = f"marked failed by {_who(user)}" + (f": {reason}" if reason else "")
    with _locked(execution_id, user, "marked_failed", reason) as (state, batch):
        if state.execution.status in TERMINAL_EXECUTION:
            raise Conflict(f"execution {state.execution.id} is already {state.execution.status}")
        if state.execution.status == "compensating":
            raise Conflict(f"execution {state.execution.id} is compensating; let it finish")
        cancel_active(batch, state, message)
        finish_execution(batch, state, "failed",
                         error={"class": "execution", "node": None, "message": message})
    return Execution.objects.get(pk=state.execution.pk)


def pause(execution_id, *, user=None, reason: str = "") -> Execution:
    """Hold an execution: its ready work waits (holding no worker) until unpaused; what
    runs now finishes, and its successors are held too."""
    with _locked(execution_id, user, "paused", reason) as (state, batch):
        _must_be(state, {"pending", "running", "waiting"}, "pause")
        if state.execution.paused:
            raise Conflict(f"execution {state.execution.id} is already paused")
        state.execution.paused = True
        Execution.objects.filter(pk=state.execution.pk).update(paused=True)
        for run in state.active_runs():
            if run.status == "ready" and not run.compensation:
                run.status, run.waiting_for = "waiting", PAUSED
                batch.touch(run)
        update_progress(batch, state)
    return Execution.objects.get(pk=state.execution.pk)


def unpause(execution_id, *, user=None, reason: str = "") -> Execution:
    with _locked(execution_id, user, "unpaused", reason) as (state, batch):
        if not state.execution.paused:
            raise Conflict(f"execution {state.execution.id} is not paused")
        state.execution.paused = False
        Execution.objects.filter(pk=state.execution.pk).update(paused=False)
        for run in state.active_runs():
            if run.status == "waiting" and run.waiting_for == PAUSED:
                run.status, run.waiting_for = "ready", ""
                batch.touch(run)
        if state.execution.status == "waiting":
            state.execution.status = "running"
        update_progress(batch, state)
    return Execution.objects.get(pk=state.execution.pk)


def rerun_from(execution_id, from_node: str, *, user=None, reason: str = "") -> Execution:
    """A new execution of the same pinned version and input that reuses the outputs of
    every node not downstream of `from_node`, and runs `from_node` and what follows.

    1. The nodes upstream of `from_node` must have succeeded (or been skipped).
    2. The new execution gets a copy of every finished step that is not downstream
       of `from_node`, each with a `node.reused` event in the original's order.
    3. `from_node` is ready; the rest follows the graph as usual.
    4. Both executions get the audit event; the original is untouched otherwise.
    """
    try:
        pk = uuid.UUID(str(execution_id))
    except ValueError:
        raise NotFound(f"no execution {execution_id!r} (not a valid execution id)") from None
    with write_transaction():
        executions = lock_executions([pk])
        if not executions:
            raise NotFound(f"no execution {pk}")
        state = load_states(executions)[pk]
        graph = state.graph
        _node(state, from_node)
        if from_node not in graph.forward_nodes:
            raise Conflict(f"{from_node} is a compensating or fallback-only node; re-run from "
                           "a step of the workflow")
        if state.execution.status not in TERMINAL_EXECUTION:
            raise Conflict(f"execution {state.execution.id} is {state.execution.status}; "
                           "re-run it once it has finished (or mark it failed)")
        downstream = _reachable(graph, from_node)
        for node_id in _upstream(graph, from_node):
            run = state.latest.get(node_id)
            if run is None or run.status not in ("succeeded", "skipped"):
                raise Conflict(f"node {node_id}, upstream of {from_node}, did not succeed "
                               f"({run.status if run else 'not reached'}); re-run from it "
                               "instead")
        batch = Batch(worker=f"operator:{_who(user)}")
        rerun = _new_execution(state.execution, user)
        new_state = ExecutionState(rerun, [])
        batch.event(rerun, "execution.created", {
            "rerun_of": str(state.execution.id), "from_node": from_node, "by": _who(user),
            "version": rerun.version_id})
        reused = _copy_finished(batch, state, new_state, downstream)
        batch.add_run(new_state, from_node)
        for node_id in graph.entry_nodes:
            if node_id not in new_state.latest:
                batch.add_run(new_state, node_id)
        settle(batch, new_state, reused, [], 0.0, [0])
        batch.event(state.execution, "operator.rerun", {
            "by": _who(user), "reason": reason, "from_node": from_node,
            "execution": str(rerun.id), "reused": reused})
        batch.flush(new_executions=[rerun])
        wake_on_commit()
    return Execution.objects.get(pk=rerun.pk)


def _reachable(graph, start: str) -> set[str]:
    """`start` and every node downstream of it (through edges and fallback links)."""
    seen, todo = {start}, [start]
    while todo:
        for edge in graph.outgoing(todo.pop()):
            if edge.target not in seen:
                seen.add(edge.target)
                todo.append(edge.target)
    return seen


def _upstream(graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for edge in graph.incoming(todo.pop()):
            if edge.source not in seen:
                seen.add(edge.source)
                todo.append(edge.source)
    return seen


def _new_execution(original: Execution, user) -> Execution:
    """The re-run: same definition, pinned version, input and placement; a fresh id."""
    from django.utils import timezone

    now = timezone.now()
    return Execution(
        definition_id=original.definition_id, version_id=original.version_id,
        status="running", input=original.input, priority=original.priority,
        queue=original.queue, client_id=original.client_id, route=original.route,
        created_by=user if getattr(user, "pk", None) else None, admitted=True,
        created_at=now, started_at=now, updated_at=now)


def _copy_finished(batch: Batch, state: ExecutionState, new_state: ExecutionState,
                   downstream: set[str]) -> list[str]:
    """Copy the finished steps outside `downstream`, in their original completion order."""
    copies = sorted((run for node_id, run in state.latest.items()
                     if node_id not in downstream and run.status in ("succeeded", "skipped")),
                    key=lambda r: r.finished_seq or 0)
    for old in copies:
        run = batch.add_run(new_state, old.node_id, status=old.status)
        run.output = old.output
        run.started_at, run.finished_at = old.started_at, old.finished_at
        run.duration_ms = old.duration_ms
        batch.event(new_state.execution, "node.reused", {
            "node": old.node_id, "status": old.status, "from_execution": str(state.execution.id),
            "attempt": old.attempt})
        run.finished_seq = new_state.execution.last_seq
    return [run.node_id for run in copies]
