"""Team roles as Django permissions, so the admin and the API ask the same question.

A member holds on the team's objects (its workflows and everything under them)
the permissions of their role; each role has those of the roles before it. Staff
hold the owner's permissions on every team's objects. These are data only: the
floors above (engine, schedules) own the models the names point to.
"""

from apps.teams.models import Role

VIEWER_PERMISSIONS = frozenset({
    "workflows.view_workflowdefinition", "workflows.view_workflowversion",
    "engine.view_execution", "engine.view_noderun", "engine.view_executionevent",
    "engine.view_pendingapproval",
    "schedules.view_schedule", "schedules.view_schedulerun", "schedules.view_maintenancewindow",
})
OPERATOR_PERMISSIONS = VIEWER_PERMISSIONS | {
    "engine.add_execution",  # start
    "engine.change_execution",  # cancel, signal
    "engine.change_pendingapproval",  # approve or reject
}
OWNER_PERMISSIONS = OPERATOR_PERMISSIONS | {
    "workflows.add_workflowdefinition", "workflows.change_workflowdefinition",
    "workflows.add_workflowversion",
    "schedules.add_schedule", "schedules.change_schedule", "schedules.delete_schedule",
    "schedules.add_maintenancewindow", "schedules.change_maintenancewindow",
    "schedules.delete_maintenancewindow",
}
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.VIEWER: VIEWER_PERMISSIONS,
    Role.OPERATOR: frozenset(OPERATOR_PERMISSIONS),
    Role.OWNER: frozenset(OWNER_PERMISSIONS),
}

# What the API and the admin ask: `may(user, action, obj)` checks this permission.
ACTION_PERMISSIONS = {
    "view": "workflows.view_workflowdefinition",
    "execute": "engine.add_execution",
    "operate": "engine.change_execution",
    "decide": "engine.change_pendingapproval",
    "publish": "workflows.add_workflowversion",
    "schedule": "schedules.change_schedule",
}
