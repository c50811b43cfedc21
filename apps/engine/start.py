"""Starting executions: one service used by the API, admin, CLI and schedules.

Start resolves the version, validates the input, writes the Execution, its
entry node runs and events in one transaction, and only on commit wakes workers.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import jsonschema
from django.conf import settings
from django.db import IntegrityError, connection

from apps.engine import limits, notify, rows
from apps.engine.errors import InputInvalid, NotFound
from apps.engine.models import TERMINAL_EXECUTION, Execution
from apps.engine.transitions import Batch, ExecutionState, update_progress
from apps.engine.wakeup import wake_on_commit
from apps.engine.writelock import write_transaction
from apps.nodes import payloads
from apps.nodes.expressions import ExpressionError, evaluate, is_cheap
from apps.workflows import services as workflows
from apps.workflows.models import WorkflowVersion
from apps.workflows.routing import Routing
from apps.workflows.specs import checksum, graph_of


@dataclass
class StartRequest:
    """What to run: exactly one of `workflow` (slug), `version_id` or `definition`."""

    workflow: str | None = None
    version_id: int | None = None
    definition: dict | None = None
    input: dict = field(default_factory=dict)
    priority: int = 5
    queue: str = "default"
    client_id: str = ""
    idempotency_key: str | None = None
    deadline_s: float | None = None
    user: object = None
    # The team an inline `definition` belongs to (None: staff only).
    team_id: int | None = None


@dataclass
class Resolved:
    """The version a start runs, how it was chosen, and the routing seen (by slug only)."""

    version: WorkflowVersion
    route: str = ""
    routing: Routing | None = None
    definition_id: int | None = None
    # Canary key expressions evaluated before the transaction: source -> value.
    keys: dict = field(default_factory=dict)


class KeyMemo:
    """Evaluates canary key expressions, remembering each value.

    Before the start's transaction it evaluates anything (under the budget).
    Inside it (`in_transaction`), a key seen before is reused and only a cheap
    one is evaluated: a costly expression that appeared in between (a new
    release) is not run while the transaction is open, and that start goes to
    the stable version, as for any key that cannot be computed.
    """

    def __init__(self, values: dict, *, in_transaction: bool = False):
        self.values, self.in_transaction = values, in_transaction

    def __call__(self, source: str, context: dict):
        if source in self.values:
            return self.values[source]
        if self.in_transaction and not is_cheap(source):
            raise ExpressionError("a costly key expression is not evaluated inside the "
                                  "start's transaction")
        value = self.values[source] = evaluate(source, context)
        return value


def resolve(request: StartRequest, execution_id) -> Resolved:
    given = [x is not None for x in (request.workflow, request.version_id, request.definition)]
    if sum(given) != 1:
        raise InputInvalid("give exactly one of workflow, version_id or definition")
    if request.workflow is not None:
        definition_id, routing = workflows.routing_of(request.workflow)
        keys: dict = {}
        version, route = workflows.choose(routing, execution_id=execution_id,
                                          idempotency_key=request.idempotency_key,
                                          inputs=request.input, evaluator=KeyMemo(keys))
        return Resolved(version, route, routing, definition_id, keys)
    if request.version_id is not None:
        return Resolved(*workflows.pinned(request.version_id))
    return Resolved(workflows.adhoc_version(request.definition, author=request.user,
                                            team_id=request.team_id))


def resolve_version(request: StartRequest) -> WorkflowVersion:
    return resolve(request, uuid.uuid4()).version


def confirm_route(resolved: Resolved, request: StartRequest, execution_id) -> Resolved:
    """Inside the start's transaction: route again if a canary changed since `resolve`.

    Only starts that saw a canary pay this read. A release service holds the
    definition row FOR UPDATE while it moves the canary, so after an abort or
    rollback commits, no start can still commit an execution on its candidate.
    """
    if resolved.routing is None or resolved.routing.candidate_id is None:
        return resolved
    fresh = workflows.locked_routing(resolved.definition_id, request.workflow)
    if fresh == resolved.routing:
        return resolved
    version, route = workflows.choose(
        fresh, execution_id=execution_id, idempotency_key=request.idempotency_key,
        inputs=request.input, evaluator=KeyMemo(resolved.keys, in_transaction=True))
    if version.pk != resolved.version.pk:
        check_input(version, request.input)
    return Resolved(version, route, fresh, resolved.definition_id, resolved.keys)


def check_input(version: WorkflowVersion, data) -> None:
    if not isinstance(data, dict):
        raise InputInvalid("input must be a JSON object")
    try:
        payloads.check(data, "input", settings.BRAID["MAX_PAYLOAD_BYTES"])
    except payloads.PayloadError as exc:
        raise InputInvalid(str(exc)) from None
    schema = graph_of(version).input_schema
    if schema:
        validator = jsonschema.Draft202012Validator(schema)
        problems = [{"where": "input/" + "/".join(str(p) for p in e.path), "node": None,
                     "message": e.message}
                    for e in sorted(validator.iter_errors(data), key=lambda e: list(e.path))]
        if problems:
            raise InputInvalid(f"input does not match the workflow's input_schema "
                               f"({len(problems)} problem(s))", problems)


def _check_request(request: StartRequest) -> None:
    if not (0 <= request.priority <= 9):
        raise InputInvalid("priority must be from 0 to 9")
    if request.queue not in settings.BRAID_QUEUES:
        raise InputInvalid(f"no queue {request.queue!r} (queues: "
                           f"{', '.join(settings.BRAID_QUEUES)})")
    if request.deadline_s is not None and request.deadline_s <= 0:
        raise InputInvalid("deadline_s must be positive")


def start_execution(request: StartRequest) -> Execution:
    """Start one execution; the same idempotency key returns the same execution."""
    _check_request(request)
    if request.idempotency_key:
        existing = Execution.objects.filter(idempotency_key=request.idempotency_key).first()
        if existing:
            return existing
    execution_id = uuid.uuid4()
    resolved = resolve(request, execution_id)
    check_input(resolved.version, request.input)
    keys = _limit_keys([(resolved, request, execution_id)])
    try:
        with write_transaction():
            resolved = confirm_route(resolved, request, execution_id)
            (execution,) = _create([(resolved, request, execution_id)], keys)
    except IntegrityError:
        if request.idempotency_key:  # a concurrent start with the same key won
            return Execution.objects.get(idempotency_key=request.idempotency_key)
        raise
    return execution


def start_many(requests: list[StartRequest]) -> list[Execution]:
    """Start many executions in one transaction (bursts, benchmarks, fan-out)."""
    triples = []
    # A burst usually starts one workflow many times: resolve it once, then route
    # each execution on the same routing row (a canary splits the burst by key).
    seen: dict = {}
    for request in requests:
        _check_request(request)
        if request.idempotency_key:
            raise InputInvalid("start_many does not take idempotency keys; use start_execution")
        key = (request.workflow, request.version_id, request.team_id,
               None if request.definition is None else checksum(request.definition))
        execution_id = uuid.uuid4()
        resolved = seen.get(key) or seen.setdefault(key, resolve(request, execution_id))
        if resolved.routing is not None and resolved.routing.candidate_id is not None:
            resolved = _rerouted(resolved, request, execution_id)
        check_input(resolved.version, request.input)
        triples.append((resolved, request, execution_id))
    keys = _limit_keys(triples)
    with write_transaction():
        fresh = {}  # one locked re-read per workflow with a canary
        for i, (resolved, request, execution_id) in enumerate(triples):
            if resolved.routing is None or resolved.routing.candidate_id is None:
                continue
            routing = fresh.get(resolved.definition_id)
            if routing is None:
                routing = fresh[resolved.definition_id] = workflows.locked_routing(
                    resolved.definition_id, request.workflow)
            if routing != resolved.routing:
                resolved = Resolved(resolved.version, resolved.route, routing,
                                    resolved.definition_id)
                triples[i] = (_rerouted(resolved, request, execution_id, check=True),
                              request, execution_id)
        return _create(triples, keys)


def _rerouted(resolved: Resolved, request: StartRequest, execution_id,
              check: bool = False) -> Resolved:
    version, route = workflows.choose(resolved.routing, execution_id=execution_id,
                                      idempotency_key=None, inputs=request.input)
    if check and version.pk != resolved.version.pk:
        check_input(version, request.input)
    return Resolved(version, route, resolved.routing, resolved.definition_id)


def _limit_keys(triples) -> list[str | None]:
    """Keys of keyed concurrency limits, computed before the start's transaction (a
    key expression may use its whole evaluation budget). A key depends on the
    workflow and the input only, so a canary re-route inside the transaction
    leaves it valid."""
    keys: list[str | None] = []
    for resolved, request, _ in triples:
        definition_id = resolved.version.definition_id
        keys.append(_limit_key(definition_id, request.input)
                    if limits.rules_for(definition_id) else None)
    return keys


def _create(triples, keys: list[str | None]) -> list[Execution]:
    """Write executions, entry runs and events; wake workers once on commit."""
    batch = Batch()
    executions = []
    for resolved, request, execution_id in triples:
        version = resolved.version
        graph = graph_of(version)
        deadline_s = request.deadline_s or graph.deadline_s
        execution = Execution(
            id=execution_id, definition_id=version.definition_id, version=version,
            route=resolved.route,
            input=request.input, priority=request.priority, queue=request.queue,
            client_id=request.client_id, idempotency_key=request.idempotency_key or None,
            deadline=batch.now + timedelta(seconds=deadline_s) if deadline_s else None,
            created_by=request.user if getattr(request.user, "pk", None) else None,
            total_nodes=len(graph.forward_nodes), created_at=batch.now)
        executions.append(execution)
    for execution, key in zip(executions, keys, strict=True):
        state = ExecutionState(execution, [])
        limited = bool(limits.rules_for(execution.definition_id))
        batch.event(execution, "execution.created", {
            "workflow": execution.version.definition.slug,
            "version": execution.version.number, "version_id": execution.version_id,
            "route": execution.route,
            "awaits_admission": limited})
        if limited:
            # Under a concurrency limit: a worker admits it (and creates its entry
            # runs) when the limit has room, in priority order.
            execution.admitted = False
            execution.limit_key = key if key is not None else _limit_key(
                execution.definition_id, execution.input)  # a limit added meanwhile
            continue
        for node_id in state.graph.entry_nodes:
            batch.add_run(state, node_id)
        update_progress(batch, state)
    # One execution needs one worker now; a burst wakes them all. Registered
    # before the flush, so the wake-up goes out right after the commit, ahead of
    # the after-commit subscribers (live fan-out, metrics) the flush registers.
    wake_on_commit(1 if len(executions) == 1 else None)
    batch.flush(new_executions=executions)
    return executions


def _limit_key(definition_id: int, data: dict) -> str:
    try:
        return limits.key_of(definition_id, data)
    except limits.ExpressionError as exc:
        raise InputInvalid(f"the concurrency limit's key cannot be computed from the "
                           f"input: {exc}") from None


def wait_for(execution_id, timeout_s: float) -> Execution:
    """Wait until the execution is finished or `timeout_s` passed; return it either way.

    The wait is pushed, not polled (`notify.watch`): on PostgreSQL it sleeps until
    the finishing commit's notification, re-reading the row at least every
    `notify.RECHECK_S` in case a notification was lost; on SQLite it reads one
    row by primary key every few milliseconds.
    """
    end = time.monotonic() + timeout_s
    with notify.watch(execution_id) as watch:
        while True:
            # The whole row each time: one round trip when it is done (the common
            # case after a wake-up), instead of a status read and then the row.
            execution = read_execution(execution_id)
            if execution is None:
                raise NotFound(f"no execution {execution_id}")
            left = end - time.monotonic()
            if execution.status in TERMINAL_EXECUTION or left <= 0:
                return execution
            watch.wait(min(left, notify.RECHECK_S))


def read_execution(pk) -> Execution | None:
    if connection.vendor == "postgresql":
        return rows.execution(pk)
    return Execution.objects.filter(pk=pk).first()


def run(request: StartRequest, wait: float | None = None) -> Execution:
    """Start, and with `wait` seconds return the finished result if it is done in time."""
    execution = start_execution(request)
    if wait:
        return wait_for(execution.pk, wait)
    return execution

