"""The live publisher sends only to groups that have followers (channels-redis)."""

import asyncio

import pytest
from channels.layers import channel_layers

from apps.live import groups, publisher
from apps.live.publisher import Publisher, followed_groups
from tests.live.processes import embedded

pytestmark = pytest.mark.skipif(
    embedded(), reason="the embedded default has no channels-redis layer (it tails the "
    "event table); CI's PostgreSQL + Redis pass runs these")


@pytest.fixture
def layer():
    # A layer of its own: the process-wide one holds connections of other tests' loops.
    return channel_layers.make_backend("default")


def test_followed_groups_are_those_with_a_member(layer):
    async def scenario():
        watched, unwatched = groups.execution_group("a1"), groups.execution_group("b2")
        channel = await layer.new_channel()
        await layer.group_add(watched, channel)
        try:
            return await followed_groups(layer, {watched, unwatched})
        finally:
            await layer.group_discard(watched, channel)

    assert asyncio.run(scenario()) == {groups.execution_group("a1")}


def test_a_follower_gets_its_message_and_nobody_else_is_sent_one(layer, monkeypatch):
    sent = []
    real_send = layer.group_send

    async def spy(group, message):
        sent.append(group)
        await real_send(group, message)

    monkeypatch.setattr(layer, "group_send", spy)
    monkeypatch.setattr(publisher, "get_channel_layer", lambda: layer)
    watched, unwatched = groups.execution_group("c3"), groups.execution_group("d4")
    sender = Publisher()

    def on_sender_loop(coro):
        return asyncio.run_coroutine_threadsafe(coro, sender.loop).result(5)

    channel = on_sender_loop(layer.new_channel())
    on_sender_loop(layer.group_add(watched, channel))
    sender.send([(unwatched, groups.events_message("d4", [{"seq": 1}])),
                 (watched, groups.events_message("c3", [{"seq": 1}]))])
    sender.drain()
    received = on_sender_loop(layer.receive(channel))
    assert received["execution"] == "c3" and received["events"] == [{"seq": 1}]
    assert sent == [watched]
    on_sender_loop(layer.group_discard(watched, channel))
