"""django-q2 entry points. They take no user data: the database holds the work."""

from apps.engine.worker import drain as _drain


def drain() -> int:
    return _drain()


def reap() -> dict:
    """The once-a-minute backstop of the ticker: a reaper pass and the tick hooks
    (schedules), so a deployment whose tickers are all down still moves."""
    from apps.engine.maintenance import reap as _reap
    from apps.engine.ticker import TICK_HOOKS

    result = _reap()
    for hook in TICK_HOOKS:
        hook()
    return result
