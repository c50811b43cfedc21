"""Expression bounds (a linear pre-scan before the CEL library) and the cheapness proof."""

from __future__ import annotations

import dataclasses

import pytest

from apps.nodes import expressions
from apps.nodes.expressions import (
    ExpressionError,
    bounds_problem,
    check_expression,
    compile_expression,
    is_cheap,
    measure,
)


@pytest.mark.parametrize(("source", "depth"), [
    ("input.a", 2),
    ("1+1+1", 3),
    ("input" + ".a" * 50, 51),
    ("has(nodes.review) ? nodes.review.output.by : nodes.fast.output.by", 11),
    ("'a.b.c.d' + \"(((\"", 2),          # operators and brackets in strings do not count
    ("r'\\' + 'x' + 1", 3),              # a raw string may end with a backslash
    ("'''a ' b''' + 1", 2),              # triple-quoted strings
    ("size([[1], [2, [3]]])", 5),       # each bracket level adds one
    ("!!!!true", 2),                     # a run of operator characters is one token
])
def test_measure_bounds_the_syntax_tree_depth(source, depth):
    assert measure(source) == depth


def test_measure_is_linear_and_needs_no_library():
    assert measure("+".join(["1"] * 200_000)) == 200_000  # would crash the library


@pytest.mark.parametrize(("source", "message"), [
    ("1" * 5000, "expression is 5000 characters, more than the limit of 4096"),
    ("+".join(["1"] * 101), "expression nests 101 levels deep (chained operators and brackets), "
                            "more than the limit of 100"),
])
def test_oversized_expressions_never_reach_the_library(source, message):
    assert bounds_problem(source) == message
    assert check_expression(source) == [message]
    with pytest.raises(ExpressionError, match="more than the limit"):
        compile_expression(source)


def test_limits_follow_the_configuration():
    before = expressions.LIMITS
    try:
        expressions.configure(dataclasses.replace(before, max_chars=10))
        assert check_expression("input.abcdefgh") == [
            "expression is 14 characters, more than the limit of 10"]
    finally:
        expressions.configure(before)
    assert check_expression("input.abcdefgh") == []


@pytest.mark.parametrize(("source", "cheap"), [
    ("input.amount > 100 && nodes.a.output.ok", True),
    ("size(input.items) + 1", True),
    ("'items.map(x, x)'.size() > 0", False),  # a macro name in a string: refused, safely
    ("input.items.map(i, i * 2)", False),
    ("input.items.filter(i, i > 0)", False),
    ("input.items.exists(i, i > 0)", False),
    ("input.items.all(i, i > 0)", False),
    ("input.items.exists_one(i, i > 0)", False),
    ("1" * 5000, False),
])
def test_is_cheap_only_without_macros_and_within_bounds(source, cheap):
    assert is_cheap(source) is cheap
