"""Writes of the workflows floor: definitions and immutable versions."""

from django.db import IntegrityError, transaction
from django.db.models import Max

from apps.workflows.errors import DefinitionInvalid, NotFound
from apps.workflows.graph import GraphInvalid
from apps.workflows.models import WorkflowDefinition, WorkflowVersion
from apps.workflows.specs import checksum, validate_definition


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

    Publishing a graph identical to the latest version returns that version.
    """
    check_definition(spec)
    definition, _ = WorkflowDefinition.objects.select_for_update().get_or_create(
        slug=slug, defaults={"name": name or spec.get("name") or slug,
                             "description": description or spec.get("description", ""),
                             "owner": author, "team_id": team_id})
    digest = checksum(spec)
    latest = definition.versions.order_by("-number").first()
    if latest and latest.checksum == digest:
        version = latest
    else:
        number = (definition.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = WorkflowVersion.objects.create(definition=definition, number=number,
                                                 graph=spec, checksum=digest,
                                                 author=author, notes=notes)
    if make_current and definition.current_version_id != version.pk:
        definition.current_version = version
        definition.save(update_fields=["current_version", "updated_at"])
    return version


def adhoc_version(spec: dict, *, author=None, team_id: int | None = None) -> WorkflowVersion:
    """An inline definition, stored once per distinct graph and team as an ad-hoc version
    (owned by `team_id`; without one it is staff-only)."""
    check_definition(spec)
    digest = checksum(spec)
    slug = f"adhoc-{digest[:16]}" if team_id is None else f"adhoc-t{team_id}-{digest[:16]}"
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
        return WorkflowVersion.objects.get(definition__slug=slug, checksum=digest)


def current_version(slug: str) -> WorkflowVersion:
    """The version a start by slug runs: one small query, the version from a cache."""
    row = WorkflowDefinition.objects.filter(slug=slug).values_list(
        "id", "current_version_id").first()
    if row is None:
        raise NotFound(f"no workflow {slug!r}")
    definition_id, version_id = row
    if version_id is None:
        version_id = WorkflowVersion.objects.filter(definition_id=definition_id).order_by(
            "-number").values_list("id", flat=True).first()
        if version_id is None:
            raise NotFound(f"workflow {slug!r} has no published version")
    return version_by_id(version_id)


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
