"""Reads for live progress: replay pages, snapshots, and the embedded tail."""

from __future__ import annotations

from django.db.models import Max, Min

from apps.engine.models import TERMINAL_EXECUTION, Execution, ExecutionEvent
from apps.engine.selectors import execution_detail
from apps.live.frames import delta_frame
from apps.live.models import OutputDelta

PAGE = 500


def event_dict(seq: int, type_: str, payload: dict, at) -> dict:
    return {"seq": seq, "type": type_, "payload": payload, "at": at.isoformat()}


def events_after(execution_id, after: int, upto: int | None = None,
                 limit: int = PAGE) -> list[dict]:
    """Up to `limit` events of one execution with after < seq (<= upto), in seq order."""
    rows = ExecutionEvent.objects.filter(execution_id=execution_id, seq__gt=after)
    if upto is not None:
        rows = rows.filter(seq__lte=upto)
    return [event_dict(*row) for row in rows.order_by("seq").values_list(
        "seq", "type", "payload", "created_at")[:limit]]


def first_kept_seq(execution_id) -> int | None:
    return ExecutionEvent.objects.filter(execution_id=execution_id).aggregate(
        first=Min("seq"))["first"]


def snapshot(execution_id) -> dict:
    """The execution as it stands (status, progress, node runs) and the seq it is as of."""
    detail = execution_detail(execution_id)
    return {"type": "snapshot", "execution": str(execution_id), "seq": detail["last_seq"],
            "data": detail}


def unfinished_for_client(client_id: str) -> list[str]:
    return [str(pk) for pk in Execution.objects.filter(client_id=client_id).exclude(
        status__in=TERMINAL_EXECUTION).order_by("created_at").values_list("pk", flat=True)]


def last_seqs(execution_ids) -> dict[str, int]:
    return {str(pk): seq for pk, seq in Execution.objects.filter(
        pk__in=list(execution_ids)).values_list("pk", "last_seq")}


def client_last_seqs(client_id: str, since) -> dict[str, int]:
    """Executions of a client touched since `since`, with their last seq."""
    return {str(pk): seq for pk, seq in Execution.objects.filter(
        client_id=client_id, updated_at__gte=since).values_list("pk", "last_seq")}


def client_of(execution_id) -> str:
    return Execution.objects.filter(pk=execution_id).values_list(
        "client_id", flat=True).first() or ""


# --- the embedded default's tail (by primary key: an index range scan) ----------
def tail_start() -> tuple[int, int]:
    return (ExecutionEvent.objects.aggregate(m=Max("id"))["m"] or 0,
            OutputDelta.objects.aggregate(m=Max("id"))["m"] or 0)


def events_since(last_id: int, limit: int = 1000) -> list[tuple]:
    """(id, execution id, client id, event dict) of events with id > last_id, by id."""
    rows = (ExecutionEvent.objects.filter(id__gt=last_id).order_by("id")
            .values_list("id", "execution_id", "execution__client_id", "seq", "type",
                         "payload", "created_at")[:limit])
    return [(pk, str(eid), client, event_dict(seq, type_, payload, at))
            for pk, eid, client, seq, type_, payload, at in rows]


def deltas_since(last_id: int, limit: int = 1000) -> list[tuple]:
    """(id, client id, delta frame) of emitted output with id > last_id, by id."""
    rows = (OutputDelta.objects.filter(id__gt=last_id).order_by("id")
            .values_list("id", "execution_id", "execution__client_id", "node_id", "attempt",
                         "index", "chunks", "text", "created_at")[:limit])
    return [(pk, client, delta_frame(str(eid), node, attempt, index, chunks, text, at.isoformat()))
            for pk, eid, client, node, attempt, index, chunks, text, at in rows]

