"""A process pool for CPU-bound `python` nodes ("mode": "process").

Children are spawned (never forked from a worker that runs threads) and set up
Django once, so registered functions resolve by name. Only JSON strings cross
the process boundary: no pickle of user data.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from apps.nodes.contract import NodeContext, NodeError, with_emitted_text


def _init_child() -> None:
    import django

    django.setup()


def run_in_process(payload: str) -> str:
    """In the child: run the node's handler, answer with a JSON string."""
    from apps.nodes.registry import get_node_type

    data = json.loads(payload)
    ctx = NodeContext(**data)
    try:
        # A spawned child has no stream: what it emits is kept for the output only.
        value = with_emitted_text(get_node_type(data["node_type"]).run(ctx), ctx)
    except NodeError as exc:
        return json.dumps({"ok": False, "error_class": exc.error_class,
                           "retryable": exc.retryable, "message": str(exc)})
    except Exception as exc:  # every failure becomes a classified result
        return json.dumps({"ok": False, "error_class": "execution", "retryable": True,
                           "message": f"{type(exc).__name__}: {exc}"})
    try:
        return json.dumps({"ok": True, "output": value, "pid": os.getpid()})
    except (TypeError, ValueError) as exc:
        return json.dumps({"ok": False, "error_class": "execution", "retryable": False,
                           "message": f"output is not JSON: {exc}"})


def payload_for(ctx: NodeContext) -> str:
    return json.dumps({"execution_id": ctx.execution_id, "node_id": ctx.node_id,
                       "node_type": ctx.node_type, "attempt": ctx.attempt,
                       "config": ctx.config, "input": ctx.input, "nodes": ctx.nodes})


def make_pool(size: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=size, initializer=_init_child,
                               mp_context=multiprocessing.get_context("spawn"))
