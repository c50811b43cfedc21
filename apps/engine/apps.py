from django.apps import AppConfig


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


def _worker_spawned(sender, proc_name=None, **kwargs):
    """In each new django-q2 worker process: SIGUSR1 asks its drain to stop gracefully."""
    from apps.engine.worker import _install_stop_handler

    _install_stop_handler()
