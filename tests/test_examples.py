"""Every example in examples/ on each path docs/workflows.md documents, run two ways:
through the engine (start + drain in this process) and through `braid run FILE`."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.engine.models import Execution, NodeRun
from apps.engine.start import StartRequest, start_execution
from tests.conftest import EXAMPLES, load_example, run_until_done

# (example, input) → what the documented path ends with: the execution's status and
# output, and each node's final status (absent: never planned).
PATHS = {
    "three_steps with a name": (
        "three_steps", {"who": "ann"}, "succeeded", {"step": 3, "who": "ann"},
        {"a": "succeeded", "b": "succeeded", "c": "succeeded"}),
    "three_steps without input": (
        "three_steps", {}, "succeeded", {"step": 3, "who": "world"},
        {"a": "succeeded", "b": "succeeded", "c": "succeeded"}),
    "conditional_retry review path": (
        "conditional_retry", {"amount": 150}, "succeeded",
        {"tier": "review", "approved": True, "by": "review"},
        {"classify": "succeeded", "review": "succeeded", "fast": "skipped",
         "decide": "succeeded"}),
    "conditional_retry fast path": (
        "conditional_retry", {"amount": 50}, "succeeded",
        {"tier": "fast", "approved": True, "by": "fast"},
        {"classify": "succeeded", "review": "skipped", "fast": "succeeded",
         "decide": "succeeded"}),
    "order_saga happy path": (
        "order_saga", {"items": ["book"], "amount": 12.5}, "succeeded", None,
        {"reserve": "succeeded", "charge": "succeeded", "ship": "succeeded"}),
    "order_saga warehouse down compensates": (
        "order_saga", {"items": ["book"], "amount": 12.5, "warehouse_down": True},
        "compensated", None,
        {"reserve": "succeeded", "charge": "succeeded", "ship": "failed",
         "refund": "succeeded", "release": "succeeded"}),
    "order_saga card declined compensates": (
        "order_saga", {"items": ["book"], "amount": 12.5, "card_declined": True},
        "compensated", None,
        {"reserve": "succeeded", "charge": "failed", "release": "succeeded"}),
    "data_sync default rows": (
        "data_sync", {}, "succeeded", {"total_rows": 1000, "shards": list(range(10))},
        {"plan": "succeeded", "merge": "succeeded",
         **{f"shard_{i}": "succeeded" for i in range(10)}}),
    "data_sync rows per shard": (
        "data_sync", {"rows_per_shard": 7}, "succeeded",
        {"total_rows": 70, "shards": list(range(10))}, None),
}
# The order in which compensations ran (undo in reverse order of completion).
UNDONE = {"order_saga warehouse down compensates": ["refund", "release"],
          "order_saga card declined compensates": ["release"]}


def final_statuses(execution_id) -> dict[str, str]:
    runs = NodeRun.objects.filter(execution_id=execution_id).order_by("attempt", "id")
    return {run.node_id: run.status for run in runs}


def undone(execution_id) -> list[str]:
    return list(NodeRun.objects.filter(execution_id=execution_id, compensation=True)
                .order_by("id").values_list("node_id", flat=True))


def check_path(name: str, execution) -> None:
    example, _, status, output, nodes = PATHS[name]
    assert execution.status == status, execution.error
    if output is not None:
        assert execution.output == output
    if nodes is not None:
        assert final_statuses(execution.pk) == nodes
    if name in UNDONE:
        assert undone(execution.pk) == UNDONE[name]
        assert execution.error["node"] in ("ship", "charge")
    if example == "order_saga" and status == "succeeded":
        assert set(execution.output) == {"reservation", "charge", "tracking"}
        assert all(value for value in execution.output.values())


def test_every_example_has_a_documented_path():
    assert {p[0] for p in PATHS.values()} == {p.stem for p in EXAMPLES.glob("*.json")}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", PATHS)
def test_example_path_through_the_engine(name):
    example, data = PATHS[name][:2]
    execution = start_execution(StartRequest(definition=load_example(example), input=data))
    check_path(name, run_until_done(execution.pk, timeout=30))


@pytest.mark.django_db(transaction=True)
def test_conditional_retry_review_path_retries_the_reviewer_twice():
    execution = start_execution(StartRequest(definition=load_example("conditional_retry"),
                                             input={"amount": 150}))
    run_until_done(execution.pk, timeout=30)
    attempts = NodeRun.objects.filter(execution=execution, node_id="review").order_by("attempt")
    assert [(r.attempt, r.status, r.error_class) for r in attempts] == [
        (1, "failed", "resource"), (2, "failed", "resource"), (3, "succeeded", "")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", PATHS)
def test_example_path_through_braid_run(name, engine):
    example, data, status = PATHS[name][:3]
    out, err = StringIO(), StringIO()
    args = ["braid", "run", str(EXAMPLES / f"{example}.json"), "--input", json.dumps(data),
            "--json", "--wait", "60"]
    if status == "succeeded":
        call_command(*args, stdout=out, stderr=err)
    else:
        with pytest.raises(CommandError) as failed:
            call_command(*args, stdout=out, stderr=err)
        assert failed.value.returncode == 1
        assert f"execution {json.loads(out.getvalue())['id']} {status}" in str(failed.value)
    detail = json.loads(out.getvalue())
    check_path(name, Execution.objects.get(pk=detail["id"]))
    assert detail["status"] == status
