"""CEL (Common Expression Language) for conditions and transforms. Never `eval`.

Expressions see two variables: `input` (the execution input) and `nodes`
(`nodes.<id>.output` of completed upstream nodes). Compiled programs are cached.
"""

from __future__ import annotations

import datetime
import re
import sys
import types
from functools import lru_cache
from typing import Any

# The `cel` package imports its interactive shell (prompt_toolkit, pygments, rich:
# ~23 MiB in every worker process) from its __init__; Braid never uses it.
sys.modules.setdefault("cel.cli", types.ModuleType("cel.cli"))
import cel  # noqa: E402

VARIABLES = frozenset({"input", "nodes"})
# What the CEL library implements (checked at definition time, so a typo in a
# function name is a 400 when the workflow is saved, not a failure at 3 a.m.).
FUNCTIONS = frozenset({
    "size", "startsWith", "endsWith", "contains", "matches", "int", "uint", "double",
    "string", "bytes", "dyn", "type", "timestamp", "duration", "has",
    "getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate",
    "getDayOfWeek", "getHours", "getMinutes", "getSeconds", "getMilliseconds",
})


# Variables bound by the comprehension macros (`list.exists(x, x > 1)`): the
# library reports them as references, but they are not free variables.
_MACRO_VARIABLE = re.compile(
    r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")


class ExpressionError(Exception):
    """An expression that does not compile, or that failed while evaluating."""


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> cel.Program:
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("expression is empty")
    try:
        return cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        # The library's message carries a caret diagram; the first line says it all.
        raise ExpressionError(str(exc).splitlines()[0]) from None


def check_expression(source: str) -> list[str]:
    """Every problem with `source` found without evaluating it."""
    try:
        program = compile_expression(source)
    except ExpressionError as exc:
        return [str(exc)]
    refs = program.references()
    bound = set(_MACRO_VARIABLE.findall(source))
    problems = []
    for name in refs["variables"]:
        if name not in VARIABLES and name not in bound:
            problems.append(f"unknown variable {name!r} (use input or nodes)")
    for name in refs["functions"]:
        if name[:1] in "_@!" or name in FUNCTIONS:
            continue
        problems.append(f"unknown function {name!r}")
    return problems


def evaluate(source: str, context: dict) -> Any:
    """Evaluate `source` over `context`; raise ExpressionError with the reason."""
    program = compile_expression(source)
    try:
        return to_json(program.execute(context))
    except KeyError as exc:
        raise ExpressionError(f"no such key {exc.args[0]!r} in {source!r}") from None
    except Exception as exc:  # the library raises several types; all mean "bad data"
        raise ExpressionError(f"{type(exc).__name__}: {exc} in {source!r}") from None


def evaluate_condition(source: str, context: dict) -> bool:
    value = evaluate(source, context)
    if not isinstance(value, bool):
        raise ExpressionError(f"condition {source!r} gave {value!r}, not true or false")
    return value


def to_json(value: Any) -> Any:
    """CEL results as JSON-ready values (timestamps and durations become strings)."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
