"""Python functions shipped with Braid for the examples and the benchmark.

Register your own with `@register_function` in any installed app's module that
is imported at start-up (e.g. from its AppConfig.ready).
"""

from apps.nodes.contract import NodeContext, NodeError
from apps.nodes.registry import register_function


@register_function("braid.echo")
def echo(ctx: NodeContext):
    return {"input": ctx.input, "args": ctx.config.get("args", {})}


@register_function("braid.reserve_stock")
def reserve_stock(ctx: NodeContext):
    items = ctx.input.get("items", [])
    return {"reservation": f"R-{ctx.idempotency_key}", "items": len(items)}


@register_function("braid.charge_card")
def charge_card(ctx: NodeContext):
    amount = ctx.input.get("amount", 0)
    if ctx.input.get("card_declined"):
        raise NodeError("card declined", error_class="execution", retryable=False)
    return {"charge": f"C-{ctx.idempotency_key}", "amount": amount}


@register_function("braid.ship_order")
def ship_order(ctx: NodeContext):
    if ctx.input.get("warehouse_down"):
        raise NodeError("warehouse unavailable", error_class="resource", retryable=False)
    return {"tracking": f"T-{ctx.idempotency_key}"}


@register_function("braid.release_stock")
def release_stock(ctx: NodeContext):
    return {"released": ctx.nodes.get("reserve", {}).get("output", {}).get("reservation")}


@register_function("braid.refund_card")
def refund_card(ctx: NodeContext):
    return {"refunded": ctx.nodes.get("charge", {}).get("output", {}).get("charge")}


@register_function("braid.sync_shard")
def sync_shard(ctx: NodeContext):
    shard = ctx.config.get("args", {}).get("shard", 0)
    rows = ctx.input.get("rows_per_shard", 100)
    return {"shard": shard, "rows": rows}


@register_function("braid.sleep")
def sleep(ctx: NodeContext):
    """Blocks for `args.seconds`, checking for cancellation (tests and crash drills)."""
    import time

    seconds = float(ctx.config.get("args", {}).get("seconds", 1))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if ctx.cancelled:
            raise NodeError("cancelled", error_class="cancelled", retryable=False)
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))
    return {"slept_s": seconds}


@register_function("braid.fib")
def fib(ctx: NodeContext):
    """CPU-bound demo: the n-th Fibonacci number the slow way (use "mode": "process")."""
    import os

    def slow(k: int) -> int:
        return k if k < 2 else slow(k - 1) + slow(k - 2)

    n = int(ctx.config.get("args", {}).get("n", 20))
    if not 0 <= n <= 30:
        raise NodeError("n must be from 0 to 30", error_class="configuration", retryable=False)
    return {"n": n, "fib": slow(n), "pid": os.getpid()}


@register_function("braid.stream_text")
def stream_text(ctx: NodeContext):
    """Streams `args.chunks` tokens with `ctx.emit` (like an LLM), `args.delay_s` apart.

    The output is {"tokens": n, "text": <everything emitted>}.
    """
    import time

    args = ctx.config.get("args", {})
    count, delay = int(args.get("chunks", 10)), float(args.get("delay_s", 0))
    for i in range(count):
        if ctx.cancelled:
            raise NodeError("cancelled", error_class="cancelled", retryable=False)
        ctx.emit(f"tok{i} ")
        if delay:
            time.sleep(delay)
    return {"tokens": count}
