"""What the after-commit hook publishes (channels-redis mode), without a database."""

from datetime import UTC, datetime

from apps.engine.hooks import CommittedBatch, CommittedEvent
from apps.live import groups
from apps.live.fanout import messages_for

AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_batch_becomes_one_message_per_execution_and_group_in_seq_order():
    batch = CommittedBatch(events=[
        CommittedEvent("e1", 4, "node.started", {"node": "a"}, AT, "shop"),
        CommittedEvent("e2", 1, "execution.created", {}, AT, ""),
        CommittedEvent("e1", 5, "node.succeeded", {"node": "a"}, AT, "shop"),
    ])
    messages = messages_for(batch)
    assert [group for group, _ in messages] == [
        groups.execution_group("e1"), groups.client_group("shop"), groups.execution_group("e2")]
    first = messages[0][1]
    assert first["type"] == "live.events" and first["execution"] == "e1"
    assert [e["seq"] for e in first["events"]] == [4, 5]
    assert first["events"][0] == {"seq": 4, "type": "node.started", "payload": {"node": "a"},
                                  "at": AT.isoformat()}


def test_group_names_are_valid_for_any_client_id():
    name = groups.client_group("ünïcode client / with spaces " * 10)
    assert len(name) < 100 and name.replace(".", "").replace("-", "").isalnum()


def test_only_followed_groups_get_a_message_and_unfollowed_executions_none():
    batch = CommittedBatch(events=[
        CommittedEvent("e1", 4, "node.started", {"node": "a"}, AT, "shop"),
        CommittedEvent("e2", 1, "execution.created", {}, AT, "shop"),
        CommittedEvent("e3", 1, "execution.created", {}, AT, ""),
    ])
    followed = {groups.execution_group("e2")}
    messages = messages_for(batch, followed)
    assert [(group, message["execution"]) for group, message in messages] == [
        (groups.execution_group("e2"), "e2")]
    assert messages_for(batch, set()) == []
