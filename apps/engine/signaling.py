"""Signals wake parked runs: `send_signal(execution, name, payload)`; approvals use it."""

from __future__ import annotations

from django.conf import settings

from apps.engine.errors import Conflict, InputInvalid, NotFound
from apps.engine.models import NodeRun
from apps.engine.transitions import Batch, finish_run, load_states, lock_executions, settle
from apps.engine.wakeup import wake_on_commit
from apps.engine.writelock import write_transaction
from apps.nodes import payloads
from apps.nodes.registry import get_node_type


def send_signal(execution_id, name: str, payload: dict | None = None, *,
                node_id: str | None = None, actor: str = "") -> list[str]:
    """Complete every run of the execution parked on `name` (or just `node_id`'s).

    Returns the node ids woken. Raises NotFound for an unknown execution,
    Conflict when nothing waits for that signal, InputInvalid for a payload the
    node refuses (nothing is changed then).
    """
    payload = payload or {}
    if not isinstance(payload, dict):
        raise InputInvalid("a signal's payload must be a JSON object")
    try:
        payloads.check(payload, f"the payload of signal {name!r}",
                       settings.BRAID["MAX_PAYLOAD_BYTES"])
    except payloads.PayloadError as exc:
        raise InputInvalid(str(exc)) from None
    with write_transaction():
        executions = lock_executions([execution_id])
        if not executions:
            raise NotFound(f"no execution {execution_id}")
        state = next(iter(load_states(executions).values()))
        waiting = [r for r in list(state.latest.values()) + list(state.compensations.values())
                   if r.status == "waiting" and r.waiting_for == name
                   and (node_id is None or r.node_id == node_id)]
        if not waiting:
            where = f" at node {node_id!r}" if node_id else ""
            raise Conflict(f"nothing in execution {execution_id} waits for signal {name!r}"
                           f"{where}")
        batch = Batch(actor or "signal")
        outputs = {}
        for run in waiting:
            node = state.graph.nodes[run.node_id]
            try:
                outputs[run.pk] = get_node_type(node.type).accept_signal(node.config, name,
                                                                          payload)
            except ValueError as exc:
                raise InputInvalid(f"node {run.node_id!r} refused the signal: {exc}",
                                   [{"where": f"node {run.node_id}", "node": run.node_id,
                                     "message": str(exc)}]) from None
        for run in waiting:
            batch.event(state.execution, "signal.received",
                        {"node": run.node_id, "signal": name, "by": actor or None})
            finish_run(batch, state, run, "succeeded", output=outputs[run.pk])
        settle(batch, state, [r.node_id for r in waiting], [], 0, [0])
        batch.flush()
        if any(r.status == "ready" for r in batch.new_runs):
            wake_on_commit(1)
    return [r.node_id for r in waiting]


def decide_approval(execution_id, node_id: str, *, approve: bool, user=None, note: str = "",
                    form: dict | None = None) -> list[str]:
    """Approve or reject a parked approval node (admin, API and CLI call this)."""
    by = getattr(user, "get_username", lambda: "")() if user is not None else ""
    return send_signal(execution_id, "approval",
                       {"decision": "approved" if approve else "rejected", "by": by or None,
                        "note": note, "form": form or {}},
                       node_id=node_id, actor=by)


def pending_approvals():
    """Approval runs waiting for a decision, newest first (a selector for admin and API)."""
    return (NodeRun.objects.filter(status="waiting", waiting_for="approval")
            .select_related("execution__definition").order_by("-id"))
