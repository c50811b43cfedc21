"""CEL (Common Expression Language) for conditions and transforms. Never `eval`.

Expressions see two variables: `input` (the execution input) and `nodes`
(`nodes.<id>.output` of completed upstream nodes). Compiled programs are cached.

The CEL library (Rust) overflows its stack and kills the whole process on a
huge or deeply nested expression, and cannot be interrupted from a thread. So:

1. Every source is measured by a linear scan (`measure`) before the library
   sees it; over `LIMITS.max_chars` or `LIMITS.max_depth` it is refused.
2. `evaluate` is the one way to run an expression, wherever it is used. An
   expression proven cheap (`is_cheap`: within the limits and no
   comprehension macro, so its cost is linear in its size and its data) runs
   here. Any other runs in a sandbox process (`apps.nodes.sandbox`) under a
   time budget of `LIMITS.budget_s`: past it the process is killed and the
   evaluation fails as `timeout`; if the process dies it fails as `resource`.
"""

from __future__ import annotations

import datetime
import re
import sys
import types
from dataclasses import dataclass
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


# A call of a comprehension macro: its cost grows with the product of list sizes.
_MACRO_CALL = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(")
_OPERATOR_CHARS = frozenset(".+-*/%!<>=&|?:")


@dataclass(frozen=True)
class ExpressionLimits:
    """Bounds on one expression (settings BRAID_EXPRESSION_*; see docs/workflows.md)."""

    max_chars: int = 4096
    # A bound on the depth of the syntax tree, as `measure` estimates it.
    max_depth: int = 100
    # Seconds one sandboxed evaluation may run before its process is killed.
    budget_s: float = 1.0
    # Sandbox processes per worker or web process (made on first use).
    processes: int = 2


LIMITS = ExpressionLimits()


def configure(limits: ExpressionLimits) -> None:
    """Set this process's limits (from settings, in NodesConfig.ready)."""
    global LIMITS
    LIMITS = limits
    compile_expression.cache_clear()
    is_cheap.cache_clear()
    needs_sandbox.cache_clear()
    from apps.nodes import registry  # its per-config cheapness answers depend on LIMITS

    registry._CHEAP.clear()


class ExpressionError(Exception):
    """An expression that does not compile, or that failed while evaluating.

    `error_class` is `configuration` (the expression or its data is wrong), or
    `timeout` / `resource` when its sandboxed evaluation ran out of budget or
    its process died: those are retryable.
    """

    def __init__(self, message: str, *, error_class: str = "configuration",
                 retryable: bool = False):
        super().__init__(message)
        self.error_class = error_class
        self.retryable = retryable


def measure(source: str) -> int:
    """An upper bound of the syntax tree's depth, in one linear pass.

    Each bracket level counts the operator tokens chained at that level (a
    chain `a.b.c` or `1+1+1` nests one tree level per operator) plus the
    deepest bracket inside it. String literals are skipped.
    """
    stack = [[0, 0]]  # per open bracket: [operators at this level, deepest child]
    i, n = 0, len(source)
    previous_operator = False
    while i < n:
        char = source[i]
        if char in "'\"":
            i = _skip_string(source, i)
            previous_operator = False
            continue
        if char in "([{":
            stack.append([0, 0])
        elif char in ")]}" and len(stack) > 1:
            ops, child = stack.pop()
            stack[-1][1] = max(stack[-1][1], ops + child + 1)
        if char in _OPERATOR_CHARS:
            if not previous_operator:
                stack[-1][0] += 1
            previous_operator = True
        elif not char.isspace():
            previous_operator = False
        i += 1
    depth = 0
    while stack:  # unclosed brackets still count (the library will refuse them)
        ops, child = stack.pop()
        depth = ops + child + 1
        if stack:
            stack[-1][1] = max(stack[-1][1], depth)
    return depth


def _skip_string(source: str, start: int) -> int:
    """The index after the string literal opening at `start` (raw strings honoured)."""
    quote = source[start]
    raw = start > 0 and source[start - 1] in "rR"
    delimiter = quote * 3 if source.startswith(quote * 3, start) else quote
    i, n = start + len(delimiter), len(source)
    while i < n:
        if source[i] == "\\" and not raw:
            i += 2
            continue
        if source.startswith(delimiter, i):
            return i + len(delimiter)
        i += 1
    return n


def bounds_problem(source: str, limits: ExpressionLimits | None = None) -> str | None:
    """Why `source` is too big for the CEL library, or None."""
    limits = limits or LIMITS
    if len(source) > limits.max_chars:
        return (f"expression is {len(source)} characters, more than the limit of "
                f"{limits.max_chars}")
    depth = measure(source)
    if depth > limits.max_depth:
        return (f"expression nests {depth} levels deep (chained operators and brackets), "
                f"more than the limit of {limits.max_depth}")
    return None


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> cel.Program:
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("expression is empty")
    problem = bounds_problem(source)
    if problem:  # never hand an unbounded expression to the library: it would crash
        raise ExpressionError(problem)
    return compile_unbounded(source)


@lru_cache(maxsize=256)
def compile_unbounded(source: str) -> cel.Program:
    """Compile without the bounds check: only for sources a caller already bounded."""
    try:
        return cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        # The library's message carries a caret diagram; the first line says it all.
        raise ExpressionError(str(exc).splitlines()[0]) from None


@lru_cache(maxsize=4096)
def is_cheap(source: str) -> bool:
    """Proven cheap: within the limits and no comprehension macro (`map`, `filter`,
    `all`, `exists`, `exists_one`). Without a macro, evaluating costs time linear
    in the expression's size and the data it reads, so it may run in-process,
    even inside a transaction."""
    return (isinstance(source, str) and bounds_problem(source) is None
            and not _MACRO_CALL.search(source))


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


@lru_cache(maxsize=4096)
def needs_sandbox(source: str) -> bool:
    """Within the limits but not proven cheap: `evaluate` runs it in the sandbox.
    (A source over the limits is neither: evaluating it fails at once.)"""
    return (isinstance(source, str) and not is_cheap(source)
            and bounds_problem(source) is None)


# `nodes` as a variable (not a field: no dot before it), and what follows it.
_NODES_USE = re.compile(r"(?<![.\w])nodes\b(\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\())?")


@lru_cache(maxsize=4096)
def referenced_nodes(source: str) -> frozenset[str] | None:
    """The node ids `source` reads as `nodes.<id>`, or None if it uses `nodes` any
    other way (`nodes["a"]`, `size(nodes)`, `nodes.all(…)`): then it needs them all.
    A string that merely contains the word only keeps more nodes than needed."""
    ids = set()
    for match in _NODES_USE.finditer(source):
        if match.group(2) is None:
            return None
        ids.add(match.group(2))
    return frozenset(ids)


def narrowed(source: str, context: dict) -> dict:
    """`context` with only the nodes `source` reads.

    The library converts the whole context into its own values on every call: with
    ten finished nodes in scope that is most of an expression's cost (35 µs with
    three nodes, 90 µs with ten, 12 µs with the one it reads).
    """
    nodes = context.get("nodes")
    if not isinstance(nodes, dict) or len(nodes) < 2:
        return context
    ids = referenced_nodes(source)
    if ids is None:
        return context
    return {**context, "nodes": {k: nodes[k] for k in ids if k in nodes}}


def evaluate(source: str, context: dict) -> Any:
    """Evaluate `source` over `context` under the budget; raise ExpressionError.

    The one entry point for every CEL evaluation (transforms, conditions,
    outputs, limit keys, routing keys): cheap expressions run here, others in
    the sandbox with `LIMITS.budget_s`.
    """
    compile_expression(source)  # refuses oversized sources before anything else
    context = narrowed(source, context)
    if is_cheap(source):
        return evaluate_here(source, context)
    from apps.nodes import sandbox

    return sandbox.evaluate(source, context, LIMITS.budget_s)


def evaluate_here(source: str, context: dict, program: cel.Program | None = None) -> Any:
    """Evaluate in this process, unbudgeted: only for cheap sources, or in the sandbox."""
    program = program or compile_expression(source)
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
