from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class EngineConfig(AppConfig):
    name = "apps.engine"
    label = "engine"
    verbose_name = "Engine"

    def ready(self):
        from django.db.models.signals import post_delete, post_save
        from django_q.signals import post_spawn

        from apps.engine.limits import limits_changed
        from apps.engine.models import ConcurrencyLimit

        post_spawn.connect(_worker_spawned, dispatch_uid="braid-worker-stop-handler")
        # However a limit changes (admin, service, shell), waiting executions are
        # looked at again at once.
        for signal in (post_save, post_delete):
            signal.connect(limits_changed, sender=ConcurrencyLimit,
                           dispatch_uid=f"braid-limits-{signal is post_save}")
        post_migrate.connect(_sync_role_groups, sender=self, dispatch_uid="braid-role-groups")
        # Releases move on their own: the ticker judges canaries and smoke runs.
        from apps.engine import ticker
        from apps.engine.rollout_judge import judge_tick

        if judge_tick not in ticker.TICK_HOOKS:
            ticker.TICK_HOOKS.append(judge_tick)


def _worker_spawned(sender, proc_name=None, **kwargs):
    """In each new django-q2 worker process: SIGUSR1 asks its drain to stop gracefully."""
    from apps.engine.worker import _install_stop_handler

    _install_stop_handler()


def _sync_role_groups(sender, using="default", verbosity=1, **kwargs):
    """After migrate: the Braid role groups hold exactly ROLE_PERMISSIONS.

    Django creates each app's permissions in that app's own post_migrate, and
    the schedules app comes after this one; so create them all first.
    """
    from django.contrib.auth.management import create_permissions

    from apps.engine.permissions import sync_role_groups

    for config in apps.get_app_configs():
        create_permissions(config, verbosity=0, using=using)
    sync_role_groups(using)
