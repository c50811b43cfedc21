"""django-q2 entry points. They take no user data: the database holds the work."""

from apps.engine.worker import drain as _drain


def drain() -> int:
    return _drain()


def reap() -> dict:
    from apps.engine.maintenance import reap as _reap

    return _reap()
