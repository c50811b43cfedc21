"""Oversized and deeply nested expressions are refused by validation, naming where.

The CEL library crashes its process on such sources, so each way in is tried:
`check_definition`, the publish service, and `manage.py braid validate` run as
a real process (a crash there would show as a signal, not exit code 1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.workflows.errors import DefinitionInvalid
from apps.workflows.models import WorkflowDefinition
from apps.workflows.services import check_definition, publish_version

ROOT = Path(__file__).resolve().parents[2]
HUGE_SUM = "+".join(["1"] * 20_000)           # 40 KB: segfaulted every worker that ran it
HUGE_PATH = "input" + ".a" * 25_000 + " == 1"  # 50 KB: segfaulted check_definition itself

HUGE_TRANSFORM = {"name": "huge transform", "nodes": [
    {"id": "sum", "type": "transform", "config": {"output": {"n": HUGE_SUM}}}], "edges": []}
HUGE_CONDITION = {"name": "huge condition", "nodes": [
    {"id": "a", "type": "noop"}, {"id": "b", "type": "noop"}],
    "edges": [{"from": "a", "to": "b", "when": HUGE_PATH}]}


def problems_of(spec) -> list[dict]:
    with pytest.raises(DefinitionInvalid) as info:
        check_definition(spec)
    return info.value.problems


def test_a_40kb_transform_expression_is_refused_naming_the_node():
    [problem] = problems_of(HUGE_TRANSFORM)

    assert problem["node"] == "sum"
    assert problem["where"] == "node 'sum'"
    assert "config/output/n: expression is 39999 characters, more than the limit of 4096" \
        in problem["message"]


def test_a_50kb_edge_condition_is_refused_naming_the_edge():
    [problem] = problems_of(HUGE_CONDITION)

    assert problem["where"] == "edge a → b"
    assert "bad condition: expression is 50010 characters, more than the limit" \
        in problem["message"]


def test_a_deeply_nested_expression_under_the_length_limit_is_refused():
    deep = "+".join(["1"] * 1000)  # 1,999 characters but 1,000 levels
    spec = {"name": "deep", "nodes": [{"id": "n", "type": "noop"}], "edges": [],
            "output": {"total": deep}}

    [problem] = problems_of(spec)

    assert problem["where"] == "output.total"
    assert "nests 1000 levels deep" in problem["message"]



def test_an_output_with_a_comprehension_macro_is_refused_with_the_way_out():
    spec = {"name": "costly output", "nodes": [{"id": "n", "type": "noop"}], "edges": [],
            "output": {"ok": "nodes.n.output.x", "total": "input.xs.map(x, x * 2)"}}

    [problem] = problems_of(spec)

    assert problem["where"] == "output.total"
    assert "compute it in a transform node" in problem["message"]

@pytest.mark.django_db
def test_publish_refuses_huge_expressions_and_stores_nothing():
    for slug, spec in (("huge-transform", HUGE_TRANSFORM), ("huge-condition", HUGE_CONDITION)):
        with pytest.raises(DefinitionInvalid):
            publish_version(slug, spec)

    assert not WorkflowDefinition.objects.exists()


@pytest.mark.parametrize(("spec", "where"), [(HUGE_TRANSFORM, "node 'sum'"),
                                             (HUGE_CONDITION, "edge a → b")])
def test_braid_validate_exits_1_naming_the_node_or_edge(tmp_path, spec, where):
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(spec))
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings")

    done = subprocess.run([sys.executable, "manage.py", "braid", "validate", str(path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 1, done.stderr
    assert where in done.stderr
    assert "more than the limit of 4096" in done.stderr
    assert "Traceback" not in done.stderr
