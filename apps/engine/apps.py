from django.apps import AppConfig


class EngineConfig(AppConfig):
    name = "apps.engine"
    label = "engine"
    verbose_name = "Engine"

    def ready(self):
        from django_q.signals import post_spawn

        post_spawn.connect(_worker_spawned, dispatch_uid="braid-worker-stop-handler")
        # Releases move on their own: the ticker judges canaries and smoke runs.
        from apps.engine import ticker
        from apps.engine.rollout_judge import judge_tick

        if judge_tick not in ticker.TICK_HOOKS:
            ticker.TICK_HOOKS.append(judge_tick)


def _worker_spawned(sender, proc_name=None, **kwargs):
    """In each new django-q2 worker process: SIGUSR1 asks its drain to stop gracefully."""
    from apps.engine.worker import _install_stop_handler

    _install_stop_handler()
