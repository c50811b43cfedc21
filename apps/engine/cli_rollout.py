"""`manage.py braid` subcommands for versions and releases.

deploy, release, promote, abort, rollback, diff, export, import: each parses
its arguments, calls the same services as the admin and the API
(apps/engine/rollout.py, apps/workflows/*) and prints. The command line on
the server acts as the system (no user), and its audit entries say so.
"""

from __future__ import annotations

import json

from django.core.management.base import CommandError

from apps.engine import rollout
from apps.workflows import portable, releases
from apps.workflows.diff import diff_graphs
from apps.workflows.models import WorkflowVersion

COMMANDS = ("deploy", "release", "promote", "abort", "rollback", "diff", "export", "import")


def add_parsers(sub) -> None:
    p = sub.add_parser("deploy", help="ship a version: immediately, blue-green or as a canary")
    p.add_argument("slug", metavar="SLUG")
    p.add_argument("--version", dest="number", type=int, required=True, metavar="N")
    p.add_argument("--strategy", default="immediate",
                   choices=("immediate", "blue_green", "canary"))
    p.add_argument("--steps", metavar="5,25,50,100", help="canary percents (default 5,25,50,100)")
    p.add_argument("--threshold", action="append", default=[], metavar="NAME=VALUE",
                   help="a canary threshold, e.g. max_failure_rate=0.1 (repeatable)")
    p.add_argument("--smoke", metavar="FILE",
                   help='blue-green smoke runs: JSON [{"input": {...}, "expected": {...}}]')
    p.add_argument("--smoke-timeout", type=float, default=300.0, metavar="SECONDS")
    p.add_argument("--key", dest="routing_key", default="idempotency_key",
                   choices=("idempotency_key", "execution_id", "expression"),
                   help="what canary routing hashes (default: the idempotency key, else the "
                        "execution id)")
    p.add_argument("--key-expression", default="", metavar="CEL",
                   help="with --key expression: a CEL expression over input")
    p.add_argument("--reason", default="")

    p = sub.add_parser("release", help="the current release of a workflow: state, figures, log")
    p.add_argument("slug", metavar="SLUG")
    p.add_argument("--json", dest="as_json", action="store_true")

    for name, text in (("promote", "move the active release one step on"),
                       ("abort", "stop the active release; stable keeps all traffic")):
        p = sub.add_parser(name, help=text)
        p.add_argument("slug", metavar="SLUG")
        p.add_argument("--reason", default="")

    p = sub.add_parser("rollback", help="back to an earlier version at once")
    p.add_argument("slug", metavar="SLUG")
    p.add_argument("--to", type=int, metavar="N",
                   help="the version (default: the one current before the current one)")
    p.add_argument("--reason", default="")

    p = sub.add_parser("diff", help="what changed between two versions of a workflow")
    p.add_argument("slug", metavar="SLUG")
    p.add_argument("a", type=int, metavar="A")
    p.add_argument("b", type=int, metavar="B")
    p.add_argument("--json", dest="as_json", action="store_true")

    p = sub.add_parser("export", help="print a version as a JSON document")
    p.add_argument("slug", metavar="SLUG")
    p.add_argument("number", type=int, metavar="N")

    p = sub.add_parser("import", help="publish an exported version (not made current)")
    p.add_argument("file", metavar="FILE", help="an exported version ('-' for stdin)")
    p.add_argument("--slug", help="import under this workflow instead")


def run(command, name: str, options: dict):
    from django.core.exceptions import PermissionDenied

    try:
        return globals()[f"cmd_{name}"](command, **options)
    except PermissionDenied as exc:
        raise CommandError(str(exc), returncode=1) from None


def cmd_deploy(command, slug, number, strategy, steps, threshold, smoke, smoke_timeout,
               routing_key, key_expression, reason, **_):
    from apps.engine.management.commands.braid import load_json_file

    options = {"strategy": strategy, "routing_key": routing_key,
               "routing_expression": key_expression, "reason": reason,
               "smoke_timeout_s": smoke_timeout,
               "thresholds": dict(_threshold(t) for t in threshold)}
    if steps:
        options["steps"] = _steps(steps)
    if smoke:
        options["smoke_inputs"] = load_json_file(smoke)
    release = rollout.deploy(slug, number, **options)
    what = {"immediate": "is current", "blue_green": f"is staged; "
            f"{len(release.smoke_inputs)} smoke run(s) started",
            "canary": f"takes {release.percent:g}% of new executions"}[strategy]
    command.stdout.write(f"{slug} v{number} {what} (release {release.pk})")


def cmd_release(command, slug, as_json, **_):
    state = rollout.release_state(slug)
    if as_json:
        command.stdout.write(json.dumps(state, indent=2, default=str))
        return
    out = command.stdout.write
    out(f"{slug}: current version v{state['current_version']}")
    release = state["release"]
    if release is None:
        out("no release yet")
        return
    step = (f", step {release['step']}/{len(release['steps'])} at {release['percent']:g}%"
            if release["strategy"] == "canary" else "")
    out(f"release {release['id']}: {release['strategy']} v{release['candidate_version']} "
        f"(stable v{release['stable_version']}) {release['state']}{step}")
    for row in state["versions"]:
        p95 = "-" if row["p95_ms"] is None else f"{row['p95_ms']:.0f} ms"
        out(f"  v{row['version']} {row['role']:<9} started {row['started']:>6}  finished "
            f"{row['finished']:>6}  failed {row['failed']:>5} "
            f"({row['failure_rate']:.1%})  p95 {p95}")
    for smoke in state.get("smoke", []):
        out(f"  smoke {smoke['execution']} {smoke['status']}")
    out("log:")
    for event in state["log"][:20]:
        out(f"  {event['at'][:19]} {event['severity']:<8} {event['kind']:<12} "
            f"{event['actor']}: {event['reason']}")


def cmd_promote(command, slug, reason, **_):
    release = rollout.promote(slug, reason=reason)
    command.stdout.write(f"{slug}: release {release.pk} {release.state}"
                         + (f" at {release.percent:g}%" if release.state == "canary" else ""))


def cmd_abort(command, slug, reason, **_):
    release = rollout.abort(slug, reason=reason)
    command.stdout.write(f"{slug}: release {release.pk} aborted; stable "
                         f"v{release.stable_version.number} takes all new executions")


def cmd_rollback(command, slug, to, reason, **_):
    rollout.rollback(slug, to, reason=reason)
    definition = releases.definition_of(slug)
    command.stdout.write(f"{slug}: v{definition.current_version.number} is current")


def cmd_diff(command, slug, a, b, as_json, **_):
    definition = releases.definition_of(slug)
    old, new = (releases.version_number(definition, n) for n in (a, b))
    diff = diff_graphs(old.graph, new.graph)
    if as_json:
        command.stdout.write(json.dumps(diff.as_dict(), indent=2, default=str))
        return
    out = command.stdout.write
    if diff.empty:
        out(f"{slug} v{a} and v{b} have the same graph")
        return
    for node in diff.nodes_added:
        out(f"+ node {node['id']} ({node.get('type')})")
    for node in diff.nodes_removed:
        out(f"- node {node['id']} ({node.get('type')})")
    for node in diff.nodes_changed:
        out(f"~ node {node.id}")
        for change in node.changes:
            out(f"    {change.path}: {_show(change.old, change.present == 'new')} → "
                f"{_show(change.new, change.present == 'old')}")
    for edge in diff.edges_added:
        out(f"+ edge {_edge(edge)}")
    for edge in diff.edges_removed:
        out(f"- edge {_edge(edge)}")
    for change in diff.workflow_changed:
        out(f"~ {change.path}: {_show(change.old, change.present == 'new')} → "
            f"{_show(change.new, change.present == 'old')}")


def cmd_export(command, slug, number, **_):
    version = releases.version_number(releases.definition_of(slug), number)
    command.stdout.write(json.dumps(portable.export_version(version), indent=2))


def cmd_import(command, file, slug, **_):
    from apps.engine.management.commands.braid import load_json_file

    before = WorkflowVersion.objects.count()
    version = portable.import_version(load_json_file(file), slug=slug)
    new = WorkflowVersion.objects.count() > before
    command.stdout.write(f"{version.definition.slug} v{version.number} "
                         f"{'imported' if new else 'already there (same graph)'}")


def _steps(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"--steps: {text!r} is not a list of whole percents like "
                           "5,25,50,100", returncode=1) from None


def _threshold(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise CommandError(f"--threshold: {text!r} is not NAME=NUMBER", returncode=1) from None


def _show(value, absent: bool) -> str:
    return "(absent)" if absent else json.dumps(value, ensure_ascii=False)


def _edge(edge: dict) -> str:
    when = f" when {edge['when']}" if edge.get("when") else ""
    return f"{edge.get('from')} → {edge.get('to')}{when}"
