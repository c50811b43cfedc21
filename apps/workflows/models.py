from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class WorkflowDefinition(models.Model):
    """A named workflow; its graphs live in immutable WorkflowVersions."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="workflows")
    # The team that owns it and everything under it; none: staff only.
    team = models.ForeignKey("teams.Team", null=True, blank=True, on_delete=models.PROTECT,
                             related_name="workflows")
    # Ad-hoc definitions hold inline graphs started without a saved workflow.
    adhoc = models.BooleanField(default=False)
    # The version a start by slug runs. Releases (blue-green, canary) move it.
    current_version = models.ForeignKey("WorkflowVersion", null=True, blank=True,
                                        on_delete=models.SET_NULL, related_name="+")
    # The routing row of an active canary, kept in step with its Release by the
    # release services: a start reads it in the same query as current_version.
    canary_version = models.ForeignKey("WorkflowVersion", null=True, blank=True,
                                       on_delete=models.SET_NULL, related_name="+")
    canary_percent = models.FloatField(default=0.0)
    canary_key = models.CharField(max_length=20, blank=True)
    canary_key_expression = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug


class WorkflowVersion(models.Model):
    """One graph of a workflow. Immutable once saved; executions pin it for life."""

    definition = models.ForeignKey(WorkflowDefinition, on_delete=models.CASCADE,
                                   related_name="versions")
    number = models.PositiveIntegerField()
    graph = models.JSONField()
    checksum = models.CharField(max_length=64, db_index=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                               on_delete=models.SET_NULL, related_name="+")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["definition", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["definition", "number"],
                                    name="workflowversion_unique_number"),
        ]

    def __str__(self):
        return f"{self.definition.slug} v{self.number}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.pop("_allow_update", False):
            raise ValidationError("A workflow version is immutable; publish a new version.")
        super().save(*args, **kwargs)


class Strategy(models.TextChoices):
    IMMEDIATE = "immediate"
    BLUE_GREEN = "blue_green"
    CANARY = "canary"


class ReleaseState(models.TextChoices):
    SMOKE = "smoke"  # blue-green: candidate staged, smoke executions running
    CANARY = "canary"  # canary: a share of new executions on the candidate
    COMPLETED = "completed"  # the candidate is current
    ABORTED = "aborted"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"  # blue-green: a smoke run failed or did not match


ACTIVE_RELEASE = (ReleaseState.SMOKE, ReleaseState.CANARY)


class Release(models.Model):
    """Shipping one version of a workflow; at most one active per workflow."""

    definition = models.ForeignKey(WorkflowDefinition, on_delete=models.CASCADE,
                                   related_name="releases")
    strategy = models.CharField(max_length=16, choices=Strategy.choices)
    state = models.CharField(max_length=16, choices=ReleaseState.choices)
    # The version serving traffic when the release began: kept for instant rollback.
    stable_version = models.ForeignKey(WorkflowVersion, null=True, blank=True,
                                       on_delete=models.PROTECT, related_name="+")
    candidate_version = models.ForeignKey(WorkflowVersion, on_delete=models.PROTECT,
                                          related_name="+")
    steps = models.JSONField(default=list, blank=True)  # canary percents, e.g. [5, 25, 50, 100]
    step_index = models.PositiveSmallIntegerField(default=0)
    step_started_at = models.DateTimeField(null=True, blank=True)
    routing_key = models.CharField(max_length=20, blank=True)
    routing_expression = models.TextField(blank=True)
    thresholds = models.JSONField(default=dict, blank=True)  # the defaults overlaid
    # Blue-green: [{"input": {...}, "expected": {...} or absent}], and the ids started.
    smoke_inputs = models.JSONField(default=list, blank=True)
    smoke_execution_ids = models.JSONField(default=list, blank=True)
    smoke_timeout_s = models.FloatField(default=300.0)
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["definition"],
                                    condition=models.Q(state__in=["smoke", "canary"]),
                                    name="release_one_active_per_workflow"),
        ]
        indexes = [models.Index(fields=["state"], name="release_active",
                                condition=models.Q(state__in=["smoke", "canary"]))]
        permissions = [
            ("deploy_release", "Can deploy and promote a release"),
            ("rollback_release", "Can abort a release and roll back"),
        ]

    def __str__(self):
        return f"{self.definition.slug} → v{self.candidate_version.number} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_RELEASE

    @property
    def percent(self) -> float:
        if self.strategy != Strategy.CANARY or not self.steps:
            return 0.0
        return float(self.steps[min(self.step_index, len(self.steps) - 1)])


class Severity(models.TextChoices):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class ReleaseEvent(models.Model):
    """The append-only audit log of releases: who, when, why, and the figures."""

    definition = models.ForeignKey(WorkflowDefinition, on_delete=models.CASCADE,
                                   related_name="release_events")
    release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="events")
    kind = models.CharField(max_length=24)  # deploy, step, promote, complete, abort, ...
    severity = models.CharField(max_length=10, choices=Severity.choices,
                                default=Severity.INFO)
    # None: the system (the health judge, or the command line on the server).
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)  # kept if the user goes
    reason = models.TextField(blank=True)
    figures = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["definition", "-created_at"],
                                name="releaseevent_def_created")]

    def __str__(self):
        return f"{self.definition_id} {self.kind} by {self.actor_name or 'system'}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError("The release log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("The release log is append-only.")
