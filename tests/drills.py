"""Python functions for drills, registered only in the test settings (so that
worker and pool processes started by tests have them too)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from django.apps import AppConfig

from apps.nodes.contract import NodeContext, NodeError
from apps.nodes.registry import register_function


class DrillsConfig(AppConfig):
    name = "tests"
    label = "braid_test_drills"
    verbose_name = "Test drills"


def _args(ctx: NodeContext) -> dict:
    return ctx.config.get("args", {})


@register_function("tests.die_once")
def die_once(ctx: NodeContext):
    """Kills its own process the first time (a pool child dying under a run): the
    first call leaves `marker`, a re-run finds it and succeeds."""
    marker = Path(_args(ctx)["marker"])
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return {"pid": os.getpid(), "attempt": ctx.attempt, "died": int(marker.read_text())}


@register_function("tests.hang")
def hang(ctx: NodeContext):
    """Writes its pid to `pid_file`, then blocks for `seconds` ignoring cancellation."""
    args = _args(ctx)
    if args.get("pid_file"):
        Path(args["pid_file"]).write_text(str(os.getpid()))
    time.sleep(float(args.get("seconds", 30)))
    return {"pid": os.getpid()}


@register_function("tests.ledger")
def ledger(ctx: NodeContext):
    """A side effect recorded once per idempotency key, in files under `$BRAID_TEST_LEDGER`.

    `entry` names what it does (e.g. charge, refund); `seconds` it takes first;
    `fail` raises after the wait. Each call also appends to `<entry>.calls`, so a
    test sees both how often the handler ran and how often the effect happened.
    """
    args = _args(ctx)
    folder = Path(os.environ["BRAID_TEST_LEDGER"])
    entry = args.get("entry", ctx.node_id)
    with open(folder / f"{entry}.calls", "a") as calls:
        calls.write(f"{ctx.idempotency_key} {os.getpid()}\n")
    end = time.monotonic() + float(args.get("seconds", 0))
    while time.monotonic() < end:
        time.sleep(0.02)
    if args.get("fail"):
        raise NodeError(f"{entry} failed", error_class="execution", retryable=False)
    effect = folder / f"{entry}.{ctx.idempotency_key.replace(':', '_')}"
    try:  # exactly once per key: the effect of a re-run after a crash is not repeated
        with open(effect, "x") as f:
            f.write(str(os.getpid()))
    except FileExistsError:
        pass
    return {"entry": entry, "key": ctx.idempotency_key}


@register_function("tests.chatty")
def chatty(ctx: NodeContext):
    """Logs `lines` lines with ctx.log (the last at warning), then succeeds."""
    lines = int(_args(ctx).get("lines", 3))
    for i in range(lines):
        ctx.log(f"step {i + 1} of {lines}", "warning" if i == lines - 1 else "info")
    return {"logged": lines}
