"""Version history: immutable versions, no duplicates, diff, export and import."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.workflows.diff import diff_graphs
from apps.workflows.errors import DefinitionInvalid
from apps.workflows.models import ReleaseEvent, WorkflowVersion
from apps.workflows.portable import export_version, import_version
from apps.workflows.services import publish_version

pytestmark = pytest.mark.django_db

V1 = {"name": "Greet", "nodes": [{"id": "a", "type": "noop", "config": {"output": {"n": 1}}}]}
V2 = {"name": "Greet", "nodes": [{"id": "a", "type": "noop", "config": {"output": {"n": 2}}},
                                 {"id": "b", "type": "noop"}],
      "edges": [{"from": "a", "to": "b"}]}


def test_republishing_an_identical_graph_creates_no_version(django_user_model):
    alice = django_user_model.objects.create_user("alice")
    first = publish_version("greet", V1, author=alice, notes="first")
    second = publish_version("greet", V2, author=alice)
    again = publish_version("greet", dict(V1), notes="same graph, other notes")

    assert again.pk == first.pk
    assert list(WorkflowVersion.objects.filter(definition__slug="greet")
                .values_list("number", flat=True)) == [2, 1]
    assert (first.number, first.author, first.notes) == (1, alice, "first")
    assert len(first.checksum) == 64 and first.checksum != second.checksum
    assert first.created_at is not None


def test_a_version_cannot_be_changed():
    version = publish_version("greet", V1)
    version.notes = "edited"

    with pytest.raises(ValidationError, match="immutable"):
        version.save()


def test_the_diff_of_two_stored_versions_is_exact():
    v1 = publish_version("greet", V1)
    v2 = publish_version("greet", V2)

    diff = diff_graphs(v1.graph, v2.graph)

    assert [n["id"] for n in diff.nodes_added] == ["b"]
    assert [(c.path, c.old, c.new) for c in diff.nodes_changed[0].changes] == [
        ("config.output.n", 1, 2)]
    assert diff.edges_added == ({"from": "a", "to": "b"},)
    assert not diff.nodes_removed and not diff.edges_removed


def test_publishing_lists_every_problem():
    bad = {"name": "", "nodes": [{"id": "a", "type": "nope"}, {"id": "b", "type": "noop"}],
           "edges": [{"from": "b", "to": "ghost"}]}

    with pytest.raises(DefinitionInvalid) as info:
        publish_version("greet", bad)

    messages = " | ".join(f"{p['where']}: {p['message']}" for p in info.value.problems)
    assert len(info.value.problems) >= 3, messages
    assert "name" in messages and "nope" in messages and "ghost" in messages
    assert not WorkflowVersion.objects.exists()


def test_a_version_exported_as_json_imports_again_elsewhere():
    v2 = publish_version("greet", V1) and publish_version("greet", V2, notes="two")
    document = export_version(v2)

    imported = import_version(document, slug="greet-copy")
    again = import_version(document, slug="greet-copy")

    assert (imported.definition.slug, imported.number, imported.graph) == ("greet-copy", 1, V2)
    assert imported.checksum == v2.checksum and again.pk == imported.pk
    assert "imported from greet v2" in imported.notes


def test_an_edited_export_is_refused():
    document = export_version(publish_version("greet", V1))
    document["graph"]["nodes"][0]["type"] = "transform"

    with pytest.raises(DefinitionInvalid) as info:
        import_version(document, slug="other")

    assert info.value.problems[0]["where"] == "version.checksum"


def test_making_a_version_current_is_in_the_release_log(django_user_model):
    alice = django_user_model.objects.create_user("alice")
    publish_version("greet", V1, author=alice)
    publish_version("greet", V2, author=alice)

    log = list(ReleaseEvent.objects.order_by("id").values_list("kind", "actor_name", "figures"))
    assert [(k, a) for k, a, _ in log] == [("deploy", "alice"), ("deploy", "alice")]
    assert log[1][2]["version"] == 2 and log[1][2]["previous"] == 1
