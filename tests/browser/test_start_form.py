"""Starting a workflow that needs input, from the admin, in a real browser.

The operator opens conditional-retry (its input_schema requires a number
`amount`), presses Start execution, types a bad input and sees the problem on
the form, then a good one with a queue, priority and key, and lands on the
execution, which takes the documented fast path.
"""

from __future__ import annotations

import json

import pytest

from tests.browser.conftest import needs_chromium, off_loop
from tests.browser.test_admin_pages import (
    EXECUTION_PAGE,
    assert_styled,
    expect,
    field,
    log_in,
    shot,
)
from tests.conftest import run_until_done

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]


def open_start_form(page, slug: str) -> None:
    page.goto("/admin/workflows/workflowdefinition/")
    page.locator("#result_list").get_by_role("link", name=slug, exact=True).click()
    page.get_by_role("link", name="Start execution").click()
    expect(page.get_by_role("heading", name=f"Start an execution of {slug}")).to_be_visible()


def test_start_form_shows_bad_input_on_the_form_then_starts_a_good_one(page,
                                                                       failed_responses):
    log_in(page)
    open_start_form(page, "conditional-retry")
    expect(page.get_by_label("Input")).to_have_value("{}")
    expect(page.get_by_label("Queue")).to_have_value("default")
    expect(page.get_by_label("Priority")).to_have_value("5")
    expect(page.locator("pre.braid-schema")).to_contain_text('"required": [')
    assert_styled(page)
    shot(page, "20-start-form")

    page.get_by_label("Input").fill('{"amount": "lots"}')
    page.get_by_role("button", name="Start execution").click()
    expect(page.locator(".errornote")).to_have_text("Please correct the error below.")
    expect(page.locator(".field-input .errorlist")).to_have_text(
        "amount: 'lots' is not of type 'number'")
    expect(page.get_by_label("Input")).to_have_value('{"amount": "lots"}')  # kept to fix
    assert_styled(page)
    shot(page, "21-start-form-bad-input")

    page.get_by_label("Input").fill('{"amount": ')
    page.get_by_role("button", name="Start execution").click()
    expect(page.locator(".field-input .errorlist")).to_have_text(
        "JSON: invalid JSON at line 1, column 12: Expecting value")

    page.get_by_label("Input").fill(json.dumps({"amount": 50}))
    page.get_by_label("Queue").select_option("realtime")
    page.get_by_label("Priority").fill("7")
    page.get_by_label("Idempotency key").fill("order-50")
    page.get_by_role("button", name="Start execution").click()

    expect(page).to_have_url(EXECUTION_PAGE)
    execution_id = EXECUTION_PAGE.search(page.url)[1]
    expect(page.locator(".messagelist .success")).to_have_text(
        f"Started execution {execution_id} of conditional-retry v1.")
    expect(field(page, "workflow_link")).to_have_text("conditional-retry")
    expect(field(page, "input_pretty")).to_contain_text('"amount": 50')
    shot(page, "22-started-from-form")

    execution = off_loop(run_until_done, execution_id)
    assert (execution.queue, execution.priority, execution.idempotency_key) == (
        "realtime", 7, "order-50")
    page.reload()
    expect(field(page, "badge")).to_have_text("succeeded")
    expect(field(page, "output_pretty")).to_contain_text('"by": "fast"')
    assert_styled(page)
    shot(page, "23-fast-path-succeeded")

    assert failed_responses == []
