"""`manage.py braid` subcommands of the operations floor: diagnose, workers, alerts, prune."""

from __future__ import annotations

import json

from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.nodes import payloads
from apps.operations import evaluator, interventions, resources, retention
from apps.operations.diagnose import diagnose
from apps.operations.models import Alert

COMMANDS = ("diagnose", "workers", "alerts", "prune", "retry", "skip", "resume", "rerun",
            "compensate", "pause", "unpause", "mark-failed")


def add_parsers(sub) -> None:
    p = sub.add_parser("diagnose", help="why an execution is stuck or failed, and what to do")
    p.add_argument("execution_id", metavar="ID")
    p.add_argument("--json", dest="as_json", action="store_true")

    p = sub.add_parser("workers", help="live worker hosts: load and last heartbeat")
    p.add_argument("--json", dest="as_json", action="store_true")

    p = sub.add_parser("alerts", help="the unresolved alerts (evaluates the rules first)")
    p.add_argument("--json", dest="as_json", action="store_true")
    p.add_argument("--no-evaluate", action="store_true", help="list without evaluating first")

    p = sub.add_parser("retry", help="run a failed node of a failed execution again")
    p.add_argument("execution_id", metavar="ID")
    p.add_argument("node", metavar="NODE")
    p.add_argument("--input", dest="node_input", metavar="JSON",
                   help="this attempt's own input instead of the execution's")
    p.add_argument("--reason", default="")
    p = sub.add_parser("skip", help="treat a node as succeeded with the output you give")
    p.add_argument("execution_id", metavar="ID")
    p.add_argument("node", metavar="NODE")
    p.add_argument("--output", required=True, metavar="JSON")
    p.add_argument("--reason", default="")
    p = sub.add_parser("rerun", help="a new execution that reuses the outputs before NODE")
    p.add_argument("execution_id", metavar="ID")
    p.add_argument("node", metavar="NODE")
    p.add_argument("--reason", default="")
    for name, text in (("resume", "run again what failed or was cancelled"),
                       ("compensate", "undo the completed steps of a failed execution"),
                       ("pause", "hold an execution's ready work"),
                       ("unpause", "release a paused execution"),
                       ("mark-failed", "stop an unfinished execution as failed")):
        p = sub.add_parser(name, help=text)
        p.add_argument("execution_id", metavar="ID")
        p.add_argument("--reason", default="")

    p = sub.add_parser("prune", help="delete finished executions past their queue's retention")
    p.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
    p.add_argument("--batch", type=int, default=retention.BATCH, metavar="N",
                   help=f"executions per transaction (default {retention.BATCH})")


def run(command, name: str, options: dict):
    if name in INTERVENTIONS:
        return _intervene(command, name, options)
    return {"diagnose": _diagnose, "workers": _workers, "alerts": _alerts,
            "prune": _prune}[name](command, options)


INTERVENTIONS = {
    "retry": lambda o, ref: interventions.retry_node(
        ref, o["node"], reason=o["reason"],
        node_input=_json(o["node_input"], "--input") if o["node_input"] else None),
    "skip": lambda o, ref: interventions.skip_node(ref, o["node"], _json(o["output"], "--output"),
                                                   reason=o["reason"]),
    "rerun": lambda o, ref: interventions.rerun_from(ref, o["node"], reason=o["reason"]),
    "resume": lambda o, ref: interventions.resume(ref, reason=o["reason"]),
    "compensate": lambda o, ref: interventions.compensate(ref, reason=o["reason"]),
    "pause": lambda o, ref: interventions.pause(ref, reason=o["reason"]),
    "unpause": lambda o, ref: interventions.unpause(ref, reason=o["reason"]),
    "mark-failed": lambda o, ref: interventions.mark_failed(ref, reason=o["reason"]),
}


def _json(text: str, what: str):
    try:
        return payloads.loads(text, what)
    except payloads.PayloadError as exc:
        raise CommandError(str(exc), returncode=1) from None


def _intervene(command, name: str, options: dict) -> None:
    """The command line acts as the system: its audit entries say `by: system`."""
    execution = INTERVENTIONS[name](options, options["execution_id"])
    if name == "rerun":
        command.stdout.write(f"re-run started: {execution.pk} ({execution.status})")
    else:
        command.stdout.write(f"{name}: execution {execution.pk} is now {execution.status}")


def _print_json(command, data) -> None:
    command.stdout.write(json.dumps(data, indent=2, default=str))


def _diagnose(command, options) -> None:
    report = diagnose(options["execution_id"])
    if options["as_json"]:
        return _print_json(command, report)
    out = command.stdout.write
    out(f"execution {report['execution']}  {report['workflow']} v{report['version']}  "
        f"{report['status']}")
    if report["error"]:
        out(f"error: {report['error'].get('message', report['error'])}")
    for node in report["stuck_nodes"]:
        out(f"STUCK  {node['node']} (attempt {node['attempt']}) has run {node['ran_s']} s, "
            f"expected at most {node['expected_s']} s, on {node['worker']}")
    for reason in report["why"]:
        out(f"why    {reason['node']}: {reason['message']}")
    for error in report["node_errors"][:5]:
        out(f"error  {error['node']}#{error['attempt']} [{error['error_class']}] "
            f"{error['message'][:200]}")
    for worker in report["workers"]:
        if worker.get("sampled"):
            out(f"worker {worker['worker']}: host CPU {worker['cpu_percent']:.0f} %, "
                f"memory {worker['memory_percent']:.0f} %")
    if report["suggestions"]:
        out("suggestions:")
        for advice in report["suggestions"]:
            out(f"  - {advice}")


def _workers(command, options) -> None:
    hosts = resources.resource_usage()["hosts"]
    executors = resources.executor_stats()
    if options["as_json"]:
        return _print_json(command, {"hosts": hosts, **executors})
    if not hosts and not executors["workers"]:
        command.stdout.write("no worker seen in the last 2 minutes "
                             "(is `braid worker` or `braid ticker` running?)")
        return
    now = timezone.now()
    for host in hosts:
        age = (now - parse_datetime(host["at"])).total_seconds()
        command.stdout.write(
            f"{host['host']:<24} seen {age:>5.1f} s ago  CPU {host['cpu_percent']:>5.1f} %"
            f"  memory {host['memory_percent']:>5.1f} %  {len(host['processes'])} processes")
    for worker in executors["workers"]:
        age = (now - parse_datetime(worker["seen_at"])).total_seconds()
        busy = "  ".join(f"{kind} {worker[kind]['busy']}/{worker[kind]['size']}"
                         for kind in ("thread", "process", "async") if kind in worker)
        command.stdout.write(f"  worker {worker['worker']:<22} beat {age:>5.1f} s ago  "
                             f"in flight {worker.get('inflight', 0)}  {busy}")


def _alerts(command, options) -> None:
    if not options["no_evaluate"]:
        evaluator.evaluate()
    alerts = list(Alert.objects.exclude(state="resolved").order_by("-last_seen")[:100])
    if options["as_json"]:
        return _print_json(command, [{"id": a.pk, "rule": a.rule, "severity": a.severity,
                                      "state": a.state, "title": a.title,
                                      "occurrences": a.occurrences, "details": a.details}
                                     for a in alerts])
    if not alerts:
        command.stdout.write("no open alerts")
    for alert in alerts:
        command.stdout.write(f"#{alert.pk} [{alert.severity}] {alert.state:<12} {alert.title} "
                             f"(×{alert.occurrences})")


def _prune(command, options) -> None:
    if options["dry_run"]:
        counts = retention.plan()
        for queue, count in counts.items():
            command.stdout.write(f"{queue}: {count} finished execution(s) past retention")
        command.stdout.write(f"dry run: {sum(counts.values())} would be deleted")
        return
    report = retention.prune(batch=max(1, options["batch"]))
    command.stdout.write(
        f"deleted {report['executions']} execution(s) ({report['rows']} rows) in "
        f"{report['batches']} batch(es); longest batch {report['longest_batch_ms']} ms; "
        f"{report['host_samples']} host sample(s), {report['notifications']} notification(s)")
