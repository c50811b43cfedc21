"""Who may do what: the permission sets of Braid's roles, and "may start this workflow".

Roles are sets of Django permission codenames (`app_label.codename`). Each
role includes the one below it:

- **viewer** sees everything and changes nothing (the `view_*` permissions);
- **operator** runs things: start, cancel and retry executions, decide
  approvals, pause and resume queues, handle alerts, abort a release and roll
  back;
- **owner** changes configuration: workflow definitions and publishing
  versions, deploying and promoting releases, schedules and maintenance
  windows, concurrency limits, resource pools and rate limits, alert rules,
  silences and notification routes.

The codenames are plain strings: this module imports no app above the engine
(releases live in `workflows`, alerts in `operations`).

`ROLE_PERMISSIONS` is the single mapping: the Django groups "Braid viewer",
"Braid operator" and "Braid owner" are kept equal to it after every migrate
(`sync_role_groups`, connected in `apps.py`), and team roles map onto the same
sets. The admin checks the permissions themselves, so a user gets them from a
group, directly, or as a superuser, all alike.
"""

from __future__ import annotations

VIEWER = frozenset({
    "workflows.view_workflowdefinition",
    "workflows.view_workflowversion",
    "workflows.view_release",
    "workflows.view_releaseevent",
    "engine.view_execution",
    "engine.view_noderun",
    "engine.view_executionevent",
    "engine.view_pendingapproval",
    "engine.view_queue",
    "engine.view_concurrencylimit",
    "engine.view_resourcepool",
    "engine.view_ratelimit",
    "schedules.view_schedule",
    "schedules.view_schedulerun",
    "schedules.view_maintenancewindow",
    "operations.view_alert",
    "operations.view_alertnote",
    "operations.view_notification",
    "operations.view_rulesetting",
    "operations.view_silence",
    "operations.view_hostsample",
    # Not notification routes: a route's page shows its webhook signing secret.
})

START_EXECUTION = "engine.start_execution"
CANCEL_EXECUTION = "engine.cancel_execution"
RETRY_EXECUTION = "engine.retry_execution"
DECIDE_APPROVAL = "engine.decide_approval"
PAUSE_QUEUE = "engine.pause_queue"

OPERATOR = VIEWER | {START_EXECUTION, CANCEL_EXECUTION, RETRY_EXECUTION, DECIDE_APPROVAL,
                     PAUSE_QUEUE,
                     "operations.handle_alert",  # acknowledge, assign, resolve, comment
                     "workflows.rollback_release"}  # abort a release, roll back

OWNER = OPERATOR | {
    # Definitions: edit name, description, owner; publish a new version.
    "workflows.change_workflowdefinition",
    "workflows.add_workflowversion",
    "workflows.deploy_release",  # deploy and promote releases
    # Schedules and the windows that hold them.
    "schedules.add_schedule", "schedules.change_schedule", "schedules.delete_schedule",
    "schedules.add_maintenancewindow", "schedules.change_maintenancewindow",
    "schedules.delete_maintenancewindow",
    # Flow control.
    "engine.add_concurrencylimit", "engine.change_concurrencylimit",
    "engine.delete_concurrencylimit",
    "engine.add_resourcepool", "engine.change_resourcepool", "engine.delete_resourcepool",
    "engine.add_ratelimit", "engine.change_ratelimit", "engine.delete_ratelimit",
    # Alerting configuration.
    "operations.add_rulesetting", "operations.change_rulesetting",
    "operations.delete_rulesetting",
    "operations.add_silence", "operations.change_silence", "operations.delete_silence",
    "operations.view_notificationroute", "operations.add_notificationroute",
    "operations.change_notificationroute", "operations.delete_notificationroute",
}

ROLES = ("viewer", "operator", "owner")
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": VIEWER, "operator": OPERATOR, "owner": OWNER}
ROLE_GROUPS: dict[str, str] = {
    "viewer": "Braid viewer", "operator": "Braid operator", "owner": "Braid owner"}


def may_start_workflow(user, definition) -> bool:
    """Whether `user` may start executions of `definition` (a WorkflowDefinition).

    THE single place that decides it: the admin's start action and button,
    schedules (creating or changing one, firing it by hand) and the API all ask
    here. Today it is the `engine.start_execution` permission, held globally
    (from the "Braid operator" or "Braid owner" group, or given directly) or on
    this workflow (`has_perm(perm, definition)`, for an authentication backend
    that grants per-workflow permissions, as `apps.workflows.permissions` does
    for releases); once workflows belong to teams, this also consults the
    user's role in the workflow's team.
    """
    if not (user and user.is_active):
        return False
    return user.has_perm(START_EXECUTION) or (
        definition is not None and user.has_perm(START_EXECUTION, definition))


def sync_role_groups(using: str = "default") -> None:
    """Make the three Braid groups hold exactly their role's permissions.

    Idempotent; runs after every migrate. Permissions that do not exist (an app
    not installed) are skipped.
    """
    from django.contrib.auth.models import Group, Permission

    for role in ROLES:
        wanted = ROLE_PERMISSIONS[role]
        pairs = {tuple(name.split(".", 1)) for name in wanted}
        found = [p for p in Permission.objects.using(using).select_related("content_type")
                 .filter(codename__in={codename for _, codename in pairs})
                 if (p.content_type.app_label, p.codename) in pairs]
        group, _ = Group.objects.using(using).get_or_create(name=ROLE_GROUPS[role])
        group.permissions.set(found)
