"""The admin's Start execution page (apps/engine/admin_start.py): it asks for the input,
checks it against the workflow's input_schema, and shows each problem on the form."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from apps.engine.models import Execution
from apps.workflows.services import publish_version
from tests.conftest import load_example

pytestmark = pytest.mark.django_db

GOOD = {"input": '{"items": ["book"], "amount": 12.5}', "queue": "default", "priority": "5"}


@pytest.fixture
def saga():
    return publish_version("order-saga", load_example("order_saga")).definition


def start_url(definition) -> str:
    return reverse("admin:workflows_workflowdefinition_start", args=[definition.pk])


def form_errors(response) -> dict:
    assert response.status_code == 200
    return {k: [str(e) for e in v] for k, v in response.context["form"].errors.items()}


def test_the_page_asks_for_input_queue_priority_and_key_and_shows_the_schema(admin_client,
                                                                            saga):
    page = admin_client.get(start_url(saga)).content.decode()

    for name in ("input", "queue", "priority", "idempotency_key"):
        assert f'name="{name}"' in page
    assert '<option value="realtime">' in page
    assert "&quot;required&quot;: [" in page  # the workflow's input_schema, to read


def test_input_that_does_not_match_the_schema_is_shown_on_the_form(admin_client, saga):
    response = admin_client.post(start_url(saga), {**GOOD, "input": '{"amount": -1}'})

    assert form_errors(response) == {"input": [
        "'items' is a required property", "amount: -1 is less than the minimum of 0"]}
    assert '{&quot;amount&quot;: -1}' in response.content.decode()  # kept, to fix
    assert not Execution.objects.exists()


@pytest.mark.parametrize("field, value, error", [
    ("input", "[" * 10_000 + "]" * 10_000, "JSON: nested more than 64 levels deep"),
    ("input", '{"amount": ', "JSON: invalid JSON at line 1, column 12: Expecting value"),
    ("input", "[1, 2]", 'must be a JSON object, such as {"amount": 50}'),
    ("queue", "nightly", "Select a valid choice. nightly is not one of the available "
                         "choices."),
    ("priority", "12", "Ensure this value is less than or equal to 9."),
])
def test_bad_fields_are_refused_on_the_form(admin_client, saga, field, value, error):
    response = admin_client.post(start_url(saga), {**GOOD, field: value})

    assert form_errors(response) == {field: [error]}
    assert not Execution.objects.exists()


def test_a_good_input_starts_with_queue_priority_and_key_then_opens_the_execution(
        admin_client, saga):
    response = admin_client.post(start_url(saga), {**GOOD, "queue": "realtime",
                                                   "priority": "8",
                                                   "idempotency_key": "order-42"})

    execution = Execution.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:engine_execution_change", args=[execution.pk])
    assert execution.input == {"items": ["book"], "amount": 12.5}
    assert (execution.queue, execution.priority, execution.idempotency_key) == (
        "realtime", 8, "order-42")
    assert execution.created_by.username == "admin"


def test_the_same_idempotency_key_opens_the_execution_it_started(admin_client, saga):
    admin_client.post(start_url(saga), {**GOOD, "idempotency_key": "order-42"}, follow=True)
    again = admin_client.post(start_url(saga), {**GOOD, "idempotency_key": "order-42"},
                              follow=True)

    execution = Execution.objects.get()
    assert again.redirect_chain[-1][0].endswith(f"/{execution.pk}/change/")
    assert [str(m) for m in again.context["messages"]] == [
        f"The idempotency key order-42 was used before: this is execution {execution.pk}, "
        "started earlier."]


def test_a_viewer_without_the_start_permission_cannot_start(client, saga):
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=[
        "view_workflowdefinition", "view_execution"]))
    client.force_login(viewer)

    page = client.get(reverse("admin:workflows_workflowdefinition_change", args=[saga.pk]))
    assert page.status_code == 200 and start_url(saga) not in page.content.decode()
    assert client.get(start_url(saga)).status_code == 403
    assert client.post(start_url(saga), GOOD).status_code == 403
    assert not Execution.objects.exists()
