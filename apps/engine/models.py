import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

# The statuses are defined once, in apps.engine.statuses; re-exported here.
from apps.engine.statuses import (  # noqa: F401
    ACTIVE_RUN,
    TERMINAL_EXECUTION,
    ExecutionStatus,
    RunStatus,
    choices,
)

E = ExecutionStatus


class Execution(models.Model):
    """One run of a pinned workflow version. The database row is the truth."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    definition = models.ForeignKey("workflows.WorkflowDefinition", on_delete=models.PROTECT,
                                   related_name="executions")
    version = models.ForeignKey("workflows.WorkflowVersion", on_delete=models.PROTECT,
                                related_name="executions")
    status = models.CharField(max_length=16, choices=choices(ExecutionStatus),
                              default=ExecutionStatus.PENDING)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    priority = models.SmallIntegerField(default=5)
    queue = models.CharField(max_length=32, default="default")
    client_id = models.CharField(max_length=128, blank=True, db_index=True)
    # NULL, not "", when absent: the unique constraint covers only given keys.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    deadline = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    # Progress, kept up to date by the same transaction that moves the execution.
    current_nodes = models.JSONField(default=list, blank=True)
    completed_nodes = models.PositiveIntegerField(default=0)
    total_nodes = models.PositiveIntegerField(default=0)
    # Events get gap-free sequence numbers under the execution's row lock.
    last_seq = models.PositiveIntegerField(default=0)
    # Under a concurrency limit an execution waits, pending and not admitted, until
    # a worker admits it; `limit_key` is the value of its workflow's keyed limit.
    admitted = models.BooleanField(default=True)
    limit_key = models.CharField(max_length=200, blank=True)
    # How the version was chosen: "stable" or "candidate" by the workflow's release,
    # "pinned" when started by version id (the release was bypassed), "" inline.
    route = models.CharField(max_length=10, blank=True)
    # Paused by an operator: its ready work is held (WAITING for "paused") until
    # unpaused; what already runs finishes.
    paused = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        # What operators do to executions (see apps.engine.permissions for the roles).
        permissions = [
            ("start_execution", "Can start executions"),
            ("cancel_execution", "Can cancel executions"),
            ("retry_execution", "Can retry failed executions"),
            ("decide_approval", "Can approve or reject approval nodes"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"],
                                    condition=Q(idempotency_key__isnull=False),
                                    name="execution_unique_idempotency_key"),
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="execution_status_created"),
            models.Index(fields=["definition", "-created_at"], name="execution_def_created"),
            models.Index(fields=["-created_at"], name="execution_created"),
            models.Index(fields=["-priority", "created_at"], name="execution_admission",
                         condition=Q(status="pending", admitted=False)),
            models.Index(fields=["definition", "limit_key"], name="execution_limited_active",
                         condition=Q(admitted=True, status__in=[E.PENDING, E.RUNNING, E.WAITING,
                                                                    E.COMPENSATING])),
            models.Index(fields=["deadline"], name="execution_deadline_active",
                         condition=Q(deadline__isnull=False,
                                     status__in=[E.PENDING, E.RUNNING, E.WAITING])),
        ]

    def __str__(self):
        return f"{self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_EXECUTION

    @property
    def percent(self) -> int:
        if not self.total_nodes:
            return 100 if self.is_terminal else 0
        return min(100, round(100 * self.completed_nodes / self.total_nodes))


class NodeRun(models.Model):
    """One attempt of one node. Unique per (execution, node, attempt)."""

    # No database-level constraint on the execution (here, on events and on logs):
    # PostgreSQL checks one with a trigger per inserted row, which was 40 % of the
    # database's statement time in W1 (docs/architecture.md, performance). Every
    # writer of these rows locks or creates the execution row in the same
    # transaction, and purge deletes children first (`purge.py`).
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, db_constraint=False,
                                  related_name="node_runs")
    node_id = models.CharField(max_length=64)
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=choices(RunStatus),
                              default=RunStatus.READY)
    # Copied from the execution so the claim query reads one table; queue_rank
    # is the queue's weight when the run was created (claims order by it first).
    priority = models.SmallIntegerField(default=5)
    queue = models.CharField(max_length=32, default="default")
    queue_rank = models.SmallIntegerField(default=0)
    # The resource pool the node holds `pool_slots` of while it runs (from the graph).
    pool = models.CharField(max_length=64, blank=True)
    pool_slots = models.PositiveSmallIntegerField(default=1)
    # A compensating run undoes a completed node while the execution compensates.
    compensation = models.BooleanField(default=False)
    output = models.JSONField(null=True, blank=True)
    error_class = models.CharField(max_length=16, blank=True)
    error_message = models.TextField(blank=True)
    retryable = models.BooleanField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)  # back-off of a retry
    wake_at = models.DateTimeField(null=True, blank=True)  # a parked (WAITING) run
    wake_output = models.JSONField(null=True, blank=True)
    # The signal a parked run waits for ("approval", or a name of the workflow's).
    waiting_for = models.CharField(max_length=64, blank=True)
    # The lease: who runs it, until when, and the fencing token its result must carry.
    worker = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.PositiveBigIntegerField(default=0)
    lease_losses = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    # The seq of the event that finished it: the exact completion order within an
    # execution (compensation undoes steps in reverse of it), even within one commit.
    finished_seq = models.PositiveIntegerField(null=True, blank=True)
    # An operator's retry may give this attempt its own input instead of the execution's.
    input = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["execution", "id"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "node_id", "attempt"],
                                    name="noderun_unique_attempt"),
        ]
        indexes = [
            # The claim query: READY runs by queue weight, priority, then age.
            models.Index(fields=["-queue_rank", "-priority", "id"], name="noderun_ready_claim",
                         condition=Q(status="ready")),
            models.Index(fields=["wake_at"], name="noderun_waiting_wake",
                         condition=Q(status="waiting")),
            models.Index(fields=["waiting_for", "-id"], name="noderun_waiting_signal",
                         condition=Q(status="waiting") & ~Q(waiting_for="")),
            models.Index(fields=["lease_expires_at"], name="noderun_running_lease",
                         condition=Q(status="running")),
            models.Index(fields=["status", "-created_at"], name="noderun_status_created"),
            models.Index(fields=["pool"], name="noderun_pool_holders",
                         condition=Q(status="running") & ~Q(pool="")),
        ]

    def __str__(self):
        return f"{self.node_id}#{self.attempt} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        """`execution:node:attempt`, the attempt counted without lost-worker re-runs."""
        return f"{self.execution_id}:{self.node_id}:{self.attempt - self.lease_losses}"


class ExecutionEvent(models.Model):
    """Append-only event log: live progress, reconnect-and-replay, audit."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, db_constraint=False,
                                  related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=48)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["execution", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "seq"], name="event_unique_seq"),
        ]

    def __str__(self):
        return f"{self.execution_id}#{self.seq} {self.type}"


class Queue(models.Model):
    """A queue's operator state (its weight comes from settings.BRAID_QUEUES)."""

    name = models.CharField(max_length=32, primary_key=True)
    paused = models.BooleanField(default=False)
    changed_at = models.DateTimeField(auto_now=True)
    changed_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["name"]
        permissions = [("pause_queue", "Can pause and resume queues")]

    def __str__(self):
        return f"{self.name}{' (paused)' if self.paused else ''}"


class PendingApproval(NodeRun):
    """Approval node runs waiting for a decision (the operators' approval inbox)."""

    class Meta:
        proxy = True
        verbose_name = "pending approval"
        verbose_name_plural = "pending approvals"


class RateLimit(models.Model):
    """A token bucket shared by every worker on every host (a row, updated under lock).

    `rate` tokens per `period_s` flow into a bucket holding at most `burst`; each
    node run of the scope's target takes one when it is claimed, or waits.
    """

    SCOPES = [("queue", "queue"), ("workflow", "workflow (slug)"),
              ("node_type", "node type")]
    scope = models.CharField(max_length=16, choices=SCOPES)
    target = models.CharField(max_length=100)
    rate = models.PositiveIntegerField()
    period_s = models.FloatField(default=60.0)
    burst = models.PositiveIntegerField(null=True, blank=True,
                                        help_text="bucket size; empty means `rate`")
    tokens = models.FloatField(null=True, blank=True, editable=False)
    refilled_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["scope", "target"]
        constraints = [models.UniqueConstraint(fields=["scope", "target"],
                                               name="ratelimit_unique_target")]

    def __str__(self):
        return f"{self.scope} {self.target}: {self.rate} per {self.period_s:g} s"

    @property
    def capacity(self) -> int:
        return self.burst or self.rate

    def clean(self):
        from django.core.exceptions import ValidationError

        from apps.nodes.registry import get_node_type
        from apps.workflows.models import WorkflowDefinition

        known = {
            "queue": lambda t: t in settings.BRAID_QUEUES,
            "node_type": lambda t: get_node_type(t) is not None,
            "workflow": lambda t: WorkflowDefinition.objects.filter(slug=t).exists(),
        }
        if self.scope in known and not known[self.scope](self.target):
            raise ValidationError({"target": f"no {self.get_scope_display()} {self.target!r}"})
        if self.rate < 1 or self.period_s <= 0:
            raise ValidationError("rate must be at least 1 and period_s positive")


class ConcurrencyLimit(models.Model):
    """At most `max_running` admitted, unfinished executions: globally, per workflow,
    or per key of a workflow (`key` is CEL over the input, e.g. input.customer_id).

    An execution under a limit starts `pending` and not admitted; a worker admits
    it (creates its entry runs) when every limit it falls under has room, in
    priority order. Its slot is freed when it finishes, whatever its workers did.
    """

    workflow = models.ForeignKey("workflows.WorkflowDefinition", null=True, blank=True,
                                 on_delete=models.CASCADE, related_name="limits",
                                 help_text="empty: a global limit on all executions")
    key = models.CharField(max_length=500, blank=True,
                           help_text="CEL over the input; one slot pool per value")
    max_running = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workflow", "key"],
                                               name="concurrencylimit_unique"),
                       models.UniqueConstraint(fields=["key"], condition=Q(workflow=None),
                                               name="concurrencylimit_one_global")]

    def __str__(self):
        where = f"workflow {self.workflow}" if self.workflow_id else "global"
        per = f" per {self.key}" if self.key else ""
        return f"{where}{per}: at most {self.max_running} running"

    def clean(self):
        from django.core.exceptions import ValidationError

        from apps.nodes.expressions import check_expression

        if self.key and not self.workflow_id:
            raise ValidationError({"key": "a keyed limit belongs to one workflow"})
        if self.key:
            problems = check_expression(self.key)
            if problems:
                raise ValidationError({"key": "; ".join(problems)})


class ResourcePool(models.Model):
    """A named pool of slots (e.g. connections of a warehouse database) that nodes
    hold while they run. Nodes wait for a slot in priority order, holding no worker."""

    name = models.CharField(max_length=64, primary_key=True)
    size = models.PositiveIntegerField(default=1)
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.size} slots)"


class WorkerHeartbeat(models.Model):
    """When a worker process (or a ticker) was last seen: "why is it not moving?"
    says so when none has been. One small row per process and role, written by
    its drain loop or ticker at most every few seconds (`heartbeats.py`), with the
    timed-out blocking handlers that still run on its abandoned threads."""

    worker = models.CharField(max_length=64)  # host:pid
    role = models.CharField(max_length=16)  # worker | ticker
    seen_at = models.DateTimeField()
    abandoned = models.JSONField(default=list, blank=True)
    # A worker's executor figures at its last beat: busy and size of its threads,
    # pool processes and event-loop slots, and runs in flight (resource monitor).
    stats = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["worker", "role"],
                                               name="workerheartbeat_unique")]
        indexes = [models.Index(fields=["role", "-seen_at"], name="workerheartbeat_seen")]

    def __str__(self):
        return f"{self.role} {self.worker} seen {self.seen_at:%Y-%m-%d %H:%M:%S}"


class NodeRunLog(models.Model):
    """The lines a handler logged with `ctx.log` during one node run (bounded there).
    A row only for runs that logged, so the hot path of the others writes nothing."""

    node_run = models.OneToOneField(NodeRun, on_delete=models.CASCADE, related_name="log")
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, db_constraint=False,
                                  related_name="+")
    lines = models.JSONField(default=list)
    created_at = models.DateTimeField()

    def __str__(self):
        return f"log of node run {self.node_run_id} ({len(self.lines)} lines)"
