"""Bounds on user JSON (apps/nodes/payloads.py), without a database."""

import pytest

from apps.nodes.payloads import MAX_DEPTH, PayloadError, check, depth_over, loads

DEEP_TEXT = "[" * 10_000 + "]" * 10_000


def nested(levels: int):
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_json_10000_deep_is_refused_as_too_deep_not_a_recursion_error():
    with pytest.raises(PayloadError, match=f"--input: nested more than {MAX_DEPTH} levels"):
        loads(DEEP_TEXT, "--input")
    with pytest.raises(PayloadError, match="input is nested more than"):
        check(nested(10_000), "input")


def test_depth_is_counted_in_objects_and_lists():
    assert not depth_over(nested(MAX_DEPTH))
    assert depth_over(nested(MAX_DEPTH + 1))
    assert not depth_over({"a": {"b": [1, 2, {"c": 3}]}}, limit=4)
    assert depth_over({"a": {"b": [1, 2, {"c": {}}]}}, limit=4)
    assert not depth_over("scalar", limit=0)


def test_bad_json_says_where():
    with pytest.raises(PayloadError, match=r"form: invalid JSON at line 1, column 7"):
        loads('{"a": }', "form")


def test_size_over_the_limit_is_refused_with_both_sizes():
    with pytest.raises(PayloadError, match="output is 1009 bytes, more than the limit of 1000"):
        check({"x": "y" * 1000}, "output", max_bytes=1000)
    assert check({"x": 1}, "output", max_bytes=1000) == 8


def test_values_that_are_not_json_are_refused():
    with pytest.raises(PayloadError, match="output is not JSON"):
        check({"x": object()}, "output")
