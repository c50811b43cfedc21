"""ctx.emit: partial output batched into node.output.delta frames, whole text durable."""

import asyncio

from apps.engine.models import NodeRun
from apps.nodes.contract import NodeContext, with_emitted_text
from tests.live.conftest import drive, events_of, final, open_ws, receive_until, start

STREAMING = {"name": "streaming",
             "nodes": [{"id": "llm", "type": "python",
                        "config": {"function": "braid.stream_text", "args": {"chunks": 1000}}}],
             "edges": []}
EXPECTED = "".join(f"tok{i} " for i in range(1000))


def test_a_node_emitting_1000_chunks_delivers_them_all_in_order_in_far_fewer_frames(alice):
    execution = start(alice, spec=STREAMING)

    async def scenario():
        comm, _, _ = await open_ws(f"/ws/executions/{execution.pk}/", alice)
        await comm.send_json_to({"type": "subscribe", "last_seq": 0})
        # Deltas are live only: run the node once the subscription is in place.
        frames = await receive_until(comm, lambda f: f["type"] == "subscribed")
        runner = asyncio.create_task(asyncio.to_thread(drive, execution.pk))
        frames += await receive_until(comm, final)
        await runner
        await comm.disconnect()
        return frames

    frames = asyncio.run(scenario())
    deltas = [f for f in frames if f["type"] == "node.output.delta"]
    assert "".join(d["text"] for d in deltas) == EXPECTED
    assert sum(d["chunks"] for d in deltas) == 1000
    assert [d["index"] for d in deltas] == list(range(1, len(deltas) + 1))
    assert len(deltas) <= 20  # ~8.9 KB of text: a few 4 KB frames, not 1,000
    assert {(d["node"], d["attempt"]) for d in deltas} == {("llm", 1)}
    # Deltas are not events of the log: the seqs stay gap-free without them.
    events = events_of(frames)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    succeeded = next(e for e in events if e["event"] == "node.succeeded")
    assert frames.index(deltas[-1]) < frames.index(succeeded)
    run = NodeRun.objects.get(execution_id=execution.pk, node_id="llm")
    assert run.output == {"tokens": 1000, "text": EXPECTED}


def test_slow_emits_leave_within_the_flush_interval_not_at_the_end(alice):
    spec = {"name": "slow stream", "edges": [],
            "nodes": [{"id": "llm", "type": "python",
                       "config": {"function": "braid.stream_text",
                                  "args": {"chunks": 8, "delay_s": 0.15}}}]}
    execution = start(alice, spec=spec)

    async def scenario():
        comm, _, _ = await open_ws(f"/ws/executions/{execution.pk}/", alice)
        await comm.send_json_to({"type": "subscribe", "last_seq": 0})
        # Deltas are live only: run the node once the subscription is in place.
        frames = await receive_until(comm, lambda f: f["type"] == "subscribed")
        runner = asyncio.create_task(asyncio.to_thread(drive, execution.pk))
        frames += await receive_until(comm, final)
        await runner
        await comm.disconnect()
        return frames

    deltas = [f for f in asyncio.run(scenario()) if f["type"] == "node.output.delta"]
    assert "".join(d["text"] for d in deltas) == "".join(f"tok{i} " for i in range(8))
    assert len(deltas) >= 4  # tokens 150 ms apart are not held back until the node ends


def _ctx():
    return NodeContext(execution_id="e", node_id="n", node_type="python", attempt=1,
                       config={}, input={}, nodes={})


def test_emitted_text_joins_the_output():
    ctx = _ctx()
    ctx.emit("Hello, ")
    ctx.emit("world")
    assert with_emitted_text(None, ctx) == {"text": "Hello, world"}
    assert with_emitted_text({"tokens": 2}, ctx) == {"tokens": 2, "text": "Hello, world"}
    assert with_emitted_text({"text": "mine"}, ctx) == {"text": "mine"}
    assert with_emitted_text({"a": 1}, _ctx()) == {"a": 1}


def test_emit_refuses_what_is_not_text():
    import pytest

    with pytest.raises(TypeError, match="emit\\(\\) takes str"):
        _ctx().emit(b"bytes")
