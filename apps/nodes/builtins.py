"""Built-in node types: noop, transform, python, http, delay, fail."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings

from apps.nodes.contract import NodeContext, NodeError, Park
from apps.nodes.expressions import ExpressionError, check_expression, evaluate
from apps.nodes.httpclient import client_for
from apps.nodes.netguard import resolve_target_async
from apps.nodes.registry import NodeType, function_names, get_function, register_node_type


@register_node_type
class Noop(NodeType):
    name = "noop"
    description = "Does nothing; its output is its config's `output` (default {})."
    config_schema = {"type": "object", "properties": {"output": {}},
                     "additionalProperties": False}
    inline = True
    pure = True

    def run(self, ctx: NodeContext):
        return ctx.config.get("output", {})


@register_node_type
class Transform(NodeType):
    name = "transform"
    description = "Builds its output from CEL expressions over input and nodes."
    config_schema = {
        "type": "object",
        "properties": {"output": {"type": "object",
                                  "additionalProperties": {"type": "string"}}},
        "required": ["output"],
        "additionalProperties": False,
    }
    inline = True
    pure = True

    def validate_config(self, config):
        problems = super().validate_config(config)
        if not problems:
            for key, expr in config["output"].items():
                problems += [f"config/output/{key}: {m}" for m in check_expression(expr)]
        return problems

    def expressions(self, config):
        output = config.get("output")
        return [e for e in output.values() if isinstance(e, str)] if isinstance(output, dict) \
            else []

    def run(self, ctx: NodeContext):
        scope = ctx.expression_context()
        try:
            return {key: evaluate(expr, scope) for key, expr in ctx.config["output"].items()}
        except ExpressionError as exc:
            # configuration (bad expression or data), or timeout / resource (the budget)
            raise NodeError(str(exc), error_class=exc.error_class,
                            retryable=exc.retryable) from None


@register_node_type
class Python(NodeType):
    name = "python"
    description = "Calls a Python function registered with @register_function."
    config_schema = {
        "type": "object",
        "properties": {"function": {"type": "string"}, "args": {"type": "object"},
                       "mode": {"enum": ["thread", "process"]}},
        "required": ["function"],
        "additionalProperties": False,
    }

    def validate_config(self, config):
        problems = super().validate_config(config)
        name = config.get("function")
        if isinstance(name, str) and get_function(name) is None:
            problems.append(f"config/function: no registered function {name!r} "
                            f"(registered: {', '.join(function_names()) or 'none'})")
        return problems

    def wants_process(self, config):
        # CPU-bound functions opt into the process pool; blocking I/O stays on threads.
        return config.get("mode") == "process"

    def run(self, ctx: NodeContext):
        fn = get_function(ctx.config["function"])
        if fn is None:
            raise NodeError(f"function {ctx.config['function']!r} is not registered",
                            error_class="configuration", retryable=False)
        return fn(ctx)


@register_node_type
class Http(NodeType):
    name = "http"
    description = "Sends an HTTP request (httpx); refuses private networks unless allowed."
    config_schema = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "pattern": "^https?://"},
            "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "json": {},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
            "raise_for_status": {"type": "boolean"},
        },
        "required": ["url"],
        "additionalProperties": False,
    }

    async def run(self, ctx: NodeContext):
        cfg = ctx.config
        total_s = cfg.get("timeout_s", 30)
        try:
            # The whole request (DNS, connect, send, every byte of the body) has one
            # deadline: a server that trickles its answer cannot hold the node.
            async with asyncio.timeout(total_s):
                return await self._request(ctx, cfg)
        except TimeoutError:
            host = urlsplit(cfg["url"]).hostname
            raise NodeError(f"HTTP request to {host} took longer than {total_s:g} s "
                            "(timeout_s)", error_class="timeout") from None

    async def _request(self, ctx: NodeContext, cfg: dict):
        target = await resolve_target_async(cfg["url"], settings.BRAID["HTTP_ALLOW"])
        parts = urlsplit(cfg["url"])
        netloc = f"[{target.address}]" if ":" in target.address else target.address
        pinned = urlunsplit((parts.scheme, f"{netloc}:{target.port}", parts.path or "/",
                             parts.query, ""))
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1],
                   "Idempotency-Key": ctx.idempotency_key, **cfg.get("headers", {})}
        limit = settings.BRAID["HTTP_MAX_RESPONSE_BYTES"]
        client = client_for(target.host)
        try:
            async with client.stream(cfg.get("method", "GET"), pinned, headers=headers,
                                     json=cfg.get("json"), timeout=None,
                                     extensions={"sni_hostname": target.host}) as response:
                body = await _read_capped(response, limit, target.host)
        except httpx.HTTPError as exc:
            raise NodeError(f"HTTP error: {type(exc).__name__}: {exc}",
                            error_class="resource") from None
        if cfg.get("raise_for_status", True) and response.status_code >= 400:
            retryable = response.status_code >= 500 or response.status_code == 429
            raise NodeError(f"HTTP {response.status_code} from {target.host}",
                            error_class="resource" if retryable else "execution",
                            retryable=retryable)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode(response.encoding or "utf-8", "replace")[:65536]
        return {"status": response.status_code, "body": parsed}


async def _read_capped(response, limit: int, host: str) -> bytes:
    """The response body, or a NodeError as soon as it grows past `limit` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise NodeError(f"HTTP response from {host} is {int(declared)} bytes, more than the "
                        f"{limit} allowed (BRAID_HTTP_MAX_RESPONSE_BYTES)", retryable=False)
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise NodeError(f"HTTP response from {host} is more than the {limit} bytes "
                            "allowed (BRAID_HTTP_MAX_RESPONSE_BYTES)", retryable=False)
        chunks.append(chunk)
    return b"".join(chunks)


@register_node_type
class Delay(NodeType):
    name = "delay"
    description = "Waits `seconds` without holding a worker (parks WAITING with a wake time)."
    config_schema = {
        "type": "object",
        "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 31_536_000}},
        "required": ["seconds"],
        "additionalProperties": False,
    }
    inline = True
    pure = True

    def run(self, ctx: NodeContext):
        seconds = ctx.config["seconds"]
        now = dt.datetime.now(dt.UTC)
        return Park(until=now + dt.timedelta(seconds=seconds), output={"waited_s": seconds},
                    after_s=seconds)


@register_node_type
class Fail(NodeType):
    name = "fail"
    description = ("Raises `error_class` for its first `times` attempts, then succeeds "
                   "(demos and tests). `times: -1` fails every attempt.")
    config_schema = {
        "type": "object",
        "properties": {
            "times": {"type": "integer", "minimum": -1},
            "error_class": {"enum": ["execution", "timeout", "resource", "configuration"]},
            "message": {"type": "string"},
            "output": {},
        },
        "additionalProperties": False,
    }
    inline = True
    pure = True

    def run(self, ctx: NodeContext):
        times = ctx.config.get("times", -1)
        if times == -1 or ctx.attempt <= times:
            error_class = ctx.config.get("error_class", "execution")
            raise NodeError(ctx.config.get("message", f"planned failure (attempt "
                                                      f"{ctx.attempt})"),
                            error_class=error_class,
                            retryable=error_class != "configuration")
        return ctx.config.get("output", {"attempts": ctx.attempt})
