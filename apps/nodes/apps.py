from django.apps import AppConfig


class NodesConfig(AppConfig):
    name = "apps.nodes"
    label = "nodes"
    verbose_name = "Node types"

    def ready(self):
        # Registering the built-in types is an import side effect, done once here.
        from apps.nodes import builtins, functions, waits  # noqa: F401
