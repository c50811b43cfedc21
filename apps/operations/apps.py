from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "apps.operations"
    label = "operations"
    verbose_name = "Operations"

    def ready(self):
        # The engine's floor knows nothing of alerts or metrics: this floor puts its
        # evaluator on the ticker and its counters on the after-commit seam.
        from apps.engine import cli_extensions, hooks, ticker
        from apps.operations import counters, evaluator, notify

        for hook in (evaluator.evaluate_when_due, notify.deliver_due):
            if hook not in ticker.TICK_HOOKS:
                ticker.TICK_HOOKS.append(hook)
        hooks.subscribe(counters.count_batch)
        cli_extensions.register("apps.operations.cli")
