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
    last_number, current_before = _state(slug)
    version = publish_version(slug, spec, notes=notes)
    label = f"{slug} v{version.number} ({version.definition.name})"
    if version.number > last_number:
        command.stdout.write(f"Published {label}; `braid run {slug}` starts it")
    elif version.pk == current_before:
        command.stdout.write(f"Unchanged: {label} already has this graph; no new version")
    else:
        command.stdout.write(f"Unchanged: {label} already has this graph; no new version. "
                             f"v{version.number} is the current version again")


def _state(slug: str) -> tuple[int, int | None]:
    """The highest version number of `slug` (0 if new) and its current version's id."""
    from django.db.models import Max

    from apps.workflows.models import WorkflowDefinition

    row = (WorkflowDefinition.objects.filter(slug=slug)
           .annotate(last=Max("versions__number")).values("last", "current_version_id")
           .first())
    return ((row["last"] or 0), row["current_version_id"]) if row else (0, None)
