"""`ctx.emit` chunks batched into `node.output.delta` frames.

A node's stream buffers what it emits; one flusher thread per process cuts a
frame when a stream holds DELTA_MAX_BYTES, or DELTA_FLUSH_S after its oldest
unsent chunk, and when the node finishes (close waits for that last frame, so
it leaves before the node's result is committed). Frames go out through the
process's fan-out: the shared channel layer, or OutputDelta rows that the web
processes tail on the embedded default. Deltas carry no seq: they are not in
the execution's event log; the node's output keeps the whole text.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from apps.live import fanout, groups
from apps.live.frames import delta_frame

log = logging.getLogger(__name__)


class DeltaStream:
    """The emitted text of one node attempt; `write` only buffers (cheap, any thread)."""

    def __init__(self, flusher: Flusher, execution_id: str, node_id: str, attempt: int):
        self.flusher = flusher
        self.execution_id, self.node_id, self.attempt = execution_id, node_id, attempt
        self.client_id: str | None = None  # looked up by the flusher, once
        self.lock = threading.Lock()
        self.parts: list[str] = []
        self.size = 0
        self.oldest: float | None = None
        self.index = 0
        self.closing = False
        self.done = threading.Event()

    def write(self, text: str) -> None:
        with self.lock:
            self.parts.append(text)
            self.size += len(text.encode())
            if self.oldest is None:
                self.oldest = time.monotonic()
            full = self.size >= self.flusher.max_bytes
        self.flusher.wake(self, urgent=full)

    def close(self) -> None:
        """Flush what is left and wait (bounded) until it is sent."""
        with self.lock:
            self.closing = True
        self.flusher.wake(self, urgent=True)
        if not self.done.wait(5.0):
            log.warning("last output delta of %s/%s not sent within 5 s",
                        self.execution_id, self.node_id)

    def take(self, now: float) -> list[dict]:
        """Frames due now: full ones, and the rest if old enough or closing."""
        with self.lock:
            if not self.parts:
                return []
            due = (self.closing or self.size >= self.flusher.max_bytes
                   or now - self.oldest >= self.flusher.flush_s)
            if not due:
                return []
            frames, batch, size = [], [], 0
            for part in self.parts:
                batch.append(part)
                size += len(part.encode())
                if size >= self.flusher.max_bytes:
                    frames.append(self._frame(batch))
                    batch, size = [], 0
            if batch:
                frames.append(self._frame(batch))
            self.parts, self.size, self.oldest = [], 0, None
            return frames

    def _frame(self, batch: list[str]) -> dict:
        self.index += 1
        return delta_frame(self.execution_id, self.node_id, self.attempt, self.index,
                           len(batch), "".join(batch), timezone.now().isoformat())


class Flusher:
    """One thread per process sends every stream's frames, in order, off the handlers."""

    def __init__(self):
        self.pid = os.getpid()
        live = settings.BRAID_LIVE
        self.flush_s = live["DELTA_FLUSH_S"]
        self.max_bytes = live["DELTA_MAX_BYTES"]
        self.cond = threading.Condition()
        self.streams: set[DeltaStream] = set()
        self.urgent = False
        self.last_prune = 0.0
        threading.Thread(target=self._run, daemon=True, name="braid-live-deltas").start()

    def wake(self, stream: DeltaStream, urgent: bool) -> None:
        with self.cond:
            new = stream not in self.streams
            self.streams.add(stream)
            self.urgent = self.urgent or urgent
            if urgent or new:  # a new stream: the flusher switches to timed rounds
                self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                if not self.urgent:
                    self.cond.wait(self.flush_s if self.streams else None)
                self.urgent = False
                streams = list(self.streams)
            try:
                self._flush(streams)
            except Exception:  # never let the thread die: the next round retries
                log.exception("sending output deltas failed")
                close_old_connections()

    def _flush(self, streams: list[DeltaStream]) -> None:
        now = time.monotonic()
        out = []
        for stream in streams:
            frames = stream.take(now)
            if frames:
                if stream.client_id is None:
                    stream.client_id = fanout.client_of(stream.execution_id)
                out.extend((stream, frame) for frame in frames)
        if out:
            send_frames(out)
        for stream in streams:
            with stream.lock:
                finished = stream.closing and not stream.parts
            if finished:
                with self.cond:
                    self.streams.discard(stream)
                stream.done.set()
        if fanout.mode() == "tail" and now - self.last_prune > 60:
            self.last_prune = now
            prune_old_rows()


def send_frames(out: list[tuple[DeltaStream, dict]]) -> None:
    if fanout.mode() == "layer":
        fanout.publish([(group, groups.delta_message(frame)) for stream, frame in out
                        for group in groups.groups_for(stream.execution_id, stream.client_id)])
        return
    from apps.live.models import OutputDelta

    OutputDelta.objects.bulk_create([OutputDelta(
        execution_id=f["execution"], node_id=f["node"], attempt=f["attempt"],
        index=f["index"], chunks=f["chunks"], text=f["text"], created_at=timezone.now())
        for _, f in out])


def prune_old_rows() -> None:
    """Deltas are transient: the web processes read them within a poll interval."""
    from apps.live.models import OutputDelta

    OutputDelta.objects.filter(created_at__lt=timezone.now() - timedelta(minutes=5)).delete()


_flusher: Flusher | None = None
_lock = threading.Lock()


def open_stream(execution_id: str, node_id: str, attempt: int) -> DeltaStream:
    """The factory `apps.engine.streams` calls on a node's first emit."""
    global _flusher
    with _lock:
        if _flusher is None or _flusher.pid != os.getpid():
            _flusher = Flusher()
    return DeltaStream(_flusher, execution_id, node_id, attempt)
