from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "apps.schedules"
    label = "schedules"
    verbose_name = "Schedules"

    def ready(self):
        # The engine's ticker knows nothing of schedules (a lower floor): it runs
        # whatever is in TICK_HOOKS each tick, and this floor puts fire_due there.
        from apps.engine import ticker
        from apps.schedules.services import fire_due

        if fire_due not in ticker.TICK_HOOKS:
            ticker.TICK_HOOKS.append(fire_due)
