"""CEL expressions (apps/nodes/expressions.py): checked at save time, evaluated safely."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.nodes.expressions import (
    ExpressionError,
    check_expression,
    compile_expression,
    evaluate,
    evaluate_condition,
    narrowed,
    referenced_nodes,
    to_json,
)

SCOPE = {
    "input": {"amount": 120, "name": "Ada", "items": [{"qty": 2}, {"qty": 0}], "flag": True},
    "nodes": {"classify": {"status": "succeeded", "output": {"tier": "review", "score": 0.75}}},
}


# --- check_expression -----------------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "input.amount > 100",
    "nodes.classify.output.tier == 'review'",
    "size(input.items) == 2 && input.name.startsWith('A')",
    "has(nodes.classify) ? nodes.classify.output.score : 0.0",
    "input.amount in [1, 2, 120]",
    "string(input.amount) + '!'",
    "timestamp('2024-01-01T00:00:00Z').getFullYear() == 2024",
    "input.items.exists(i, i.qty > 0)",
    "input.items.all(item, item.qty >= 0)",
    "input.items.filter(i, i.qty > 0).map(i, i.qty * 2)",
    "[1, 2, 3].exists_one(x, x == 2)",
])
def test_valid_expressions_have_no_problems(source):
    assert check_expression(source) == []


def test_syntax_error_is_reported_on_one_line():
    problems = check_expression("input.amount >")
    assert len(problems) == 1
    assert problems[0].startswith("Failed to parse expression 'input.amount >'")
    assert "\n" not in problems[0]


@pytest.mark.parametrize("source", ["", "   "])
def test_empty_expression_is_a_problem(source):
    assert check_expression(source) == ["expression is empty"]


def test_unknown_variable_is_reported():
    assert check_expression("amount > 1") == ["unknown variable 'amount' (use input or nodes)"]


def test_every_unknown_name_is_reported():
    problems = check_expression("total > limit && shout(input.name) == ''")
    assert sorted(problems) == ["unknown function 'shout'",
                                "unknown variable 'limit' (use input or nodes)",
                                "unknown variable 'total' (use input or nodes)"]


@pytest.mark.parametrize("source, name", [
    ("lower(input.name) == 'ada'", "lower"),
    ("input.name.toUpper() == 'ADA'", "toUpper"),
    ("now() > 1", "now"),
])
def test_unknown_function_is_reported(source, name):
    assert check_expression(source) == [f"unknown function {name!r}"]


def test_macro_variable_is_bound_only_inside_its_macro():
    assert check_expression("input.items.exists(i, j > 0)") == [
        "unknown variable 'j' (use input or nodes)"]


def test_compile_is_cached():
    assert compile_expression("input.amount + 1") is compile_expression("input.amount + 1")


def test_compile_refuses_non_strings_and_blank_sources():
    for source in ("", "  ", None):
        with pytest.raises(ExpressionError, match="expression is empty"):
            compile_expression(source)


# --- evaluate -------------------------------------------------------------------------------

@pytest.mark.parametrize("source, expected", [
    ("input.amount + 1", 121),
    ("double(input.amount) * 0.5", 60.0),
    ("nodes.classify.output.tier", "review"),
    ("input.name + '!'", "Ada!"),
    ("size(input.items)", 2),
    ("input.items[0].qty", 2),
    ("input.amount > 100 ? 'big' : 'small'", "big"),
    ("{'tier': nodes.classify.output.tier, 'n': [1, 2]}", {"tier": "review", "n": [1, 2]}),
    ("input.items.filter(i, i.qty > 0).map(i, i.qty * 10)", [20]),
    ("input.items.exists(i, i.qty == 0)", True),
    ("null", None),
])
def test_evaluate_returns_json_values(source, expected):
    assert evaluate(source, SCOPE) == expected


# --- only the nodes an expression reads are handed to the library --------------------------

@pytest.mark.parametrize(("source", "ids"), [
    ("nodes.a.output.v + 1", {"a"}),
    ("has(nodes.b) ? nodes.b.output : nodes . c.output", {"b", "c"}),
    ("input.nodes.x + nodes.c.status", {"c"}),  # a field called nodes is not the variable
    ("1 + 2", set()),
    ("size(nodes)", None),
    ('nodes["a"].output', None),
    ("nodes.all(n, n != 'x')", None),
    ("nodes.exists (n, true)", None),
    ("input.xs.map(nodes, nodes + 1)", None),
    ("'nodes' + input.name", None),
])
def test_referenced_nodes_are_the_nodes_read_by_name_or_none_for_any_other_use(source, ids):
    assert referenced_nodes(source) == (None if ids is None else frozenset(ids))


WIDE = {"input": {}, "nodes": {
    n: {"status": "succeeded", "output": {"v": i}} for i, n in enumerate("abcdefghij")}}


@pytest.mark.parametrize(("source", "expected"), [
    ("nodes.c.output.v + nodes.j.output.v", 11),
    ("has(nodes.d) && !has(nodes.z)", True),
    ("size(nodes)", 10),
    ('nodes["e"].output.v', 4),
    ("nodes.all(n, nodes[n].status == 'succeeded')", True),
    ("[nodes.a.output.v, nodes.b.output.v].map(x, x + 1)", [1, 2]),
])
def test_narrowing_the_scope_changes_no_result(source, expected):
    assert evaluate(source, WIDE) == expected
    kept = narrowed(source, WIDE)["nodes"]
    assert set(kept) <= set(WIDE["nodes"])


def test_a_node_that_is_not_in_scope_is_still_missing():
    with pytest.raises(ExpressionError, match="no such key 'z'"):
        evaluate("nodes.z.output", WIDE)


def test_evaluate_timestamps_and_durations_become_json():
    assert evaluate("timestamp('2024-05-01T12:00:00Z')", {}) == "2024-05-01T12:00:00+00:00"
    assert evaluate("duration('90s')", {}) == 90.0


def test_missing_key_is_an_expression_error_naming_the_key():
    with pytest.raises(ExpressionError, match="no such key 'missing'"):
        evaluate("input.missing", SCOPE)


@pytest.mark.parametrize("source", ["1 / 0", "input.name + 1", "input.items[5]",
                                    "input.amount * 0.5"])  # CEL never mixes int and double
def test_bad_data_is_an_expression_error(source):
    with pytest.raises(ExpressionError) as info:
        evaluate(source, SCOPE)
    assert source in str(info.value)


def test_syntax_error_raises_when_evaluated():
    with pytest.raises(ExpressionError, match="Failed to parse"):
        evaluate("input.(", SCOPE)


def test_python_is_not_evaluated():
    with pytest.raises(ExpressionError):
        evaluate("__import__('os').system('true')", SCOPE)


# --- evaluate_condition ---------------------------------------------------------------------

def test_condition_returns_a_boolean():
    assert evaluate_condition("input.amount > 100", SCOPE) is True
    assert evaluate_condition("nodes.classify.output.tier == 'fast'", SCOPE) is False
    assert evaluate_condition("input.flag", SCOPE) is True


@pytest.mark.parametrize("source, shown", [
    ("input.amount", "120"), ("input.name", "'Ada'"), ("null", "None"), ("input.items", "[")])
def test_condition_that_is_not_a_boolean_is_an_error(source, shown):
    with pytest.raises(ExpressionError, match="not true or false") as info:
        evaluate_condition(source, SCOPE)
    assert f"gave {shown}" in str(info.value)


def test_condition_error_propagates_as_expression_error():
    with pytest.raises(ExpressionError, match="no such key"):
        evaluate_condition("input.nope == 1", SCOPE)


# --- to_json --------------------------------------------------------------------------------

def test_to_json_converts_nested_values():
    moment = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    value = {1: (moment, dt.timedelta(minutes=2)), "b": b"caf\xc3\xa9", "s": {"x", }}
    assert to_json(value) == {"1": ["2024-01-02T03:04:05+00:00", 120.0], "b": "café",
                              "s": "{'x'}"}


@pytest.mark.parametrize("value", [None, True, 3, 2.5, "text", [1, "a"], {"k": [None]}])
def test_to_json_keeps_json_values(value):
    assert to_json(value) == value


def test_to_json_replaces_invalid_utf8_bytes():
    assert to_json(b"\xff") == "\ufffd"
