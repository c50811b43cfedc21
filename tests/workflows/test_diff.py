"""diff_graphs: the exact difference between two workflow graphs (no database)."""

from __future__ import annotations

from apps.workflows.diff import FieldChange, diff_graphs

OLD = {
    "name": "Orders",
    "nodes": [
        {"id": "a", "type": "noop", "config": {"output": {"step": 1}}},
        {"id": "b", "type": "transform", "config": {"output": {"x": "input.x"}},
         "retry": {"max_attempts": 3}},
        {"id": "gone", "type": "noop"},
    ],
    "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "gone"},
              {"from": "a", "to": "gone", "when": "input.x > 1"}],
    "output": {"x": "nodes.b.output.x"},
}
NEW = {
    "name": "Orders v2",
    "nodes": [
        {"id": "a", "type": "noop", "config": {"output": {"step": 1}}},
        {"id": "b", "type": "transform", "config": {"output": {"x": "input.x * 2"}},
         "retry": {"max_attempts": 5}, "timeout_s": 10},
        {"id": "c", "type": "delay", "config": {"seconds": 1}},
    ],
    "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"},
              {"from": "a", "to": "c", "when": "input.x > 2"}],
    "output": {"x": "nodes.b.output.x"},
}


def test_the_diff_of_two_versions_is_exact():
    diff = diff_graphs(OLD, NEW)

    assert [n["id"] for n in diff.nodes_added] == ["c"]
    assert [n["id"] for n in diff.nodes_removed] == ["gone"]
    assert [n.id for n in diff.nodes_changed] == ["b"]
    assert diff.nodes_changed[0].changes == (
        FieldChange("config.output.x", "input.x", "input.x * 2"),
        FieldChange("retry.max_attempts", 3, 5),
        FieldChange("timeout_s", None, 10, "new"),
    )
    assert diff.edges_added == ({"from": "a", "to": "c", "when": "input.x > 2"},
                                {"from": "b", "to": "c"})
    assert diff.edges_removed == ({"from": "a", "to": "gone", "when": "input.x > 1"},
                                  {"from": "b", "to": "gone"})
    assert diff.workflow_changed == (FieldChange("name", "Orders", "Orders v2"),)


def test_an_edge_whose_condition_changed_is_removed_and_added():
    old = {"nodes": [], "edges": [{"from": "a", "to": "b", "when": "input.x > 1"}]}
    new = {"nodes": [], "edges": [{"from": "a", "to": "b", "when": "input.x > 2"}]}

    diff = diff_graphs(old, new)

    assert diff.edges_removed == ({"from": "a", "to": "b", "when": "input.x > 1"},)
    assert diff.edges_added == ({"from": "a", "to": "b", "when": "input.x > 2"},)


def test_a_field_removed_from_a_node_says_so():
    diff = diff_graphs({"nodes": [{"id": "a", "type": "noop", "timeout_s": 5}]},
                       {"nodes": [{"id": "a", "type": "noop"}]})

    assert diff.nodes_changed[0].changes == (FieldChange("timeout_s", 5, None, "old"),)


def test_a_type_change_of_equal_looking_values_counts():
    diff = diff_graphs({"nodes": [{"id": "a", "type": "noop", "config": {"output": 1}}]},
                       {"nodes": [{"id": "a", "type": "noop", "config": {"output": 1.0}}]})

    assert diff.nodes_changed[0].changes == (FieldChange("config.output", 1, 1.0),)


def test_identical_graphs_have_an_empty_diff():
    assert diff_graphs(OLD, OLD).empty
    assert not diff_graphs(OLD, NEW).empty
