"""Writes of the workflows floor: definitions and immutable versions."""

import re

from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils.text import slugify

from apps.nodes.expressions import evaluate
from apps.workflows import releases
from apps.workflows.errors import DefinitionInvalid, NotFound, ReleaseConflict
from apps.workflows.graph import GraphInvalid
from apps.workflows.models import Release, WorkflowDefinition, WorkflowVersion
from apps.workflows.routing import PINNED, Routing, route
from apps.workflows.specs import checksum, validate_definition

SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")


def check_slug(slug) -> None:
    """A workflow's slug: letters, digits, - and _, at most 100 (it appears in URLs)."""
    if not isinstance(slug, str) or not SLUG.fullmatch(slug):
        raise DefinitionInvalid(f"{slug!r} is not a valid slug", [{
            "where": "slug", "node": None,
            "message": "use letters, digits, - and _ (at most 100), such as 'order-saga'"}])


def check_definition(spec) -> None:
    """Raise DefinitionInvalid listing every problem of `spec`."""
    try:
        validate_definition(spec)
    except GraphInvalid as exc:
        raise DefinitionInvalid(
            f"the definition has {len(exc.problems)} problem(s)",
            [p.as_dict() for p in exc.problems]) from None


@transaction.atomic
def publish_version(slug: str, spec: dict, *, author=None, notes: str = "",
                    name: str | None = None, description: str | None = None,
                    make_current: bool = True, team_id: int | None = None) -> WorkflowVersion:
    """Create the definition if new (owned by `team_id`), store `spec` as its next version.

    Publishing a graph identical to an existing version returns that version
    (no new number). With `make_current` the version becomes current at once,
    recorded in the release log as an immediate deploy; while a blue-green or
    canary release is active that is refused (ship through the release instead).
    """
    check_slug(slug)
    check_definition(spec)
    definition, _ = WorkflowDefinition.objects.select_for_update().get_or_create(
        slug=slug, defaults={"name": name or spec.get("name") or slug,
                             "description": description or spec.get("description", ""),
                             "owner": author, "team_id": team_id})
    digest = checksum(spec)
    version = definition.versions.filter(checksum=digest).order_by("-number").first()
    if version is None:
        number = (definition.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = WorkflowVersion.objects.create(definition=definition, number=number,
                                                 graph=spec, checksum=digest,
                                                 author=author, notes=notes)
    if make_current and definition.current_version_id != version.pk:
        if Release.objects.filter(definition=definition,
                                  state__in=("smoke", "canary")).exists():
            raise ReleaseConflict(f"{slug} has an active release: finish it (promote, abort "
                                  "or roll back) before publishing a version that becomes "
                                  "current, or publish without making it current")
        releases.switch_now(definition, version, user=author, reason="published")
    return version


def adhoc_version(spec: dict, *, author=None, team_id: int | None = None) -> WorkflowVersion:
    """An inline definition, stored once per distinct graph and team as an ad-hoc version
    (owned by `team_id`; without one it is staff-only).

    Its workflow is named after the definition's `name`: "Three steps" runs as
    `three-steps-<12 hex digits of its checksum>` (with `-t<team id>` before the
    digits when a team owns it), so lists and the CLI say what it is.
    """
    check_definition(spec)
    digest = checksum(spec)
    suffix = f"-{digest[:12]}" if team_id is None else f"-t{team_id}-{digest[:12]}"
    slug = f"{slugify(spec['name'])[:100 - len(suffix)] or 'adhoc'}{suffix}"
    existing = WorkflowVersion.objects.filter(definition__slug=slug, checksum=digest).first()
    if existing:
        return existing
    try:
        with transaction.atomic():
            definition = WorkflowDefinition.objects.create(
                slug=slug, name=spec.get("name") or slug, adhoc=True, owner=author,
                team_id=team_id)
            version = WorkflowVersion.objects.create(definition=definition, number=1,
                                                     graph=spec, checksum=digest,
                                                     author=author, notes="inline definition")
            definition.current_version = version
            definition.save(update_fields=["current_version"])
            return version
    except IntegrityError:  # another request stored the same graph first
        version = WorkflowVersion.objects.filter(definition__slug=slug,
                                                 checksum=digest).first()
        if version is None:
            raise DefinitionInvalid(f"a workflow {slug!r} already exists", [{
                "where": "name", "node": None,
                "message": "another workflow has this slug; rename the definition"}]) from None
        return version


def current_version(slug: str) -> WorkflowVersion:
    """The stable version of a workflow (a start by slug may instead get a canary)."""
    return version_by_id(routing_of(slug)[1].stable_id)


_ROUTING_FIELDS = ("id", "current_version_id", "canary_version_id", "canary_percent",
                   "canary_key", "canary_key_expression")


def routing_of(slug: str) -> tuple[int, Routing]:
    """(definition id, routing) of a workflow: the one small query a start by slug makes."""
    # Fixed SQL, not the ORM: compiling the query was a third of a start's CPU.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(_ROUTING_FIELDS)} FROM "
                       f"{WorkflowDefinition._meta.db_table} WHERE slug = %s", [slug])
        row = cursor.fetchone()
    if row is None:
        raise NotFound(f"no workflow {slug!r}")
    return row[0], _routing(slug, row)


def locked_routing(definition_id: int, slug: str) -> Routing:
    """The routing row again, inside the start's transaction, share-locked.

    Only starts that saw a canary call this. Release services take the row
    `FOR UPDATE`, so an abort either waits for this transaction (whose
    executions then commit before the abort) or has committed and is seen here.
    `FOR KEY SHARE` is what the execution's foreign key takes anyway. SQLite
    needs no lock: Braid's write transactions there are serialised.
    """
    suffix = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(_ROUTING_FIELDS)} FROM "
                       f"{WorkflowDefinition._meta.db_table} WHERE id = %s{suffix}",
                       [definition_id])
        return _routing(slug, cursor.fetchone())


def _routing(slug: str, row) -> Routing:
    definition_id, version_id, canary_id, percent, key, expression = row
    if version_id is None:
        version_id = WorkflowVersion.objects.filter(definition_id=definition_id).order_by(
            "-number").values_list("id", flat=True).first()
        if version_id is None:
            raise NotFound(f"workflow {slug!r} has no published version")
    return Routing(stable_id=version_id, candidate_id=canary_id, percent=percent or 0.0,
                   key=key, expression=expression)


def choose(routing: Routing, *, execution_id, idempotency_key: str | None,
           inputs: dict, evaluator=None) -> tuple[WorkflowVersion, str]:
    """The version and route (stable or candidate) of one new execution."""
    version_id, chosen = route(routing, execution_id=str(execution_id),
                               idempotency_key=idempotency_key, inputs=inputs,
                               evaluate=evaluator or evaluate)
    return version_by_id(version_id), chosen


def pinned(version_id: int) -> tuple[WorkflowVersion, str]:
    """A start by version id: the release is bypassed, and the execution says so."""
    return version_by_id(version_id), PINNED


# Versions are immutable (and a definition's slug is read-only), so a loaded
# version with its definition can be kept for the life of the process.
_versions: dict[int, WorkflowVersion] = {}


def version_by_id(version_id: int) -> WorkflowVersion:
    version = _versions.get(version_id)
    if version is None:
        version = WorkflowVersion.objects.select_related("definition").filter(
            pk=version_id).first()
        if version is None:
            raise NotFound(f"no workflow version {version_id}")
        if len(_versions) > 1024:
            _versions.clear()
        _versions[version_id] = version
    return version
