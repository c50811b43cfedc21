"""`manage.py braid deploy|release|promote|abort|rollback|diff|export|import`."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.workflows.models import Release, WorkflowDefinition
from apps.workflows.services import publish_version

pytestmark = pytest.mark.django_db

V1 = {"name": "Ship", "nodes": [{"id": "a", "type": "noop", "config": {"output": {"n": 1}}},
                                {"id": "b", "type": "noop"}],
      "edges": [{"from": "a", "to": "b"}]}
V2 = {"name": "Ship", "nodes": [{"id": "a", "type": "noop", "config": {"output": {"n": 2}}},
                                {"id": "c", "type": "noop"}],
      "edges": [{"from": "a", "to": "c"}]}


def braid(*args):
    out, err = StringIO(), StringIO()
    call_command("braid", *[str(a) for a in args], stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def ship():
    publish_version("ship", V1)
    publish_version("ship", V2, make_current=False)


def current(slug="ship") -> int:
    return WorkflowDefinition.objects.get(slug=slug).current_version.number


def test_deploy_a_canary_then_see_it_promote_and_roll_back(ship):
    out, _ = braid("deploy", "ship", "--version", 2, "--strategy", "canary",
                   "--steps", "5,25,50,100", "--threshold", "max_failure_rate=0.1",
                   "--reason", "new step c")
    release = Release.objects.get(state="canary")
    assert out.strip() == f"ship v2 takes 5% of new executions (release {release.pk})"

    out, _ = braid("release", "ship")
    assert "canary v2 (stable v1) canary, step 1/4 at 5%" in out
    assert "v2 candidate" in out and "v1 stable" in out
    assert "deploy" in out and "system: new step c" in out

    assert "at 25%" in braid("promote", "ship")[0]
    out, _ = braid("rollback", "ship", "--reason", "oops")
    assert out.strip() == "ship: v1 is current"
    assert Release.objects.get(strategy="canary").state == "rolled_back"
    state = json.loads(braid("release", "ship", "--json")[0])
    assert state["log"][0]["kind"] == "rollback" and state["log"][0]["reason"] == "oops"
    assert state["release"]["thresholds"]["max_failure_rate"] == 0.1


def test_rollback_to_any_earlier_version(ship):
    braid("deploy", "ship", "--version", 2)
    assert current() == 2

    braid("rollback", "ship", "--to", 1)

    assert current() == 1


def test_diff_prints_what_changed(ship):
    out, _ = braid("diff", "ship", 1, 2)

    assert out.splitlines() == [
        "+ node c (noop)",
        "- node b (noop)",
        "~ node a",
        "    config.output.n: 1 → 2",
        "+ edge a → c",
        "- edge a → b",
    ]
    assert json.loads(braid("diff", "ship", 1, 2, "--json")[0])["nodes_added"][0]["id"] == "c"


def test_export_and_import(ship, tmp_path):
    document = braid("export", "ship", 2)[0]
    path = tmp_path / "ship-v2.json"
    path.write_text(document)

    assert braid("import", path, "--slug", "ship-copy")[0].strip() == "ship-copy v1 imported"
    assert braid("import", path, "--slug", "ship-copy")[0].strip() == \
        "ship-copy v1 already there (same graph)"


@pytest.mark.parametrize("args, message", [
    (("deploy", "ship", "--version", 9), "workflow 'ship' has no version 9"),
    (("deploy", "nope", "--version", 1), "no workflow 'nope'"),
    (("deploy", "ship", "--version", 2, "--strategy", "canary", "--steps", "5,x"),
     "--steps: '5,x' is not a list"),
    (("deploy", "ship", "--version", 2, "--strategy", "canary", "--steps", "5,50"),
     "invalid canary steps"),
    (("deploy", "ship", "--version", 2, "--strategy", "blue_green"),
     "needs at least one smoke input"),
    (("promote", "ship"), "ship has no active release"),
    (("diff", "ship", 1, 7), "no version 7"),
])
def test_bad_input_exits_1_with_a_message(ship, args, message):
    with pytest.raises(CommandError, match=message) as info:
        braid(*args)

    assert info.value.returncode == 1
