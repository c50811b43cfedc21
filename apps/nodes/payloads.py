"""Bounds on JSON that users send: nesting depth and size. Pure Python, no Django.

Python's json, jsonschema, Django's JSONField and the CEL evaluator all recurse
once per level of nesting, so a 10,000-deep `[[[[…]]]]` raises RecursionError
(or worse) wherever it first lands. Every way in (CLI, admin forms, execution
inputs, signal payloads, node outputs, definitions) checks it here first and
gets an error that says what is wrong.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64  # levels of nested objects and lists; real payloads use a handful


class PayloadError(ValueError):
    """JSON that is malformed, nested too deeply or too big; the message says which."""


def depth_over(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `value` nests objects/lists more than `limit` deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list | tuple))
    return False


def check(value: Any, what: str, max_bytes: int | None = None,
          limit: int = MAX_DEPTH) -> int:
    """Raise PayloadError if `value` is too deep, not JSON or over `max_bytes`; its size."""
    try:
        size = len(json.dumps(value))  # default arguments: json's cached encoder
    except RecursionError:
        raise _too_deep(what, limit) from None
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{what} is not JSON: {exc}") from None
    if max_bytes is not None and size > max_bytes:
        raise PayloadError(f"{what} is {size} bytes, more than the limit of {max_bytes}")
    # After the size, so the walk is bounded by max_bytes; and only when the text is
    # long enough to nest that deep (each level takes at least two characters).
    if size > 2 * limit and depth_over(value, limit):
        raise _too_deep(what, limit)
    return size


def _too_deep(what: str, limit: int) -> PayloadError:
    return PayloadError(f"{what} is nested more than {limit} levels deep")


def loads(text: str, what: str, limit: int = MAX_DEPTH) -> Any:
    """Parse JSON text, or raise PayloadError naming `what` and where it is wrong."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"{what}: invalid JSON at line {exc.lineno}, column {exc.colno}: "
                           f"{exc.msg}") from None
    except RecursionError:
        raise PayloadError(f"{what}: nested more than {limit} levels deep") from None
    if depth_over(value, limit):
        raise PayloadError(f"{what}: nested more than {limit} levels deep")
    return value
