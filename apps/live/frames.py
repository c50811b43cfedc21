"""The WebSocket protocol's frames and its pure decisions (no Django).

Client → server: `{"type": "subscribe", "last_seq": N}` (on a client stream
`last_seq` maps execution ids to seqs), `{"type": "ping"}`.
Server → client: `event`, `snapshot`, `subscribed`, `node.output.delta`,
`heartbeat`, `pong` and `error` frames (see docs/live.md).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

MAX_FRAME_BYTES = 64 * 1024


class BadFrame(ValueError):
    """A client frame we cannot act on; `code` goes into the error frame."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def event_frame(execution_id: str, event: dict) -> dict:
    """`event` is {"seq", "type", "payload", "at"} as fan-out and selectors make it."""
    return {"type": "event", "execution": execution_id, "seq": event["seq"],
            "event": event["type"], "data": event["payload"], "at": event["at"]}


def delta_frame(execution_id: str, node_id: str, attempt: int, index: int, chunks: int,
                text: str, at: str) -> dict:
    """Partial output of a running node: `chunks` emit() calls joined, frame `index`."""
    return {"type": "node.output.delta", "execution": execution_id, "node": node_id,
            "attempt": attempt, "index": index, "chunks": chunks, "text": text, "at": at}


def error_frame(code: str, message: str, details: list | None = None) -> dict:
    # The same shape as the HTTP API's errors.
    return {"type": "error", "error": {"code": code, "message": message,
                                       "details": details or []}}


def heartbeat_frame() -> dict:
    return {"type": "heartbeat", "at": now_iso()}


def parse(text: str | None, binary: bytes | None) -> dict:
    """One client frame as a dict with a `type`, or BadFrame saying what is wrong."""
    if binary is not None:
        raise BadFrame("bad_frame", "binary frames are not accepted; send JSON text")
    if text is None or len(text) > MAX_FRAME_BYTES:
        raise BadFrame("bad_frame", f"a frame must be JSON text of at most {MAX_FRAME_BYTES} bytes")
    try:
        content = json.loads(text)
    except ValueError as exc:
        raise BadFrame("bad_json", f"frame is not JSON: {exc}") from None
    if not isinstance(content, dict) or not isinstance(content.get("type"), str):
        raise BadFrame("bad_frame", 'a frame must be a JSON object with a string "type"')
    return content


def _seq(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadFrame("bad_last_seq", f"{where} must be an integer >= 0, got {value!r}")
    return value


def execution_last_seq(content: dict) -> int:
    """`last_seq` of a subscribe on an execution stream (absent: 0, everything)."""
    return _seq(content.get("last_seq", 0), "last_seq")


def client_last_seqs(content: dict) -> dict[str, int]:
    """`last_seq` of a subscribe on a client stream: {execution id: seq} (0 or absent: {})."""
    value = content.get("last_seq", {})
    if value == 0:
        return {}
    if not isinstance(value, dict):
        raise BadFrame("bad_last_seq", "on a client stream last_seq maps execution ids to "
                                       f"the last seq seen of each, got {value!r}")
    return {str(k): _seq(v, f"last_seq[{k!r}]") for k, v in value.items()}


def needs_snapshot(after: int, first_kept_seq: int | None) -> bool:
    """True when events after `after` are no longer all in the table (retention)."""
    return first_kept_seq is not None and first_kept_seq > after + 1


def classify(sent_seq: int, seq: int) -> str:
    """What to do with a live event `seq` when the client has everything up to `sent_seq`:
    "skip" (already sent), "send" (the next one) or "refill" (a gap to fill first)."""
    if seq <= sent_seq:
        return "skip"
    return "send" if seq == sent_seq + 1 else "refill"
