"""Channel-layer group names and the messages sent to them (shared by both fan-outs)."""

from __future__ import annotations

import hashlib


def execution_group(execution_id: str) -> str:
    return "live.x." + str(execution_id).replace("-", "")


def client_group(client_id: str) -> str:
    # Client ids are free text; group names allow only [a-zA-Z0-9._-] and < 100 chars.
    return "live.c." + hashlib.sha256(client_id.encode()).hexdigest()[:40]


def groups_for(execution_id: str, client_id: str) -> list[str]:
    return [execution_group(execution_id)] + ([client_group(client_id)] if client_id else [])


def events_message(execution_id: str, events: list[dict]) -> dict:
    """Committed events of one execution, in seq order, as one layer message."""
    return {"type": "live.events", "execution": execution_id, "events": events}


def delta_message(frame: dict) -> dict:
    return {"type": "live.delta", "frame": frame}
