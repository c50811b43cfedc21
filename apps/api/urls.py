"""The API's URLs: one list per topic, so a new topic adds one module and one line.

Included under /api/ by config/urls.py: v1 under /api/v1/, the seed's short
forms under /api/workflow/, the OpenAPI schema and its UI under /api/schema/
and /api/docs/.
"""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.api.views import executions, operations, releases, schedules, seed, workflows

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
    path("<str:execution_id>/", executions.ExecutionDetail.as_view(), name="execution-detail"),
    path("<str:execution_id>/events/", executions.ExecutionEvents.as_view(),
         name="execution-events"),
    path("<str:execution_id>/cancel/", executions.ExecutionCancel.as_view(),
         name="execution-cancel"),
    path("<str:execution_id>/signal/", executions.ExecutionSignal.as_view(),
         name="execution-signal"),
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

v1 = [
    path("workflows/", include(workflow_urls)),
    path("executions/", include(execution_urls)),
    *operation_urls,
    *schedule_urls,
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
