"""Handlers' ctx.log lines are kept with their node run, bounded; engine logs are structured."""

import json
import logging

import pytest

from apps.engine.models import NodeRun, NodeRunLog
from apps.engine.selectors import execution_detail
from apps.nodes.contract import MAX_LOG_LINES, NodeContext
from config.logformat import JsonFormatter, PlainFormatter
from tests.personas import admin_url, login, make_persona

CHATTY = {"name": "chatty", "nodes": [
    {"id": "talk", "type": "python", "config": {"function": "tests.chatty",
                                                "args": {"lines": 3}}},
    {"id": "quiet", "type": "noop"}], "edges": [{"from": "talk", "to": "quiet"}]}


@pytest.mark.django_db(transaction=True)
def test_lines_a_handler_logs_are_kept_with_its_node_run_and_shown(run_graph):
    done = run_graph(CHATTY)
    assert done.status == "succeeded"
    talk = NodeRun.objects.get(execution=done, node_id="talk")
    lines = NodeRunLog.objects.get(node_run=talk).lines
    assert [(line["level"], line["message"]) for line in lines] == [
        ("info", "step 1 of 3"), ("info", "step 2 of 3"), ("warning", "step 3 of 3")]
    assert not NodeRunLog.objects.filter(node_run__node_id="quiet").exists()

    detail = execution_detail(done.pk)
    by_node = {run["node_id"]: run["logs"] for run in detail["node_runs"]}
    assert [line["message"] for line in by_node["talk"]][-1] == "step 3 of 3"
    assert by_node["quiet"] == []

    client = login(make_persona("vera", "viewer"))
    page = client.get(admin_url(NodeRun, "change", talk.pk)).content.decode()
    assert "step 2 of 3" in page


def test_a_handler_that_logs_too_much_keeps_the_first_lines_and_a_count():
    ctx = NodeContext(execution_id="e", node_id="n", node_type="python", attempt=1,
                      config={}, input={}, nodes={})
    for i in range(MAX_LOG_LINES + 25):
        ctx.log("x" * 5000 if i == 0 else f"line {i}")
    kept = ctx.captured_logs()
    assert len(kept) == MAX_LOG_LINES + 1
    assert len(kept[0]["message"]) == 2000
    assert kept[-1]["message"] == "… 25 more line(s) not kept"


def record(**extra) -> logging.LogRecord:
    rec = logging.LogRecord("apps.engine.transitions", logging.WARNING, __file__, 1,
                            "node failed: %s", ("boom",), None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_logs_carry_execution_node_and_attempt_as_fields():
    line = json.loads(JsonFormatter().format(record(execution="e-1", node="b", attempt=2)))
    assert line["message"] == "node failed: boom" and line["level"] == "WARNING"
    assert (line["execution"], line["node"], line["attempt"]) == ("e-1", "b", 2)


def test_plain_logs_append_the_context_the_message_lacks():
    text = PlainFormatter("%(message)s").format(record(execution="e-1", node="b", attempt=2))
    assert text == "node failed: boom execution=e-1 node=b attempt=2"
