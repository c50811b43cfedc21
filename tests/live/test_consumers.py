"""The WebSocket protocol, consumer by consumer (WebsocketCommunicator, one process).

These run on whichever fan-out the settings choose: the tail of the event table on
the SQLite pass, channels-redis on the PostgreSQL + Redis pass.
"""

import asyncio
import json

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.test import Client

from apps.engine.models import Execution, ExecutionEvent
from apps.live import groups
from tests.conftest import run_until_done
from tests.live.conftest import drive, events_of, final, open_ws, receive, receive_until, start

db = database_sync_to_async


def subscribed(frame):
    return frame["type"] == "subscribed"


def test_subscribe_replays_the_past_then_streams_live_events_each_once_in_order(alice):
    execution = start(alice)

    async def scenario():
        comm, connected, _ = await open_ws(f"/ws/executions/{execution.pk}/", alice)
        assert connected
        await comm.send_json_to({"type": "subscribe", "last_seq": 0})
        replayed = await receive_until(comm, subscribed)
        assert replayed[-1]["last_seq"] == {str(execution.pk): 1}
        runner = asyncio.create_task(asyncio.to_thread(drive, execution.pk))
        live = await receive_until(comm, final)
        await runner
        await comm.disconnect()
        return events_of(replayed + live)

    events = asyncio.run(scenario())
    last = Execution.objects.get(pk=execution.pk).last_seq
    assert [e["seq"] for e in events] == list(range(1, last + 1))
    assert events[0]["event"] == "execution.created"
    assert events[-1]["event"] == "execution.succeeded"
    first = events[0]
    assert set(first) == {"type", "execution", "seq", "event", "data", "at"}
    assert first["execution"] == str(execution.pk)


def test_reconnecting_with_last_seq_sends_only_the_events_after_it(alice):
    execution = run_until_done(start(alice).pk)

    async def scenario():
        comm, _, _ = await open_ws(f"/ws/executions/{execution.pk}/", alice)
        await comm.send_json_to({"type": "subscribe", "last_seq": 3})
        frames = await receive_until(comm, subscribed)
        await comm.disconnect()
        return events_of(frames)

    events = asyncio.run(scenario())
    assert [e["seq"] for e in events] == list(range(4, execution.last_seq + 1))


def test_a_gap_in_live_seqs_is_refilled_from_the_table_without_duplicates(alice):
    execution = start(alice)

    async def scenario():
        comm, _, _ = await open_ws(f"/ws/executions/{execution.pk}/", alice)
        await comm.send_json_to({"type": "subscribe", "last_seq": 0})
        await receive_until(comm, subscribed)

        def append_three():  # committed, but only the last reaches the group below
            for seq in (2, 3, 4):
                ExecutionEvent.objects.create(execution_id=execution.pk, seq=seq,
                                              type="test.note", payload={"n": seq})
            Execution.objects.filter(pk=execution.pk).update(last_seq=4)

        await db(append_three)()
        layer_event = {"seq": 4, "type": "test.note", "payload": {"n": 4},
                       "at": "2026-01-01T00:00:00+00:00"}
        await get_channel_layer().group_send(groups.execution_group(str(execution.pk)),
                                             groups.events_message(str(execution.pk),
                                                                   [layer_event]))
        frames = await receive_until(comm, lambda f: f.get("seq") == 4)
        # Nothing else may follow: the tail (or a second copy) must not repeat 2..4.
        await comm.send_json_to({"type": "ping"})
        pong = await receive(comm)
        await comm.disconnect()
        return frames, pong

    frames, pong = asyncio.run(scenario())
    assert [f["seq"] for f in events_of(frames)] == [2, 3, 4]
    assert pong["type"] == "pong"


def test_snapshot_comes_first_when_the_events_after_last_seq_were_pruned(alice):
    execution = run_until_done(start(alice).pk)
    ExecutionEvent.objects.filter(execution_id=execution.pk, seq__lte=3).delete()

    async def scenario():
        comm, _, _ = await open_ws(f"/ws/executions/{execution.pk}/", alice)
        await comm.send_json_to({"type": "subscribe", "last_seq": 1})
        frames = await receive_until(comm, subscribed)
        await comm.disconnect()
        return frames

    frames = asyncio.run(scenario())
    snapshot = frames[0]
    assert snapshot["type"] == "snapshot"
    assert snapshot["seq"] == execution.last_seq
    assert snapshot["data"]["status"] == "succeeded"
    assert {r["node_id"] for r in snapshot["data"]["node_runs"]} == {"a", "b", "c"}
    assert events_of(frames) == []  # the snapshot is as of the last seq


def test_malformed_frames_get_error_frames_and_the_connection_stays_open(alice):
    execution = run_until_done(start(alice).pk)

    async def scenario():
        comm, _, _ = await open_ws(f"/ws/executions/{execution.pk}/", alice)
        answers = []
        for bad in ["not json {", json.dumps([1, 2]), json.dumps({"type": "dance"}),
                    json.dumps({"type": "subscribe", "last_seq": -1}),
                    json.dumps({"type": "subscribe", "last_seq": "7"})]:
            await comm.send_to(text_data=bad)
            answers.append(await receive(comm))
        await comm.send_to(bytes_data=b"\x00\x01")
        answers.append(await receive(comm))
        await comm.send_json_to({"type": "subscribe", "last_seq": 0})
        frames = await receive_until(comm, subscribed)
        await comm.disconnect()
        return answers, frames

    answers, frames = asyncio.run(scenario())
    assert [a["type"] for a in answers] == ["error"] * 6
    assert [a["error"]["code"] for a in answers] == [
        "bad_json", "bad_frame", "unknown_type", "bad_last_seq", "bad_last_seq", "bad_frame"]
    assert "last_seq" in answers[3]["error"]["message"]
    assert len(events_of(frames)) == execution.last_seq  # still open, and it works


def test_an_outsiders_subscription_is_refused(alice, oscar):
    execution = start(alice)

    async def scenario():
        comm, connected, _ = await open_ws(f"/ws/executions/{execution.pk}/", oscar)
        frame = await receive(comm)
        closed = await comm.receive_output(timeout=5)
        await comm.disconnect()
        return frame, closed

    frame, closed = asyncio.run(scenario())
    assert frame["type"] == "error" and frame["error"]["code"] == "not_found"
    assert closed == {"type": "websocket.close", "code": 4404}


def test_an_unknown_execution_is_refused_like_a_forbidden_one(alice):
    async def scenario():
        comm, _, _ = await open_ws("/ws/executions/not-a-uuid/", alice)
        frame, closed = await receive(comm), await comm.receive_output(timeout=5)
        await comm.disconnect()
        return frame, closed

    frame, closed = asyncio.run(scenario())
    assert frame["error"]["code"] == "not_found" and closed["code"] == 4404


def test_staff_and_the_teams_viewers_may_follow(alice, sam, victor):
    execution = run_until_done(start(alice).pk)

    async def follow(user):
        comm, _, _ = await open_ws(f"/ws/executions/{execution.pk}/", user)
        await comm.send_json_to({"type": "subscribe"})
        frames = await receive_until(comm, subscribed)
        await comm.disconnect()
        return len(events_of(frames))

    assert asyncio.run(follow(sam)) == execution.last_seq
    assert asyncio.run(follow(victor)) == execution.last_seq


def test_an_anonymous_connection_is_refused(alice):
    execution = start(alice)

    async def scenario():
        comm, connected, _ = await open_ws(f"/ws/executions/{execution.pk}/")
        await comm.disconnect()
        return connected

    assert asyncio.run(scenario()) is False


def test_a_used_ticket_is_refused(alice):
    from apps.live import tickets

    execution = start(alice)
    ticket, _ = tickets.issue(alice)

    async def connect():
        from channels.testing import WebsocketCommunicator

        from tests.live.conftest import application

        comm = WebsocketCommunicator(application(),
                                     f"/ws/executions/{execution.pk}/?ticket={ticket}")
        connected, _ = await comm.connect(timeout=10)
        await comm.disconnect()
        return connected

    assert asyncio.run(connect()) is True
    assert asyncio.run(connect()) is False


def test_an_expired_ticket_is_refused(alice, settings):
    from datetime import timedelta

    from apps.live import tickets
    from apps.live.models import WsTicket

    ticket, row = tickets.issue(alice)
    WsTicket.objects.filter(pk=row.pk).update(expires_at=row.expires_at - timedelta(hours=1))
    assert tickets.redeem(ticket) is None
    assert tickets.redeem("made-up") is None


def _session_headers(user, origin: str):
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return [(b"origin", origin.encode()), (b"cookie", cookie.encode()),
            (b"host", b"127.0.0.1")]


def test_a_browser_session_from_an_allowed_origin_may_follow(alice):
    execution = start(alice)
    headers = _session_headers(alice, "http://127.0.0.1:8000")

    async def scenario():
        comm, connected, _ = await open_ws(f"/ws/executions/{execution.pk}/", headers=headers)
        await comm.send_json_to({"type": "subscribe", "last_seq": 0})
        frames = await receive_until(comm, subscribed)
        await comm.disconnect()
        return connected, frames

    connected, frames = asyncio.run(scenario())
    assert connected and events_of(frames)[0]["event"] == "execution.created"


def test_a_browser_session_from_another_origin_is_refused(alice):
    execution = start(alice)
    headers = _session_headers(alice, "https://evil.example")

    async def scenario():
        comm, connected, _ = await open_ws(f"/ws/executions/{execution.pk}/", headers=headers)
        await comm.disconnect()
        return connected

    assert asyncio.run(scenario()) is False


def test_heartbeats_arrive_while_nothing_happens(alice, settings):
    settings.BRAID_LIVE = dict(settings.BRAID_LIVE, HEARTBEAT_S=0.2)
    execution = run_until_done(start(alice).pk)

    async def scenario():
        comm, _, _ = await open_ws(f"/ws/executions/{execution.pk}/", alice)
        await comm.send_json_to({"type": "subscribe", "last_seq": execution.last_seq})
        frames = await receive_until(comm, lambda f: f["type"] == "heartbeat")
        await comm.disconnect()
        return frames

    frames = asyncio.run(scenario())
    assert frames[-1]["type"] == "heartbeat" and events_of(frames) == []


def test_a_client_stream_follows_every_execution_started_with_its_client_id(alice):
    earlier = start(alice, client_id="shop-7")

    async def scenario():
        comm, connected, _ = await open_ws("/ws/clients/shop-7/", alice)
        await comm.send_json_to({"type": "subscribe", "last_seq": 0})
        replayed = await receive_until(comm, subscribed)
        later = await db(start)(alice, client_id="shop-7")
        other = await db(start)(alice, client_id="shop-8")
        await asyncio.to_thread(drive, earlier.pk)
        await asyncio.to_thread(drive, later.pk)
        await asyncio.to_thread(drive, other.pk)
        frames = replayed
        finished = set()
        while len(finished) < 2:
            frame = await receive(comm)
            frames.append(frame)
            if final(frame):
                finished.add(frame["execution"])
        await comm.disconnect()
        return later, other, frames

    later, other, frames = asyncio.run(scenario())
    by_execution = {}
    for e in events_of(frames):
        by_execution.setdefault(e["execution"], []).append(e["seq"])
    assert set(by_execution) == {str(earlier.pk), str(later.pk)}
    for eid, seqs in by_execution.items():
        assert seqs == list(range(1, Execution.objects.get(pk=eid).last_seq + 1))


def test_an_outsider_cannot_follow_someone_elses_client_id(alice, oscar):
    start(alice, client_id="shop-7")

    async def scenario():
        comm, _, _ = await open_ws("/ws/clients/shop-7/", oscar)
        frame = await receive(comm)
        await comm.disconnect()
        return frame

    assert asyncio.run(scenario())["error"]["code"] == "not_found"


def test_an_idle_follower_stays_connected_past_the_channel_layers_read_timeout(alice, settings):
    # channels-redis waits 5 s per blocking read; with redis-py's default 5 s socket
    # timeout an idle follower was cut off with an internal error.
    settings.BRAID_LIVE = dict(settings.BRAID_LIVE, HEARTBEAT_S=6.5)
    execution = run_until_done(start(alice).pk)

    async def scenario():
        comm, _, _ = await open_ws(f"/ws/executions/{execution.pk}/", alice)
        await comm.send_json_to({"type": "subscribe", "last_seq": execution.last_seq})
        frames = await receive_until(comm, lambda f: f["type"] == "heartbeat", timeout=30)
        await comm.send_json_to({"type": "ping"})
        pong = await receive(comm)
        await comm.disconnect()
        return frames, pong

    frames, pong = asyncio.run(scenario())
    assert frames[-1]["type"] == "heartbeat" and pong["type"] == "pong"
