"""Who sees what, and may do what: the one place that answers it for the API, the admin
and consumers.

A user sees the objects of the teams they belong to (any role) and nothing
else; staff see everything. Objects reach their team through a lookup path
(`team` on a workflow, `definition__team` on an execution, …); an object with
no team (an old row, or an ad-hoc run started by staff) is staff-only.
"""

from __future__ import annotations

from django.db.models import QuerySet

from apps.teams.models import ROLE_RANK, Membership, Role

# What `may(user, action, obj)` checks: permission names of apps.engine.permissions
# (strings only: this floor imports nothing above it). A user holds one globally
# (groups, superuser) or on the object through their team role
# (apps.engine.team_roles.TeamRoleBackend).
ACTION_PERMISSIONS = {
    "view": "workflows.view_workflowdefinition",
    "execute": "engine.start_execution",
    "operate": "engine.cancel_execution",
    "decide": "engine.decide_approval",
    "publish": "workflows.add_workflowversion",
    "schedule": "schedules.change_schedule",
}


def sees_all(user) -> bool:
    return bool(user and user.is_active and user.is_staff)


def memberships(user) -> dict[int, str]:
    """{team id: role} of the user, read once per user object (one request)."""
    if not (user and user.is_authenticated and user.is_active):
        return {}
    cached = getattr(user, "_braid_teams", None)
    if cached is None:
        # No order (the model's, by team, joins the team table): a dict needs none.
        cached = dict(Membership.objects.filter(user=user).order_by()
                      .values_list("team_id", "role"))
        user._braid_teams = cached
    return cached


def team_ids(user, min_role: str = Role.VIEWER) -> list[int]:
    least = ROLE_RANK[min_role]
    return [t for t, role in memberships(user).items() if ROLE_RANK[role] >= least]


def visible(queryset: QuerySet, user, team_path: str = "team") -> QuerySet:
    """The part of `queryset` the user may see; `team_path` leads from a row to its team."""
    if sees_all(user):
        return queryset
    return queryset.filter(**{f"{team_path}__in": team_ids(user)})


def team_id_of(obj) -> int | None:
    """The team an object belongs to: itself, or through its workflow or execution."""
    from apps.teams.models import Team

    if isinstance(obj, Team):
        return obj.pk
    if hasattr(obj, "team_id"):
        return obj.team_id
    for attr in ("definition", "workflow", "execution"):
        inner = getattr(obj, attr, None)
        if inner is not None:
            return team_id_of(inner)
    return None


def may(user, action: str, obj) -> bool:
    """May `user` do `action` (view, execute, operate, decide, publish, schedule) on `obj`?

    Yes when they hold the permission globally (a Braid group, superuser) or on
    `obj` through their role in its team. Seeing it is a separate question
    (`visible`): callers check that first, and answer 404 when the user may not.
    """
    if not (user and user.is_active):
        return False
    perm = ACTION_PERMISSIONS[action]
    # The team role first: it is answered from the memberships already read for
    # visibility, while a global check costs the user's and groups' permission reads.
    return user.has_perm(perm, obj) or user.has_perm(perm)


def starter_team(user, wanted: int | None = None) -> int | None:
    """The team an ad-hoc run of `user` belongs to: `wanted` if they operate it, else
    their only team where they may start runs; None (staff-only) for staff without one."""
    allowed = team_ids(user, Role.OPERATOR)
    if wanted is not None:
        return wanted if (wanted in allowed or sees_all(user)) else None
    if len(allowed) == 1:
        return allowed[0]
    return None
