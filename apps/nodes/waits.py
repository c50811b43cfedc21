"""Node types that wait without holding a worker: approval, signal, wait_until."""

from __future__ import annotations

import datetime as dt

import jsonschema

from apps.nodes.contract import ConfigurationError, NodeContext, NodeError, Park
from apps.nodes.expressions import ExpressionError, check_expression, evaluate
from apps.nodes.registry import NodeType, register_node_type

DECISIONS = ("approved", "rejected")


def _deadline(config: dict) -> dt.datetime | None:
    seconds = config.get("timeout_s")
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds) if seconds else None


@register_node_type
class Approval(NodeType):
    name = "approval"
    description = ("Parks until someone approves or rejects (optionally filling a form). "
                   "Output: decision approved | rejected | timeout, by, note, form. Route on "
                   "it with edge conditions, e.g. nodes.review.output.decision == 'approved'.")
    config_schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 200},
            "form": {"type": "object"},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0},
        },
        "additionalProperties": False,
    }
    inline = True
    pure = True

    def validate_config(self, config):
        problems = super().validate_config(config)
        if isinstance(config.get("form"), dict):
            try:
                jsonschema.Draft202012Validator.check_schema(config["form"])
            except jsonschema.SchemaError as exc:
                problems.append(f"config/form: not a valid JSON Schema: {exc.message}")
        return problems

    def run(self, ctx: NodeContext):
        return Park(until=_deadline(ctx.config), reason="approval", signal="approval",
                    after_s=ctx.config.get("timeout_s"),
                    output={"decision": "timeout", "by": None, "note": "", "form": {}})

    def accept_signal(self, config, name, payload):
        decision = payload.get("decision")
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
        form = payload.get("form") or {}
        if decision == "approved" and config.get("form"):
            errors = sorted(jsonschema.Draft202012Validator(config["form"]).iter_errors(form),
                            key=lambda e: list(e.path))
            if errors:
                raise ValueError("; ".join(
                    f"form/{'/'.join(str(p) for p in e.path)}: {e.message}" for e in errors))
        return {"decision": decision, "by": payload.get("by"),
                "note": str(payload.get("note") or "")[:2000], "form": form}


@register_node_type
class Signal(NodeType):
    name = "signal"
    description = ("Parks until send_signal(execution, name, payload) arrives; its output is "
                   "the payload. With timeout_s, it finishes with {timed_out: true} instead.")
    config_schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0},
        },
        "required": ["name"],
        "additionalProperties": False,
    }
    inline = True
    pure = True

    def run(self, ctx: NodeContext):
        return Park(until=_deadline(ctx.config), reason="signal", signal=ctx.config["name"],
                    after_s=ctx.config.get("timeout_s"),
                    output={"timed_out": True, "payload": None})

    def accept_signal(self, config, name, payload):
        return {"timed_out": False, "payload": payload}


@register_node_type
class WaitUntil(NodeType):
    name = "wait_until"
    description = ("Parks until a moment: `at` is a CEL expression giving an ISO 8601 time "
                   "(e.g. input.ship_at) or a quoted literal. A past moment passes at once.")
    config_schema = {
        "type": "object",
        "properties": {"at": {"type": "string"}},
        "required": ["at"],
        "additionalProperties": False,
    }
    inline = True
    pure = True

    def validate_config(self, config):
        problems = super().validate_config(config)
        if not problems:
            problems += [f"config/at: {m}" for m in check_expression(config["at"])]
        return problems

    def expressions(self, config):
        return [config["at"]] if isinstance(config.get("at"), str) else []

    def run(self, ctx: NodeContext):
        try:
            value = evaluate(ctx.config["at"], ctx.expression_context())
            moment = dt.datetime.fromisoformat(str(value))
        except ExpressionError as exc:
            raise NodeError(f"wait_until: {exc}", error_class=exc.error_class,
                            retryable=exc.retryable) from None
        except ValueError as exc:
            raise ConfigurationError(f"wait_until: {exc}") from None
        if moment.tzinfo is None:
            raise ConfigurationError(f"wait_until: {value!r} has no time zone")
        return Park(until=moment, reason="wait_until", output={"waited_until": moment.isoformat()})
