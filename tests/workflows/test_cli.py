"""`manage.py braid publish FILE [--slug S] [--notes N]` (apps/workflows/cli.py)."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.engine.start import StartRequest, start_execution
from apps.workflows.models import WorkflowDefinition, WorkflowVersion
from tests.conftest import EXAMPLES, load_example

pytestmark = pytest.mark.django_db


def braid(*args):
    out, err = StringIO(), StringIO()
    call_command("braid", *[str(a) for a in args], stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_publish_stores_a_new_version_named_after_the_file():
    out, _ = braid("publish", EXAMPLES / "order_saga.json", "--notes", "first cut")

    assert out.strip() == ("Published order-saga v1 (Order saga); `braid run order-saga` "
                           "starts it")
    version = WorkflowVersion.objects.get(definition__slug="order-saga")
    assert (version.number, version.notes) == (1, "first cut")
    assert version.graph == load_example("order_saga")
    assert version.definition.current_version == version


def test_publishing_the_same_graph_twice_makes_no_new_version_and_says_so():
    braid("publish", EXAMPLES / "three_steps.json")
    out, _ = braid("publish", EXAMPLES / "three_steps.json", "--notes", "again")

    assert out.strip() == ("Unchanged: three-steps v1 (Three steps) already has this graph; "
                           "no new version")
    assert WorkflowVersion.objects.filter(definition__slug="three-steps").count() == 1


def test_publishing_a_changed_graph_makes_the_next_version_the_one_starts_run(tmp_path):
    braid("publish", EXAMPLES / "three_steps.json", "--slug", "steps")
    changed = load_example("three_steps")
    changed["nodes"][0]["config"]["output"]["step"] = 10
    path = tmp_path / "whatever.json"
    path.write_text(json.dumps(changed))

    out, _ = braid("publish", path, "--slug", "steps", "--notes", "start at 10")

    assert out.startswith("Published steps v2 (Three steps)")
    execution = start_execution(StartRequest(workflow="steps"))
    assert execution.version.number == 2 and execution.version.notes == "start at 10"


@pytest.mark.parametrize("args, message", [
    (["{three}", "--slug", "not a slug!"], "'not a slug!' is not a valid slug"),
    (["missing.json"], "missing.json: no such file"),
    (["-"], "give --slug when reading the definition from stdin"),
])
def test_publish_bad_input_exits_1_and_publishes_nothing(args, message, monkeypatch):
    monkeypatch.setattr("sys.stdin", StringIO(json.dumps(load_example("three_steps"))))
    args = [EXAMPLES / "three_steps.json" if a == "{three}" else a for a in args]
    with pytest.raises(CommandError) as info:
        braid("publish", *args)
    assert info.value.returncode == 1
    assert message in str(info.value)
    assert not WorkflowDefinition.objects.exists()


def test_publish_an_invalid_definition_lists_every_problem(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "Bad", "nodes": [{"id": "x", "type": "nope"}],
                                "edges": [{"from": "x", "to": "y"}]}))
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as info:
        call_command("braid", "publish", str(path), stdout=out, stderr=err)
    assert info.value.returncode == 1 and "2 problem(s)" in str(info.value)
    assert "node 'x': unknown type 'nope'" in err.getvalue()
    assert not WorkflowDefinition.objects.exists()


def test_publishing_an_older_graph_again_makes_it_current_without_a_new_version(tmp_path):
    braid("publish", EXAMPLES / "three_steps.json", "--slug", "steps")
    changed = load_example("three_steps")
    changed["nodes"][0]["config"]["output"]["step"] = 10
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(changed))
    braid("publish", path, "--slug", "steps")

    out, _ = braid("publish", EXAMPLES / "three_steps.json", "--slug", "steps")

    assert out.strip() == ("Unchanged: steps v1 (Three steps) already has this graph; no new "
                           "version. v1 is the current version again")
    assert WorkflowVersion.objects.filter(definition__slug="steps").count() == 2
    assert WorkflowDefinition.objects.get(slug="steps").current_version.number == 1
