"""State changes of executions, written together at the end of one transaction.

Every writer (start, the worker's completions, the ticker, the reaper, cancel)
locks the executions it touches, loads their node runs into `ExecutionState`s,
applies changes through a `Batch`, then calls `Batch.flush()`: a handful of
bulk statements however many node runs moved. That is the group commit the
throughput rests on. Events get gap-free `seq`s because the execution row is
locked while they are numbered.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from apps.engine import clock, hooks, limits, notify, planning, rows
from apps.engine.bulk import bulk_insert_values, bulk_update_values, new_row, one_round_trip
from apps.engine.models import ACTIVE_RUN, TERMINAL_EXECUTION, Execution, ExecutionEvent, NodeRun
from apps.engine.queues import paused_queues, queue_retry, queue_timeout_s
from apps.engine.ratelimits import rules_for
from apps.engine.statuses import E, R
from apps.engine.wakeup import wake_on_commit
from apps.nodes.expressions import ExpressionError
from apps.workflows.graph import Graph
from apps.workflows.specs import graph_for

log = logging.getLogger(__name__)

PAUSED = "paused"  # waiting_for of the runs an operator's pause holds

RUN_FIELDS = ["status", "output", "error_class", "error_message", "retryable", "not_before",
              "wake_at", "wake_output", "waiting_for", "worker", "lease_expires_at", "lease_token",
              "lease_losses", "started_at", "finished_at", "duration_ms", "finished_seq"]
EXECUTION_FIELDS = ["status", "output", "error", "current_nodes", "completed_nodes",
                    "total_nodes", "last_seq", "admitted", "started_at", "finished_at", "updated_at"]


@dataclass
class Claim:
    """A node run this worker now holds: what it needs to run the handler."""

    run_id: int
    lease_token: int
    execution_id: str
    node_id: str
    attempt: int
    node_type: str
    config: dict
    timeout_s: float | None
    input: dict
    nodes: dict
    queue: str = "default"
    # Why this node cannot run on this deployment (see Node.problem): it fails at once.
    problem: str = ""
    # Costly incoming conditions the worker evaluates, outside any transaction,
    # before running the node: none true, and the run ends `skipped` (planning.GATED).
    gate: tuple = ()


def queue_rank(queue: str) -> int:
    return settings.BRAID_QUEUES.get(queue, {}).get("weight", 0)


def new_token() -> int:
    return secrets.randbits(62)


def lock_executions(ids: Iterable, *, skip_locked: bool = False) -> dict:
    """Lock execution rows in id order (one order everywhere: no deadlocks)."""
    if connection.vendor == "postgresql":
        return rows.lock(ids)
    qs = Execution.objects.filter(id__in=list(ids)).order_by("id")
    if connection.features.has_select_for_update:
        qs = qs.select_for_update(skip_locked=skip_locked)
    return {e.id: e for e in qs}


def lock_free_executions(ids_in_order: list, limit: int) -> dict:
    """Lock up to `limit` of these executions that nobody else holds, in the given order.

    Two claimers read the same candidates (the same ready runs, in priority
    order). Locking only the first `limit` with SKIP LOCKED left the second with
    nothing to do until the first committed; taking the first `limit` *free* ones
    of the longer list splits the work between them, still in priority order.
    SKIP LOCKED never waits, so this order cannot deadlock against the id order
    of every waiting lock. On SQLite the claim's IMMEDIATE transaction is
    exclusive: nothing is held by anyone else.
    """
    if not connection.features.has_select_for_update:
        return lock_executions(ids_in_order[:limit])
    return rows.lock_free(ids_in_order, limit)


class ExecutionState:
    """One locked execution with the latest run of each node, and its graph."""

    def __init__(self, execution: Execution, runs: list[NodeRun]):
        self.execution = execution
        self.graph: Graph = graph_for(execution.version_id)
        self.latest: dict[str, NodeRun] = {}
        self.compensations: dict[str, NodeRun] = {}
        for run in sorted(runs, key=lambda r: (r.attempt, r.id or 0)):
            (self.compensations if run.compensation else self.latest)[run.node_id] = run

    def node_states(self) -> dict[str, planning.NodeState]:
        return {n: planning.NodeState(r.status, r.output, r.started_at is not None
                                      or r.status != R.CANCELLED)
                for n, r in self.latest.items()}

    def status_map(self) -> dict[str, str]:
        return {n: r.status for n, r in self.latest.items()}

    def active_runs(self) -> list[NodeRun]:
        runs = list(self.latest.values()) + list(self.compensations.values())
        return [r for r in runs if r.status in ACTIVE_RUN]


def load_states(executions: dict) -> dict:
    runs = defaultdict(list)
    found = (rows.runs_of(executions) if connection.vendor == "postgresql"
             else NodeRun.objects.filter(execution_id__in=list(executions)))
    for run in found:
        runs[run.execution_id].append(run)
    return {eid: ExecutionState(e, runs[eid]) for eid, e in executions.items()}


class Batch:
    """Accumulates run, execution and event changes; `flush` writes them in bulk."""

    def __init__(self, worker: str = "", now: datetime | None = None):
        self.now = now or clock.now()
        self.worker = worker
        self.new_runs: list[NodeRun] = []
        self.changed_runs: dict[int, NodeRun] = {}
        self.events: list[ExecutionEvent] = []
        self.executions: dict = {}
        self.claims: list[tuple[NodeRun, ExecutionState]] = []
        self.freed_slots: Counter = Counter()  # pool slots given back by finished runs
        self.slots = None  # the leasing worker's free handler slots (capacity.Slots)
        self.node_logs: list = []  # (run, lines) of handlers that logged with ctx.log
        self.finished: list = []  # executions this batch finished (notified in its commit)

    # --- recording ---------------------------------------------------------
    def event(self, execution: Execution, type_: str, payload: dict | None = None) -> None:
        execution.last_seq += 1
        self.events.append(new_row(ExecutionEvent, execution_id=execution.id,
                                   seq=execution.last_seq, type=type_, payload=payload or {},
                                   created_at=self.now))
        self.executions[execution.id] = execution

    def touch(self, run: NodeRun) -> None:
        if run.pk is not None:
            self.changed_runs[run.pk] = run

    def add_run(self, state: ExecutionState, node_id: str, *, attempt: int = 1,
                status: str = R.READY, not_before: datetime | None = None,
                compensation: bool = False, lease_losses: int = 0) -> NodeRun:
        execution = state.execution
        node = state.graph.nodes[node_id]
        run = new_row(NodeRun, execution_id=execution.id, node_id=node_id, attempt=attempt,
                      status=status, priority=execution.priority, queue=execution.queue,
                      queue_rank=queue_rank(execution.queue), pool=node.pool or "",
                      pool_slots=node.slots,
                      not_before=not_before, compensation=compensation,
                      lease_losses=lease_losses, created_at=self.now)
        if status == R.SKIPPED:
            run.finished_at = self.now
        elif status == R.READY and not compensation and state.execution.paused:
            run.status, run.waiting_for = R.WAITING, PAUSED  # held until an operator unpauses
        self.new_runs.append(run)
        (state.compensations if compensation else state.latest)[node_id] = run
        return run

    def lease(self, run: NodeRun, state: ExecutionState, lease_s: float) -> None:
        """Mark `run` RUNNING for this worker (claimed or continued locally)."""
        run.status = R.RUNNING
        run.worker = self.worker
        run.lease_token = new_token()
        run.lease_expires_at = self.now + timedelta(seconds=lease_s)
        run.started_at = self.now
        run.waiting_for = ""
        self.touch(run)
        execution = state.execution
        if execution.status in (E.PENDING, E.WAITING):
            execution.status = E.RUNNING
        if execution.started_at is None:
            execution.started_at = self.now
        kind = "compensation" if run.compensation else "node"
        # How long it waited to be claimed (since it became ready), for the queue-wait metric.
        ready_at = max(filter(None, (run.created_at, run.not_before)), default=self.now)
        waited_ms = max(0.0, (self.now - ready_at).total_seconds() * 1000)
        self.event(execution, f"{kind}.started", {"node": run.node_id, "attempt": run.attempt,
                                                  "worker": self.worker,
                                                  "waited_ms": round(waited_ms, 3)})
        self.claims.append((run, state))

    def fits(self, state: ExecutionState, node_id: str) -> bool:
        """Take a free slot of the kind the node runs on (always, with no worker's slots)."""
        node = state.graph.nodes[node_id]
        return self.slots is None or self.slots.take(node.type, node.config)

    # --- writing -------------------------------------------------------------
    def flush(self, new_executions: list[Execution] = ()) -> None:
        """Write everything: new executions first (runs and events point at them).
        On PostgreSQL the writes and the notification go in one round trip."""
        with one_round_trip():
            self._write(new_executions)
        if self.events and hooks.has_subscribers():
            transaction.on_commit(self._committed(new_executions))
        if self.freed_slots:
            from apps.engine.pools import release_parked

            release_parked(self.freed_slots)

    def _write(self, new_executions) -> None:
        if new_executions:
            bulk_insert_values(Execution, list(new_executions))
            for execution in new_executions:
                self.executions.pop(execution.id, None)
        if self.new_runs:
            bulk_insert_values(NodeRun, self.new_runs)
        if self.changed_runs:
            bulk_update_values(NodeRun, list(self.changed_runs.values()), RUN_FIELDS)
        if self.events:
            bulk_insert_values(ExecutionEvent, self.events)
        if self.node_logs:
            from apps.engine.models import NodeRunLog

            bulk_insert_values(NodeRunLog, [
                NodeRunLog(node_run_id=run.pk, execution_id=run.execution_id, lines=lines,
                           created_at=self.now) for run, lines in self.node_logs])
        if self.executions:
            for execution in self.executions.values():
                execution.updated_at = self.now
            bulk_update_values(Execution, list(self.executions.values()), EXECUTION_FIELDS)
        if self.finished:
            notify.notify_done(self.finished)

    def _committed(self, new_executions) -> Callable[[], None]:
        """The after-commit call for this batch's events (built now: the batch may be reused)."""
        executions = {e.id: e for e in new_executions} | self.executions
        # Each execution's id as text and client once, not once per event.
        keys = {pk: (str(pk), e.client_id or "") for pk, e in executions.items()}
        unknown = ("", "")
        events = []
        for e in self.events:
            key, client = keys.get(e.execution_id, unknown)
            events.append(hooks.CommittedEvent(key or str(e.execution_id), e.seq, e.type,
                                               e.payload, e.created_at, client))
        infos = {keys[pk][0]: hooks.ExecutionInfo(e.status, e.definition_id, e.version_id,
                                                  e.queue, keys[pk][1])
                 for pk, e in executions.items()}
        return lambda: hooks.publish(hooks.CommittedBatch(events=events, executions=infos))

    def claim_for(self, run: NodeRun, state: ExecutionState) -> Claim:
        node = state.graph.nodes[run.node_id]
        scope = planning.expression_scope(state.execution.input, state.node_states())
        return Claim(run_id=run.pk, lease_token=run.lease_token,
                     execution_id=str(state.execution.id), node_id=run.node_id,
                     attempt=policy_attempt(run), node_type=node.type, config=node.config,
                     timeout_s=node.timeout_s or queue_timeout_s(run.queue),
                     input=state.execution.input if run.input is None else run.input,
                     nodes=scope["nodes"], queue=run.queue, problem=node.problem or "",
                     gate=() if run.compensation else planning.gate_conditions(
                         state.graph, run.node_id, state.status_map(), scope))

    def claimed(self) -> list[Claim]:
        """The claims to hand to the worker (after flush: new runs have their ids)."""
        return [self.claim_for(run, state) for run, state in self.claims]


def policy_attempt(run: NodeRun) -> int:
    """The attempt as the retry policy and the idempotency key count it.

    A re-run after a lost worker (expired lease) repeats the same attempt: the
    handler gets the same idempotency key, and the crash costs no retry.
    """
    return run.attempt - run.lease_losses


# --- transitions of one execution ------------------------------------------------

def finish_run(batch: Batch, state: ExecutionState, run: NodeRun, status: str, *,
               output=None, error_class: str = "", message: str = "",
               retryable: bool | None = None, duration_ms: float | None = None,
               lease_lost: bool = False) -> None:
    if run.pool and run.status == R.RUNNING:
        batch.freed_slots[run.pool] += run.pool_slots
    run.status = status
    run.output = output
    run.error_class = error_class
    run.error_message = message[:10_000]
    run.retryable = retryable
    run.finished_at = batch.now
    run.lease_expires_at = None
    run.duration_ms = duration_ms
    batch.touch(run)
    payload = {"node": run.node_id, "attempt": run.attempt}
    if status == R.SUCCEEDED:
        payload["output"] = output
        if duration_ms is not None:
            payload["duration_ms"] = round(duration_ms, 3)
    elif error_class:
        payload.update(error_class=error_class, message=run.error_message)
    if lease_lost:
        payload["lease_lost"] = True
    kind = "compensation" if run.compensation else "node"
    batch.event(state.execution, f"{kind}.{status}", payload)
    run.finished_seq = state.execution.last_seq


def fail_run(batch: Batch, state: ExecutionState, run: NodeRun, error_class: str,
             message: str, retryable: bool, *, lost_lease: bool = False,
             duration_ms: float | None = None) -> bool:
    """Record a failed attempt and schedule the next one; True if it failed for good."""
    node = state.graph.nodes[run.node_id]
    log.warning("node failed: execution=%s node=%s attempt=%s error_class=%s: %s",
                state.execution.id, run.node_id, run.attempt, error_class, message[:300],
                extra={"execution": state.execution.id, "node": run.node_id,
                       "attempt": run.attempt, "error_class": error_class})
    finish_run(batch, state, run, R.FAILED, error_class=error_class, message=message,
               retryable=retryable, duration_ms=duration_ms, lease_lost=lost_lease)
    if state.execution.status in TERMINAL_EXECUTION:
        return False
    if state.execution.status == E.COMPENSATING and not run.compensation and not lost_lease:
        # A step that was left to settle failed: it did nothing to undo, and the
        # execution is being undone, so it is not retried. A lost worker, though,
        # says nothing of the outcome: that step is re-run (same idempotency key).
        return True
    if lost_lease:
        # A killed worker is not the node's fault: it gets LEASE_LOSS_LIMIT more tries
        # whatever its retry policy, so a crash never fails an execution on its own.
        losses = run.lease_losses + 1
        delay = 0.0 if losses < settings.BRAID["LEASE_LOSS_LIMIT"] else None
    else:
        losses = run.lease_losses
        policy = node.retry if node.retry_set else queue_retry(run.queue, node.retry)
        delay = planning.retry_delay(policy, policy_attempt(run), error_class, retryable)
    if delay is None:
        return True
    not_before = batch.now + timedelta(seconds=delay) if delay > 0 else None
    batch.add_run(state, run.node_id, attempt=run.attempt + 1, not_before=not_before,
                  compensation=run.compensation, lease_losses=losses)
    batch.event(state.execution, "node.retrying", {
        "node": run.node_id, "attempt": run.attempt + 1, "delay_s": round(delay, 3),
        "error_class": error_class})
    return False


def settle(batch: Batch, state: ExecutionState, changed: list[str],
           failed_for_good: list[NodeRun], lease_s: float, capacity: list[int]) -> None:
    """Move the execution on after `changed` nodes finished (step 4 and 5 of the protocol).

    1. A compensating execution runs its next compensation or finishes.
    2. A node that failed for good with no fallback fails the execution or
       starts its compensation.
    3. Otherwise successors become ready or skipped; ready ones are leased to
       this worker while it has `capacity` (local continuation, no extra claim).
    4. When every forward node is finished the execution succeeds.
    """
    execution = state.execution
    if execution.status in TERMINAL_EXECUTION:
        return
    if execution.status == E.COMPENSATING:
        _continue_compensation(batch, state, failed_for_good)
        return
    unhandled = [r for r in failed_for_good if not state.graph.nodes[r.node_id].fallback]
    if unhandled:
        run = unhandled[0]
        fail_or_compensate(batch, state, {"class": run.error_class, "node": run.node_id,
                                          "message": run.error_message})
        return
    plan = planning.advance(state.graph, state.node_states(), execution.input, changed)
    if plan.errors:
        fail_or_compensate(batch, state, {"class": plan.error_class, "node": None,
                                          "message": "; ".join(plan.errors)})
        return
    for node_id in plan.skipped:
        batch.add_run(state, node_id, status=R.SKIPPED)
        batch.event(execution, "node.skipped", {"node": node_id})
    # A paused queue's successors wait too; a paused execution's are held by add_run.
    held = execution.paused or execution.queue in paused_queues()
    for node_id in plan.ready:
        run = batch.add_run(state, node_id)
        # Rate-limited work goes through the claim, where the buckets are locked.
        limited = run.pool or rules_for(execution.queue, execution.definition_id,
                                        state.graph.nodes[node_id].type)
        if capacity[0] > 0 and not held and not limited and batch.fits(state, node_id):
            capacity[0] -= 1
            batch.lease(run, state, lease_s)
    if planning.is_finished(state.graph, state.status_map()):
        try:
            output = planning.execution_output(state.graph, state.node_states(),
                                               execution.input)
        except ExpressionError as exc:
            fail_or_compensate(batch, state, {"class": exc.error_class, "node": None,
                                              "message": f"output: {exc}"})
            return
        finish_execution(batch, state, E.SUCCEEDED, output=output)
    else:
        update_progress(batch, state)


def update_progress(batch: Batch, state: ExecutionState) -> None:
    execution = state.execution
    statuses = state.status_map()
    forward = state.graph.forward_nodes
    execution.total_nodes = len(forward)
    # Cancelled nodes never ran: they are not progress.
    execution.completed_nodes = sum(
        1 for n in forward if statuses.get(n) in (R.SUCCEEDED, R.FAILED, R.SKIPPED))
    active = state.active_runs()
    execution.current_nodes = sorted({r.node_id for r in active})
    if execution.status in (E.RUNNING, E.WAITING, E.PENDING) and active:
        if all(r.status == R.WAITING for r in active):
            execution.status = E.WAITING
        elif any(r.status == R.RUNNING for r in active) or execution.started_at:
            execution.status = E.RUNNING
    batch.executions[execution.id] = execution


def cancel_active(batch: Batch, state: ExecutionState, reason: str) -> None:
    """Cancel every unfinished run; running handlers stop at their next heartbeat."""
    for run in state.active_runs():
        finish_run(batch, state, run, R.CANCELLED, error_class="cancelled", message=reason,
                   retryable=False)


def finish_execution(batch: Batch, state: ExecutionState, status: str, *, output=None,
                     error: dict | None = None) -> None:
    execution = state.execution
    execution.status = status
    execution.output = output
    if error is not None:
        execution.error = error
    execution.finished_at = batch.now
    batch.finished.append(execution.id)
    update_progress(batch, state)
    execution.current_nodes = []
    payload = {"status": status}
    if output is not None:
        payload["output"] = output
    if execution.error:
        payload["error"] = execution.error
    batch.event(execution, f"execution.{status}", payload)
    if execution.admitted and limits.rules_for(execution.definition_id):
        wake_on_commit(1)  # its slot is free: a pending execution may be admitted now


def fail_or_compensate(batch: Batch, state: ExecutionState, error: dict) -> None:
    """Step 5's end: undo completed steps in reverse order of completion, else fail.

    1. Runs that have not started, or have nothing to undo, are cancelled.
    2. A running step that has a compensating node may be halfway through its
       side effect (a card being charged in a parallel branch): it is left to
       *settle* — finish, fail, or be re-run after losing its worker — before
       anything is undone, so that its outcome, not a guess, decides.
    3. Then the compensating nodes of the completed steps run one at a time,
       last completed first; none left to run means the execution failed.
    """
    execution = state.execution
    execution.error = error
    settling = [r for r in state.latest.values()
                if r.status == R.RUNNING and state.graph.nodes[r.node_id].compensate]
    reason = "execution failed: " + (error.get("message") or "")[:200]
    for run in state.active_runs():
        if run not in settling:
            finish_run(batch, state, run, R.CANCELLED, error_class="cancelled", message=reason,
                       retryable=False)
    order = _compensation_order(state)
    if not order and not settling:
        finish_execution(batch, state, E.FAILED, error=error)
        return
    execution.status = E.COMPENSATING
    batch.event(execution, "execution.compensating", {
        "error": error, "order": order, "settling": sorted(r.node_id for r in settling)})
    _continue_compensation(batch, state, [])


def start_compensation(batch: Batch, state: ExecutionState) -> bool:
    """An operator's compensate of a failed execution: undo its completed steps now,
    last completed first. False (and nothing changed) if none has a compensating node."""
    if not _compensation_order(state):
        return False
    execution = state.execution
    execution.status = E.COMPENSATING
    execution.finished_at = None
    batch.event(execution, "execution.compensating", {
        "error": execution.error, "order": _compensation_order(state), "settling": [],
        "by_operator": True})
    _continue_compensation(batch, state, [])
    return True


LEASE_EXPIRED = "lease expired"  # how the reaper's failures start


def possibly_done(run: NodeRun) -> bool:
    """A step that failed for good by losing its worker may have done its work."""
    return run.status == R.FAILED and run.error_message.startswith(LEASE_EXPIRED)


def _compensation_order(state: ExecutionState) -> list[str]:
    done = sorted((r for r in state.latest.values()
                   if r.status == R.SUCCEEDED or possibly_done(r)),
                  key=lambda r: r.finished_seq or 0)
    return planning.compensation_order(state.graph, [r.node_id for r in done])


def _continue_compensation(batch: Batch, state: ExecutionState,
                           failed_for_good: list[NodeRun]) -> None:
    """Run the next compensation once the steps still settling and the previous
    compensation have finished. Each compensating node runs once (its own retry
    policy and lease-loss re-runs aside: those repeat its idempotency key)."""
    comp_failed = [r for r in failed_for_good if r.compensation]
    if comp_failed:
        run = comp_failed[0]
        error = dict(state.execution.error or {})
        error["compensation"] = {"node": run.node_id, "class": run.error_class,
                                 "message": run.error_message}
        cancel_active(batch, state, "compensation failed")
        finish_execution(batch, state, E.FAILED, error=error)
        return
    if state.active_runs():  # a step settling, or the previous compensation running
        update_progress(batch, state)
        return
    remaining = [n for n in _compensation_order(state) if n not in state.compensations]
    if remaining:
        batch.add_run(state, remaining[0], compensation=True)
        update_progress(batch, state)
    elif state.compensations:
        finish_execution(batch, state, E.COMPENSATED)
    else:  # the steps that were settling did nothing that needs undoing
        finish_execution(batch, state, E.FAILED)
