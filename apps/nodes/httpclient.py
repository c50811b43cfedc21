"""The HTTP node's clients: shared per event loop and host, not made per call.

Making an `httpx.AsyncClient` per request builds an SSL context (loading the
CA bundle: milliseconds of CPU) and opens a new connection each time; that
was most of an http node's cost. Here each event loop keeps its clients per
host name (a few, see CONNECTIONS_PER_CLIENT), with keep-alive connections,
and every client shares one SSL context per process. Clients are keyed by
host name, not by address, because the node connects to the vetted IP (`netguard`) while TLS verifies the name:
a connection verified for one name is never reused for another.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict

import httpx
from django.conf import settings

MAX_HOSTS = 64  # hosts kept per loop; the least recently used beyond it is closed
# httpcore's pool scans every connection it holds on each request and each answer
# (an `is_idle`/`has_expired` check, with a socket poll, per connection): with
# hundreds of connections in one pool that scan was a third of the node's CPU.
# A host's connections are therefore spread over clients of this many each.
CONNECTIONS_PER_CLIENT = 32

_ssl_context = None
_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def ssl_context():
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


def client_for(host: str) -> httpx.AsyncClient:
    """One of this event loop's clients for `host` (made on first use), in turn."""
    loop = asyncio.get_running_loop()
    per_loop: OrderedDict = _clients.setdefault(loop, OrderedDict())
    shard = per_loop.get(host)
    if shard is None:
        most = settings.BRAID["HTTP_MAX_CONNECTIONS"]
        shard = per_loop[host] = _Shard([None] * max(1, -(-most // CONNECTIONS_PER_CLIENT)),
                                        min(most, CONNECTIONS_PER_CLIENT))
        while len(per_loop) > MAX_HOSTS:
            _, old = per_loop.popitem(last=False)
            for client in old.clients:
                if client is not None:
                    loop.create_task(client.aclose())
    else:
        per_loop.move_to_end(host)
    return shard.next()


class _Shard:
    def __init__(self, clients: list, connections: int):
        self.clients = clients
        self.connections = connections
        self.turn = 0

    def next(self) -> httpx.AsyncClient:
        self.turn = (self.turn + 1) % len(self.clients)
        client = self.clients[self.turn]
        if client is None or client.is_closed:
            client = self.clients[self.turn] = httpx.AsyncClient(
                verify=ssl_context(), follow_redirects=False,
                limits=httpx.Limits(max_connections=self.connections,
                                    max_keepalive_connections=self.connections))
        return client
