"""`braid worker`: a django-q2 cluster and the ticker in one command.

The cluster's main process only waits on its sentinel, so the ticker runs on
its main thread, started *after* the cluster has forked its processes (a thread
must not exist across a fork). One process fewer per host than running
`qcluster` and `braid ticker` side by side, and one unit to deploy.
"""

from __future__ import annotations

import gc
import signal
import threading

from django.db import connections

from apps.engine.ticker import run_ticker


def run_worker(*, ticker: bool = True) -> None:
    from django_q.cluster import Cluster

    # Import what workers run before the cluster forks them, then freeze the heap:
    # objects that outlive the fork are never touched by a child's garbage
    # collector, so their pages stay shared (measured: ~23 MiB less per worker).
    import apps.engine.runner  # noqa: F401
    import apps.engine.tasks  # noqa: F401

    gc.collect()
    gc.freeze()
    connections.close_all()  # forked processes must not share our database socket
    # Every process of the cluster inherits "ignore SIGUSR1"; worker processes
    # then install the graceful-stop handler when they spawn (see apps.py).
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    stop = threading.Event()
    cluster = Cluster()  # installs its own SIGTERM/SIGINT handlers: replace them
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    cluster.start()
    try:
        if ticker and not stop.is_set():
            run_ticker(stop)
        else:
            stop.wait()
    finally:
        connections.close_all()
        _ask_workers_to_stop()
        cluster.stop()


def _ask_workers_to_stop() -> None:
    """SIGUSR1 to every process of the cluster: drains stop claiming and hand back.

    django-q2 then lets each worker finish its current task (the drain), so a
    stop takes at most BRAID_HANDBACK_S plus one commit, and loses nothing.
    """
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            child.send_signal(signal.SIGUSR1)
        except psutil.NoSuchProcess:
            continue
