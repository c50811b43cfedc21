"""API tokens: named, hashed at rest, expiring, revocable, with scopes."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Scope(models.TextChoices):
    READ = "read", "read (GET anything visible)"
    EXECUTE = "execute", "execute (start executions)"
    OPERATE = "operate", "operate (cancel, signal, approve, pause queues)"
    ADMIN = "admin", "admin (publish workflows, schedules, flow control; implies all)"


class ApiToken(models.Model):
    """The secret is shown once at creation; only its SHA-256 is stored.

    Tokens are 256 random bits, so a plain digest is enough (no slow hash needed)
    and lets a request find its token with one indexed lookup.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, editable=False,
                              help_text="the token's first characters, to recognise it")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True,
                                      help_text="empty: never expires")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["user", "name"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None
                                            or self.expires_at > timezone.now())

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes
