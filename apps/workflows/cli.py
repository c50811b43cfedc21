"""`manage.py braid publish FILE [--slug S] [--notes N]`: publish a new version.

Registered by the engine's `braid` command; it calls `services.publish_version`
like every other way of publishing, and only parses arguments and prints.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError


def add_publish(sub) -> None:
    p = sub.add_parser(
        "publish", help="publish a definition file as a new version of a workflow",
        description="Validate FILE and store it as the next version of the workflow SLUG "
                    "(created if new); starts by slug run it from then on. Publishing a "
                    "graph identical to the latest version makes no new version. Exit "
                    "code 1 on bad input.")
    p.add_argument("file", metavar="FILE", help="a JSON workflow definition ('-' for stdin)")
    p.add_argument("--slug", metavar="S",
                   help="the workflow's slug (default: from the file name, "
                        "order_saga.json → order-saga)")
    p.add_argument("--notes", default="", metavar="N", help="release notes kept with the version")


def default_slug(file: str) -> str:
    if file == "-":
        raise CommandError("give --slug when reading the definition from stdin")
    return Path(file).stem.replace("_", "-")


def publish(command, spec: dict, file: str, slug: str | None, notes: str) -> None:
    """Publish `spec` (already parsed from `file`) and say what happened."""
    from apps.workflows.services import publish_version

    slug = slug or default_slug(file)
    latest_before = _latest(slug)
    version = publish_version(slug, spec, notes=notes)
    label = f"{slug} v{version.number}"
    if version.pk == latest_before:
        command.stdout.write(f"Unchanged: {label} ({version.definition.name}) already has "
                             "this graph; no new version")
    else:
        command.stdout.write(f"Published {label} ({version.definition.name}); "
                             f"`braid run {slug}` starts it")


def _latest(slug: str) -> int | None:
    from apps.workflows.models import WorkflowVersion

    return (WorkflowVersion.objects.filter(definition__slug=slug).order_by("-number")
            .values_list("pk", flat=True).first())
