"""The HTTP node's clients: shared per event loop and host, not made per call.

Making an `httpx.AsyncClient` per request builds an SSL context (loading the
CA bundle: milliseconds of CPU) and opens a new connection each time; that
was most of an http node's cost. Here each event loop keeps one client per
host name, with keep-alive connections, and every client shares one SSL
context per process. Clients are keyed by host name, not by address, because
the node connects to the vetted IP (`netguard`) while TLS verifies the name:
a connection verified for one name is never reused for another.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict

import httpx
from django.conf import settings

MAX_HOSTS = 64  # clients kept per loop; the least recently used beyond it is closed

_ssl_context = None
_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def ssl_context():
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


def client_for(host: str) -> httpx.AsyncClient:
    """This event loop's client for `host` (made on first use)."""
    loop = asyncio.get_running_loop()
    per_loop: OrderedDict = _clients.setdefault(loop, OrderedDict())
    client = per_loop.get(host)
    if client is not None and not client.is_closed:
        per_loop.move_to_end(host)
        return client
    most = settings.BRAID["HTTP_MAX_CONNECTIONS"]
    client = httpx.AsyncClient(
        verify=ssl_context(), follow_redirects=False,
        limits=httpx.Limits(max_connections=most, max_keepalive_connections=most))
    per_loop[host] = client
    while len(per_loop) > MAX_HOSTS:
        _, old = per_loop.popitem(last=False)
        loop.create_task(old.aclose())
    return client
