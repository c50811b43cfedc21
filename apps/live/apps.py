from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "apps.live"
    label = "live"
    verbose_name = "Live progress"

    def ready(self):
        # In every process that commits events or runs nodes (web, workers, ticker):
        # committed events and emitted text go out through the configured fan-out.
        from apps.live import fanout

        fanout.install()
