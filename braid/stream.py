"""`stream`: follow one execution live, resuming after drops without loss.

    async for frame in stream("https://braid.example", execution_id, token=TOKEN):
        if frame["type"] == "event":
            print(frame["seq"], frame["event"], frame["data"])
        elif frame["type"] == "node.output.delta":
            print(frame["text"], end="")

Each (re)connection takes a fresh single-use ticket from `POST /api/v1/ws-tickets/`
and subscribes with the last seq it has seen, so after a network drop or the
death of the server it was on, the server sends what was missed, once and in
order. The iterator ends after the execution's final event. See docs/live.md.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from urllib.parse import quote

import httpx
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

FINAL_EVENTS = frozenset({"execution.succeeded", "execution.failed", "execution.cancelled",
                          "execution.compensated", "execution.skipped"})
FINAL_STATUSES = frozenset(e.split(".", 1)[1] for e in FINAL_EVENTS)
TicketSource = Callable[[str], "str | Awaitable[str]"]


class StreamRefused(PermissionError):
    """The server refused the stream (not signed in, or not allowed to follow it)."""


async def fetch_ticket(base_url: str, *, token: str | None = None,
                       headers: dict | None = None) -> str:
    """A single-use WebSocket ticket from `POST {base_url}/api/v1/ws-tickets/`."""
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(base_url=base_url, headers=sent, timeout=10) as http:
        response = await http.post("/api/v1/ws-tickets/")
    if response.status_code in (401, 403):
        raise StreamRefused(f"ticket refused ({response.status_code}): {response.text}")
    response.raise_for_status()
    return response.json()["ticket"]


def ws_url(base_url: str, path: str, ticket: str) -> str:
    scheme, rest = base_url.rstrip("/").split("://", 1)
    ws_scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    return f"{ws_scheme}://{rest}/{path}?ticket={quote(ticket)}"


async def stream(base_url: str | Sequence[str], execution_id: str, last_seq: int = 0, *,
                 token: str | None = None, headers: dict | None = None,
                 ticket: TicketSource | None = None, retry_delay: float = 0.5,
                 max_retries: int = 20, deltas: bool = True) -> AsyncIterator[dict]:
    """Events (and `node.output.delta` frames) of one execution after `last_seq`.

    `base_url` may list several servers: after a failure the next one is tried.
    `ticket(base_url)` overrides how tickets are obtained (default: the HTTP API
    with `token`). Gives up after `max_retries` failed connections in a row.
    """
    bases = [base_url] if isinstance(base_url, str) else list(base_url)
    get_ticket = ticket or (lambda base: fetch_ticket(base, token=token, headers=headers))
    failures, turn = 0, 0
    while True:
        base = bases[turn % len(bases)]
        try:
            issued = get_ticket(base)
            issued = await issued if inspect.isawaitable(issued) else issued
            url = ws_url(base, f"ws/executions/{execution_id}/", issued)
            async with websockets.connect(url, open_timeout=10, max_size=2**22) as ws:
                await ws.send(json.dumps({"type": "subscribe", "last_seq": last_seq}))
                async for raw in ws:
                    frame = json.loads(raw)
                    kind = frame.get("type")
                    if kind == "error":
                        error = frame["error"]
                        if error["code"] == "not_found":
                            raise StreamRefused(error["message"])
                        raise ValueError(f"server error frame: {error}")
                    failures = 0  # a frame arrived: this connection works
                    if kind == "event":
                        if frame["seq"] <= last_seq:
                            continue  # never hand out an event twice
                        last_seq = frame["seq"]
                        yield frame
                        if frame["event"] in FINAL_EVENTS:
                            return
                    elif kind == "snapshot":
                        last_seq = frame["seq"]
                        yield frame
                        if frame["data"].get("status") in FINAL_STATUSES:
                            return
                    elif kind == "node.output.delta" and deltas:
                        yield frame
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                raise StreamRefused(f"WebSocket refused with {exc.response.status_code}") from None
            failures += 1
        except (TimeoutError, OSError, ConnectionClosed, httpx.TransportError):
            failures += 1
        if failures > max_retries:
            raise ConnectionError(f"stream of {execution_id}: {failures} failed connections "
                                  "in a row")
        turn += 1
        await asyncio.sleep(retry_delay if failures else 0.05)
