from django.apps import AppConfig


class NodesConfig(AppConfig):
    name = "apps.nodes"
    label = "nodes"
    verbose_name = "Node types"

    def ready(self):
        # Registering the built-in types is an import side effect, done once here.
        from django.conf import settings

        from apps.nodes import builtins, expressions, functions, waits  # noqa: F401

        cfg = settings.BRAID
        expressions.configure(expressions.ExpressionLimits(
            max_chars=cfg["EXPRESSION_MAX_CHARS"], max_depth=cfg["EXPRESSION_MAX_DEPTH"],
            budget_s=cfg["EXPRESSION_BUDGET_S"], processes=cfg["EXPRESSION_PROCESSES"]))
