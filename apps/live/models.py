"""Live progress keeps two small tables: WebSocket tickets and, on the embedded
default only, emitted output waiting for the web process to pick it up."""

from django.conf import settings
from django.db import models


class WsTicket(models.Model):
    """A short-lived, single-use ticket for a programmatic WebSocket connection.

    Only the SHA-256 of the ticket is stored; redeeming it is a conditional update
    that exactly one connection can win.
    """

    digest = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "WebSocket ticket"

    def __str__(self):
        return f"ticket of {self.user_id} until {self.expires_at:%H:%M:%S}"


class OutputDelta(models.Model):
    """A batch of text a running node emitted, on its way to the web processes.

    Used only when there is no shared channel layer (the embedded default): the
    web process tails this table by id. Not part of the execution's event log
    (no seq): partial output is transient; the node's output holds the whole text.
    Rows older than a few minutes are deleted by the writer.
    """

    execution = models.ForeignKey("engine.Execution", on_delete=models.CASCADE,
                                  related_name="+")
    node_id = models.CharField(max_length=100)
    attempt = models.PositiveIntegerField()
    index = models.PositiveIntegerField()  # frame number within (node, attempt)
    chunks = models.PositiveIntegerField()  # emit() calls batched into this frame
    text = models.TextField()
    created_at = models.DateTimeField(db_index=True)

    def __str__(self):
        return f"{self.execution_id}/{self.node_id}#{self.attempt}.{self.index}"
