"""WebSocket consumers: follow one execution, or every execution of a client id.

A consumer authenticates (middleware), checks access once, and on `subscribe`:
1. joins the groups first, so nothing committed from now on can pass it by;
2. replays from the table what the client has not seen (a snapshot first when
   retention has removed events it needs). Channels hands group messages to a
   consumer one at a time, so live messages arriving meanwhile wait in its
   channel: that is the buffer;
3. then handles the buffered and live messages, dropping what it already sent
   and refilling any gap in seq from the table first.
A heartbeat every HEARTBEAT_S after which nothing arrived also catches up with
the table, in case the last live messages were lost (a dropped channel message,
a tail that saw ids out of order); while messages flow, the next shows any gap.
Consumers never write.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from apps.live import fanout, frames, groups, reads, selectors
from apps.live.access import may_follow
from apps.live.frames import BadFrame

db = database_sync_to_async


class FollowConsumer(AsyncWebsocketConsumer):
    """Shared by both endpoints; `self.sent` maps execution id → last seq sent."""

    async def connect(self):
        self.user = self.scope.get("user")
        self.sent: dict[str, int] = {}
        self.subscribed = False
        self.visible: dict[str, bool] = {}
        self.heartbeat: asyncio.Task | None = None
        self.tailing = False
        self.flowing = False  # a live message came since the last heartbeat
        if self.user is None or not self.user.is_authenticated:
            await self.close()  # before accept: the handshake is refused (HTTP 403)
            return
        await self.accept()
        if not await self.allowed():
            await self.send_json(frames.error_frame(
                "not_found", "no such execution or client id, or you may not follow it"))
            await self.close(code=4404)
            return
        self.heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def disconnect(self, code):
        if self.heartbeat is not None:
            self.heartbeat.cancel()
        for group in self.groups_to_join() if self.subscribed else []:
            await self.channel_layer.group_discard(group, self.channel_name)
        if self.tailing:
            from apps.live.tail import tailer

            tailer().leave()

    async def dispatch(self, message):
        # Channels' dispatch first closes stale DB connections through a thread hop, for
        # every message. Ours reach the database only via database_sync_to_async, which
        # does that itself; skipping the hop per live message per follower saves the web
        # process a thread round-trip for each event it fans out.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def send_json(self, content: dict) -> None:
        await self.send(text_data=json.dumps(content, separators=(",", ":")))

    # --- client frames ----------------------------------------------------------
    async def receive(self, text_data=None, bytes_data=None):
        try:
            content = frames.parse(text_data, bytes_data)
            kind = content["type"]
            if kind == "subscribe":
                if self.subscribed:
                    raise BadFrame("already_subscribed", "this connection is subscribed already")
                await self.subscribe(content)
            elif kind == "ping":
                await self.send_json({"type": "pong", "at": frames.now_iso()})
            else:
                raise BadFrame("unknown_type", f'unknown frame type {kind!r}; '
                                               'expected "subscribe" or "ping"')
        except BadFrame as exc:
            await self.send_json(frames.error_frame(exc.code, str(exc)))

    async def subscribe(self, content: dict) -> None:
        start = self.start_seqs(content)  # validates before anything happens
        for group in self.groups_to_join():
            await self.channel_layer.group_add(group, self.channel_name)
        if fanout.mode() == "tail":
            from apps.live.tail import tailer

            await tailer().join()
            self.tailing = True
        self.subscribed = True
        self.since = timezone.now()
        for execution_id, after in (await start).items():
            await self.replay(execution_id, after)
        await self.send_json({"type": "subscribed", "last_seq": dict(self.sent)})

    async def replay(self, execution_id: str, after: int, upto: int | None = None) -> None:
        """Send the table's events of one execution after `after` (snapshot if pruned)."""
        if execution_id not in self.sent:
            first = await reads.read(selectors.first_kept_seq, execution_id)
            if frames.needs_snapshot(after, first):
                snapshot = await reads.read(selectors.snapshot, execution_id)
                await self.send_json(snapshot)
                after = snapshot["seq"]
            self.sent[execution_id] = after
        while True:
            page = await reads.read(selectors.events_after, execution_id, self.sent[execution_id], upto)
            for event in page:
                await self.send_event(execution_id, event)
            if len(page) < selectors.PAGE:
                return

    async def send_event(self, execution_id: str, event: dict) -> None:
        await self.send_json(frames.event_frame(execution_id, event))
        self.sent[execution_id] = event["seq"]

    # --- group messages -------------------------------------------------------------
    async def live_events(self, message):
        self.flowing = True
        execution_id = message["execution"]
        if not self.subscribed or not await self.follows(execution_id):
            return
        if execution_id not in self.sent:  # a new execution of this client
            await self.replay(execution_id, 0)
            return
        for event in message["events"]:
            action = frames.classify(self.sent[execution_id], event["seq"])
            if action == "refill":
                await self.replay(execution_id, self.sent[execution_id], upto=event["seq"] - 1)
                action = frames.classify(self.sent[execution_id], event["seq"])
            if action != "skip":
                await self.send_event(execution_id, event)

    async def live_delta(self, message):
        frame = message["frame"]
        if self.subscribed and await self.follows(frame["execution"]):
            await self.send_json(frame)

    async def live_tick(self, message):
        """Heartbeat; then, if nothing came since the last one, catch up with the table in
        case a live message was lost. (While messages flow, the next one shows a gap.)"""
        await self.send_json(frames.heartbeat_frame())
        flowing, self.flowing = self.flowing, False
        if not self.subscribed or flowing:
            return
        for execution_id, last in (await self.table_seqs()).items():
            if last > self.sent.get(execution_id, 0) and await self.follows(execution_id):
                await self.replay(execution_id, self.sent.get(execution_id, 0))

    async def _beat(self):
        # A message to ourselves, so the tick is handled in turn with the live ones.
        while True:
            await asyncio.sleep(settings.BRAID_LIVE["HEARTBEAT_S"])
            await self.channel_layer.send(self.channel_name, {"type": "live.tick"})

    # --- per endpoint -------------------------------------------------------------
    async def allowed(self) -> bool:
        raise NotImplementedError

    def groups_to_join(self) -> list[str]:
        raise NotImplementedError

    async def start_seqs(self, content: dict) -> dict[str, int]:
        raise NotImplementedError

    async def follows(self, execution_id: str) -> bool:
        raise NotImplementedError

    async def table_seqs(self) -> dict[str, int]:
        raise NotImplementedError


class ExecutionConsumer(FollowConsumer):
    """ws/executions/{id}/: one execution's events and partial output."""

    async def allowed(self) -> bool:
        self.execution_id = str(self.scope["url_route"]["kwargs"]["execution_id"])
        try:
            uuid.UUID(self.execution_id)
        except ValueError:
            return False
        return await db(may_follow)(self.user, execution_id=self.execution_id)

    def groups_to_join(self):
        return [groups.execution_group(self.execution_id)]

    def start_seqs(self, content):
        last_seq = frames.execution_last_seq(content)

        async def start():
            return {self.execution_id: last_seq}

        return start()

    async def follows(self, execution_id):
        return execution_id == self.execution_id

    async def table_seqs(self):
        return await reads.read(selectors.last_seqs, [self.execution_id])


class ClientConsumer(FollowConsumer):
    """ws/clients/{client_id}/: every execution started with that client id."""

    async def allowed(self) -> bool:
        self.client_id = self.scope["url_route"]["kwargs"]["client_id"]
        return 0 < len(self.client_id) <= 128 and await db(may_follow)(
            self.user, client_id=self.client_id)

    def groups_to_join(self):
        return [groups.client_group(self.client_id)]

    def start_seqs(self, content):
        given = frames.client_last_seqs(content)

        async def start():
            # Unfinished executions from the start; listed ones (that may have finished
            # while the client was away) from where it left them.
            seqs = {eid: 0 for eid in await reads.read(selectors.unfinished_for_client, self.client_id)}
            for eid, seq in given.items():
                if await self.follows(eid):
                    seqs[eid] = seq
            return seqs

        return start()

    async def follows(self, execution_id):
        if execution_id not in self.visible:
            self.visible[execution_id] = await db(self._check)(execution_id)
        return self.visible[execution_id]

    def _check(self, execution_id) -> bool:
        try:
            uuid.UUID(execution_id)
        except ValueError:
            return False
        return (selectors.client_of(execution_id) == self.client_id
                and may_follow(self.user, execution_id=execution_id))

    async def table_seqs(self):
        seqs = await reads.read(selectors.client_last_seqs, self.client_id, self.since)
        return seqs | await reads.read(selectors.last_seqs, list(self.sent))
