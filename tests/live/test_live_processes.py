"""Reconnect without loss over real daphne processes and a real worker.

On the SQLite pass the processes run the embedded default (the web process
tails the event table); on the PostgreSQL + Redis pass they fan out through
channels-redis. A client that drops mid-execution, or whose daphne is
SIGKILLed, reconnects with its last seq and gets every event once and in order.
"""

import asyncio

import pytest
from channels.db import database_sync_to_async

from apps.api.tokens import create_token
from apps.live import fanout
from braid.client import Client
from braid.stream import stream
from tests.live.conftest import start
from tests.live.processes import LiveProcesses, embedded

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

# A gate (so the client is subscribed before anything streams: deltas are live
# only), a streaming node, then a chain of nodes that take a while: long enough to
# drop the connection in the middle and miss events.
TOKENS = 30
SLOW = {"name": "slow with tokens",
        "nodes": [{"id": "gate", "type": "signal", "config": {"name": "go"}},
                  {"id": "llm", "type": "python",
                   "config": {"function": "braid.stream_text",
                              "args": {"chunks": TOKENS, "delay_s": 0.02}}}]
        + [{"id": f"s{i}", "type": "python",
            "config": {"function": "braid.sleep", "args": {"seconds": 0.3}}} for i in range(6)],
        "edges": [{"from": "gate", "to": "llm"}, {"from": "llm", "to": "s0"}]
        + [{"from": f"s{i}", "to": f"s{i + 1}"} for i in range(5)]}
TEXT = "".join(f"tok{i} " for i in range(TOKENS))


@pytest.fixture
def procs(transactional_db):
    harness = LiveProcesses()
    try:
        yield harness
    finally:
        harness.stop()
        print(harness.logs())


def read_token(user) -> str:
    """An API token with only the `read` scope: enough to follow (it asks for tickets)."""
    return create_token(user, "live test", "read")[1]


async def open_gate(execution_id):
    """Send the gate's signal as soon as the gate is parked (a Conflict until then)."""
    from apps.engine.errors import Conflict
    from apps.engine.signaling import send_signal

    while True:
        try:
            return await database_sync_to_async(send_signal)(execution_id, "go", {})
        except Conflict:
            await asyncio.sleep(0.05)


def expected_mode():
    assert fanout.mode() == ("tail" if embedded() else "layer")


def test_a_client_that_drops_mid_execution_resumes_from_its_last_seq(procs, alice):
    expected_mode()
    procs.start_worker(workers=1)
    _, url = procs.start_daphne()
    execution = start(alice, spec=SLOW)
    braid = Client(url, token=read_token(alice))  # tickets over HTTP, then the WebSocket

    async def scenario():
        seen, deltas, gate = [], [], None
        # First connection: until the streaming node is done, then drop it.
        async for frame in braid.stream(str(execution.pk)):
            if gate is None:  # a frame came: we are subscribed
                gate = asyncio.create_task(open_gate(execution.pk))
            if frame["type"] == "node.output.delta":
                deltas.append(frame["text"])
                continue
            seen.append(frame["seq"])
            if frame["event"] == "node.succeeded" and frame["data"]["node"] == "s0":
                break
        await asyncio.sleep(0.8)  # the execution moves on while we are away
        async for frame in braid.stream(str(execution.pk), seen[-1]):
            if frame["type"] == "event":
                seen.append(frame["seq"])
        return seen, deltas

    seen, deltas = asyncio.run(asyncio.wait_for(scenario(), 120))
    execution.refresh_from_db()
    assert execution.status == "succeeded"
    assert seen == list(range(1, execution.last_seq + 1))
    assert "".join(deltas) == TEXT


def test_after_sigkill_of_its_daphne_a_client_resumes_on_another_without_loss(procs, alice):
    expected_mode()
    procs.start_worker(workers=1)
    doomed, first = procs.start_daphne()
    _, second = procs.start_daphne()
    execution = start(alice, spec=SLOW)
    token = read_token(alice)

    async def scenario():
        seen, killed_at, gate = [], None, None
        async for frame in stream([first, second], str(execution.pk), retry_delay=0.2,
                                  token=token, deltas=False):
            seen.append(frame["seq"])
            if gate is None:
                gate = asyncio.create_task(open_gate(execution.pk))
            if killed_at is None and frame["event"] == "node.succeeded" \
                    and frame["data"]["node"] == "s0":
                killed_at = frame["seq"]
                procs.sigkill(doomed)  # the stream's socket dies with it
        return seen, killed_at

    seen, killed_at = asyncio.run(asyncio.wait_for(scenario(), 120))
    execution.refresh_from_db()
    assert not doomed.alive()
    assert killed_at is not None and killed_at < execution.last_seq
    assert execution.status == "succeeded"
    assert seen == list(range(1, execution.last_seq + 1))
