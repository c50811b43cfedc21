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
