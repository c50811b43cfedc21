"""The operator alert inbox, its notification routes and deliveries, and Braid's
own metric counters (summed across every worker process in the database)."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Severity(models.TextChoices):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class AlertState(models.TextChoices):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Alert(models.Model):
    """One problem an operator should know about, deduplicated by `dedupe_key`.

    While the condition holds the rule's evaluator bumps `occurrences` and
    `last_seen`; when it clears, the alert resolves itself (unless the rule's
    problems only end by an operator's hand, like a failed execution).
    """

    rule = models.CharField(max_length=48, db_index=True)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    state = models.CharField(max_length=16, choices=AlertState.choices,
                             default=AlertState.OPEN)
    dedupe_key = models.CharField(max_length=255)
    title = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    subject_kind = models.CharField(max_length=24)  # execution, node_run, workflow, queue, host…
    subject_id = models.CharField(max_length=128, blank=True)
    workflow = models.ForeignKey("workflows.WorkflowDefinition", null=True, blank=True,
                                 on_delete=models.CASCADE, related_name="alerts")
    execution = models.ForeignKey("engine.Execution", null=True, blank=True,
                                  on_delete=models.SET_NULL, related_name="alerts")
    occurrences = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)  # a username, or "auto"
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                 on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-last_seen"]
        constraints = [
            # One unresolved alert per problem: repeats bump it instead of piling up.
            models.UniqueConstraint(fields=["dedupe_key"], condition=~Q(state="resolved"),
                                    name="alert_one_unresolved_per_key"),
        ]
        indexes = [models.Index(fields=["state", "-last_seen"], name="alert_state_seen")]
        permissions = [("handle_alert", "Can acknowledge, assign, resolve and comment alerts")]

    def __str__(self):
        return f"[{self.severity}] {self.title}"


class AlertNote(models.Model):
    """The alert's history: comments and every state change, with who and when."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notes")
    author = models.CharField(max_length=150)
    action = models.CharField(max_length=24)  # comment, acknowledged, assigned, resolved, auto…
    text = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.action} by {self.author}"


class RuleSetting(models.Model):
    """An operator's override of a rule's settings (defaults: settings.BRAID_ALERT_RULES)."""

    rule = models.CharField(max_length=48, primary_key=True)
    enabled = models.BooleanField(default=True)
    severity = models.CharField(max_length=16, choices=Severity.choices, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    for_s = models.FloatField(null=True, blank=True, help_text="how long it must hold")

    class Meta:
        ordering = ["rule"]

    def __str__(self):
        return self.rule


class Silence(models.Model):
    """Mutes notifications (not the inbox) for a rule, optionally one subject, until a time."""

    rule = models.CharField(max_length=48)
    subject_id = models.CharField(max_length=128, blank=True,
                                  help_text="empty: every subject of the rule")
    until = models.DateTimeField()
    reason = models.CharField(max_length=300, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-until"]

    def __str__(self):
        return f"{self.rule} {self.subject_id or '*'} until {self.until:%Y-%m-%d %H:%M}"


class NotificationRoute(models.Model):
    """Where alerts go: a signed webhook or an e-mail address, filtered by rule and severity."""

    KINDS = [("webhook", "webhook (HMAC-SHA256 signed POST)"), ("email", "e-mail")]
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=KINDS)
    target = models.CharField(max_length=500, help_text="URL for a webhook, address for e-mail")
    secret = models.CharField(max_length=200, blank=True,
                              help_text="webhook signing key (X-Braid-Signature)")
    rules = models.JSONField(default=list, blank=True, help_text="empty: every rule")
    min_severity = models.CharField(max_length=16, choices=Severity.choices,
                                    default=Severity.WARNING)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.kind})"


class Notification(models.Model):
    """One delivery of one alert event to one route, retried with back-off until sent."""

    STATES = [("pending", "pending"), ("sent", "sent"), ("failed", "failed")]
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    route = models.ForeignKey(NotificationRoute, on_delete=models.CASCADE,
                              related_name="notifications")
    event = models.CharField(max_length=16)  # opened, reopened, resolved
    state = models.CharField(max_length=16, choices=STATES, default="pending")
    attempts = models.PositiveSmallIntegerField(default=0)
    next_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["next_at"], name="notification_due",
                                condition=Q(state="pending"))]

    def __str__(self):
        return f"{self.event} of alert {self.alert_id} via {self.route_id} ({self.state})"


class MetricCounter(models.Model):
    """A monotonic counter shared by every process: workers add their deltas here
    every few seconds, /metrics reads the sums (Prometheus sees one series)."""

    name = models.CharField(max_length=64)
    labels = models.CharField(max_length=300, default="")  # canonical k=v,k=v
    value = models.FloatField(default=0.0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "labels"],
                                               name="metriccounter_unique")]

    def __str__(self):
        return f"{self.name}{{{self.labels}}} {self.value:g}"


class ConditionState(models.Model):
    """Since when a rule's condition has held for one subject (for `for_s`)."""

    dedupe_key = models.CharField(max_length=255, primary_key=True)
    since = models.DateTimeField()
    seen_at = models.DateTimeField()

    def __str__(self):
        return f"{self.dedupe_key} since {self.since:%H:%M:%S}"


class HostSample(models.Model):
    """A worker host's resource figures, recorded every few seconds, kept for a day."""

    host = models.CharField(max_length=128)
    at = models.DateTimeField(db_index=True)
    cpu_percent = models.FloatField()
    memory_percent = models.FloatField()
    memory_used_mb = models.FloatField()
    load_1m = models.FloatField(null=True, blank=True)
    processes = models.JSONField(default=list, blank=True)  # [{pid, name, cpu, rss_mb}]
    db_connections = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["host", "-at"], name="hostsample_host_at")]

    def __str__(self):
        return f"{self.host} at {self.at:%H:%M:%S}"


class JobLease(models.Model):
    """Who runs a periodic job now, so many tickers on many hosts run it once."""

    name = models.CharField(max_length=48, primary_key=True)
    holder = models.CharField(max_length=128, blank=True)
    until = models.DateTimeField()

    def __str__(self):
        return f"{self.name} held by {self.holder}"
