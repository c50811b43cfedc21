"""Who may follow what live: the one place that decides it for WebSockets.

For now: staff, users with `engine.view_execution`, and the user who started an
execution. A client id belongs to the users who start executions with it: a
user may follow a client id unless someone else's execution carries it.
"""

from __future__ import annotations

from apps.engine.models import Execution


def may_follow(user, *, execution_id=None, client_id: str | None = None) -> bool:
    """May `user` follow this execution (by id) or this client id's executions?"""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff or user.has_perm("engine.view_execution"):
        return True
    if execution_id is not None:
        return Execution.objects.filter(pk=execution_id, created_by=user).exists()
    if client_id is not None:
        return not Execution.objects.filter(client_id=client_id).exclude(
            created_by=user).exists()
    return False
