"""The node-type registry. Apps and users add types with @register_node_type."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jsonschema

from apps.nodes.contract import NodeContext


class NodeType:
    """Base class of node types.

    `run(ctx)` may be sync or `async`. It returns the node's output (JSON), a
    `Park`, or raises a `NodeError`. `inline = True` marks cheap, non-blocking
    handlers the worker runs on its own thread; others run on a thread pool
    (sync) or on the worker's event loop (async), with the node's timeout.
    `pure = True` (implies inline) promises no side effects and no I/O: the
    engine may then run the handler inside the transaction that leased it.
    A type that evaluates CEL lists the sources in `expressions(config)`: a
    node whose expressions are not all proven cheap is neither fused nor run
    inline (see `fusable`, `runs_inline`).
    """

    name: str = ""
    description: str = ""
    config_schema: dict = {"type": "object"}
    inline: bool = False
    pure: bool = False

    def validate_config(self, config: dict) -> list[str]:
        """Every problem with `config`, as readable sentences. Override to add checks."""
        validator = jsonschema.Draft202012Validator(self.config_schema)
        problems = []
        for error in sorted(validator.iter_errors(config), key=lambda e: list(e.path)):
            where = "/".join(str(p) for p in error.path)
            problems.append(f"config{'/' + where if where else ''}: {error.message}")
        return problems

    def run(self, ctx: NodeContext) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def expressions(self, config: dict) -> list[str]:
        """The CEL sources a node with this config evaluates when it runs."""
        return []

    def fusable(self, config: dict) -> bool:
        """Pure, and every expression proven cheap: safe to run inside a transaction."""
        return self.pure and self._cheap(config)

    def runs_inline(self, config: dict) -> bool:
        """Inline, and every expression proven cheap: safe on the worker's main thread.
        Otherwise a sync handler runs on the thread pool, where a budgeted
        evaluation may block without stopping the worker's heartbeats."""
        return self.inline and self._cheap(config)

    def _cheap(self, config: dict) -> bool:
        # Asked for every claimed run: remembered per config object (a stored
        # version's configs are parsed once per process and never change).
        known = _CHEAP.get(id(config))
        if known is not None and known[0] is config:
            return known[1]
        from apps.nodes.expressions import is_cheap

        cheap = all(is_cheap(source) for source in self.expressions(config))
        if len(_CHEAP) > 10_000:
            _CHEAP.clear()
        _CHEAP[id(config)] = (config, cheap)
        return cheap

    def wants_process(self, config: dict) -> bool:
        """Run this node in the worker's process pool (CPU-bound work)?"""
        return False

    def accept_signal(self, config: dict, name: str, payload: dict) -> Any:
        """The node's output when a parked run receives signal `name`.

        Raise ValueError with a readable message to refuse a malformed payload.
        """
        return {"signal": name, "payload": payload}

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.run)


_REGISTRY: dict[str, NodeType] = {}
_CHEAP: dict[int, tuple[dict, bool]] = {}  # id(config) → (config, all expressions cheap)


def register_node_type(cls: type[NodeType]) -> type[NodeType]:
    """Class decorator: make a node type available to workflow definitions."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a `name`")
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise ValueError(f"node type {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls()
    return cls


def get_node_type(name: str) -> NodeType | None:
    return _REGISTRY.get(name)


def node_types() -> dict[str, NodeType]:
    return dict(_REGISTRY)


# --- Python functions callable from the `python` node -----------------------
# Only functions registered here can be called: a definition names a function,
# never a dotted import path, so user input cannot import arbitrary code.
_FUNCTIONS: dict[str, Callable[[NodeContext], Any]] = {}


def register_function(name: str | None = None):
    """Decorator: expose `fn(ctx)` to `python` nodes under `name`."""

    def decorate(fn: Callable[[NodeContext], Any]):
        key = name or fn.__name__
        if key in _FUNCTIONS and _FUNCTIONS[key] is not fn:
            raise ValueError(f"python function {key!r} is already registered")
        _FUNCTIONS[key] = fn
        return fn

    return decorate


def get_function(name: str) -> Callable[[NodeContext], Any] | None:
    return _FUNCTIONS.get(name)


def function_names() -> list[str]:
    return sorted(_FUNCTIONS)
