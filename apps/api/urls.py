"""The API's URLs: one list per topic, so a new topic adds one module and one line.

Included under /api/ by config/urls.py: v1 under /api/v1/, the seed's short
forms under /api/workflow/, the OpenAPI schema and its UI under /api/schema/
and /api/docs/.
"""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.api.views import (
    alerts,
    executions,
    flow,
    interventions,
    operations,
    releases,
    schedules,
    seed,
    workflows,
)

workflow_urls = [
    path("", workflows.WorkflowList.as_view(), name="workflow-list"),
    path("validate/", workflows.Validate.as_view(), name="workflow-validate"),
    path("<slug:slug>/", workflows.WorkflowDetail.as_view(), name="workflow-detail"),
    path("<slug:slug>/versions/", workflows.VersionList.as_view(), name="version-list"),
    path("<slug:slug>/versions/<int:number>/", workflows.VersionDetail.as_view(),
         name="version-detail"),
    path("<slug:slug>/releases/", releases.ReleaseList.as_view(), name="release-list"),
    path("<slug:slug>/releases/current/", releases.ReleaseCurrent.as_view(),
         name="release-current"),
    path("<slug:slug>/releases/current/promote/", releases.ReleasePromote.as_view(),
         name="release-promote"),
    path("<slug:slug>/releases/current/abort/", releases.ReleaseAbort.as_view(),
         name="release-abort"),
    path("<slug:slug>/releases/rollback/", releases.ReleaseRollback.as_view(),
         name="release-rollback"),
    path("<slug:slug>/versions/<int:a>/diff/<int:b>/", workflows.VersionDiff.as_view(),
         name="version-diff"),
]

execution_urls = [
    path("", executions.ExecutionList.as_view(), name="execution-list"),
    path("bulk-cancel/", interventions.BulkCancel.as_view(), name="execution-bulk-cancel"),
    path("<str:execution_id>/", executions.ExecutionDetail.as_view(), name="execution-detail"),
    path("<str:execution_id>/events/", executions.ExecutionEvents.as_view(),
         name="execution-events"),
    path("<str:execution_id>/cancel/", executions.ExecutionCancel.as_view(),
         name="execution-cancel"),
    path("<str:execution_id>/signal/", executions.ExecutionSignal.as_view(),
         name="execution-signal"),
    path("<str:execution_id>/diagnosis/", interventions.Diagnosis.as_view(),
         name="execution-diagnosis"),
    *[path(f"<str:execution_id>/{name}/", view.as_view(), name=f"execution-{name}")
      for name, view in (("retry", interventions.Retry), ("skip", interventions.Skip),
                         ("resume", interventions.Resume), ("rerun", interventions.Rerun),
                         ("compensate", interventions.Compensate),
                         ("pause", interventions.Pause), ("unpause", interventions.Unpause),
                         ("mark-failed", interventions.MarkFailed))],
]

alert_urls = [
    path("alerts/", alerts.AlertList.as_view(), name="alert-list"),
    path("alerts/<int:alert_id>/", alerts.AlertDetail.as_view(), name="alert-detail"),
    path("alerts/<int:alert_id>/acknowledge/", alerts.AlertAcknowledge.as_view(),
         name="alert-acknowledge"),
    path("alerts/<int:alert_id>/assign/", alerts.AlertAssign.as_view(), name="alert-assign"),
    path("alerts/<int:alert_id>/resolve/", alerts.AlertResolve.as_view(),
         name="alert-resolve"),
    path("alerts/<int:alert_id>/comment/", alerts.AlertComment.as_view(),
         name="alert-comment"),
    path("silences/", alerts.SilenceList.as_view(), name="silence-list"),
    path("system/resource-usage/", alerts.ResourceUsage.as_view(), name="resource-usage"),
    path("system/executor-stats/", alerts.ExecutorStats.as_view(), name="executor-stats"),
    path("system/db-pool-stats/", alerts.DbPoolStats.as_view(), name="db-pool-stats"),
]

operation_urls = [
    path("approvals/", operations.ApprovalList.as_view(), name="approval-list"),
    path("approvals/<int:approval_id>/decide/", operations.ApprovalDecide.as_view(),
         name="approval-decide"),
    path("queues/", operations.QueueList.as_view(), name="queue-list"),
    path("queues/<str:name>/pause/", operations.QueuePause.as_view(), name="queue-pause"),
    path("queues/<str:name>/resume/", operations.QueueResume.as_view(), name="queue-resume"),
    path("system/stats/", operations.SystemStats.as_view(), name="system-stats"),
]

schedule_urls = [
    path("schedules/", schedules.ScheduleList.as_view(), name="schedule-list"),
    path("schedules/<int:pk>/", schedules.ScheduleDetail.as_view(), name="schedule-detail"),
    path("maintenance-windows/", schedules.WindowList.as_view(), name="window-list"),
    path("maintenance-windows/<int:pk>/", schedules.WindowDetail.as_view(),
         name="window-detail"),
]

flow_urls = [
    path("limits/", flow.LimitList.as_view(), name="limit-list"),
    path("limits/<int:pk>/", flow.LimitDetail.as_view(), name="limit-detail"),
    path("pools/", flow.PoolList.as_view(), name="pool-list"),
    path("pools/<slug:name>/", flow.PoolDetail.as_view(), name="pool-detail"),
    path("rate-limits/", flow.RateLimitList.as_view(), name="ratelimit-list"),
    path("rate-limits/<int:pk>/", flow.RateLimitDetail.as_view(), name="ratelimit-detail"),
]

v1 = [
    path("workflows/", include(workflow_urls)),
    path("executions/", include(execution_urls)),
    *operation_urls,
    *schedule_urls,
    *alert_urls,
    *flow_urls,
]

seed_urls = [
    path("execute", seed.Execute.as_view(), name="seed-execute"),
    path("status/<str:execution_id>", seed.Status.as_view(), name="seed-status"),
    path("reconnect/<str:client_id>", seed.Reconnect.as_view(), name="seed-reconnect"),
    path("cancel/<str:execution_id>", seed.Cancel.as_view(), name="seed-cancel"),
    path("stats", seed.Stats.as_view(), name="seed-stats"),
]

app_name = "api"
urlpatterns = [
    path("v1/", include(v1)),
    path("workflow/", include(seed_urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
