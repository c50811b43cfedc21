"""Who may follow what live: the one place that decides it for WebSockets.

It asks the teams' access module, so a follower sees exactly the executions
the API shows them (their teams' executions; staff see all). A client id is
followed only by those who may see every execution that carries it: a user
cannot listen in on another team's client id, and a client stream still shows
only executions the user may see (checked per execution as they appear).
"""

from __future__ import annotations

from apps.engine.models import Execution
from apps.teams import access as teams


def _visible(user):
    return teams.visible(Execution.objects.all(), user, "definition__team")


def may_follow(user, *, execution_id=None, client_id: str | None = None) -> bool:
    """May `user` follow this execution (by id) or this client id's executions?"""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if execution_id is not None:
        return _visible(user).filter(pk=execution_id).exists()
    if client_id is not None:
        seen = _visible(user).filter(client_id=client_id).values("pk")
        return not Execution.objects.filter(client_id=client_id).exclude(pk__in=seen).exists()
    return False
