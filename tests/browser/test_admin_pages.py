"""The operator's admin, in a real browser.

The operator signs in with the demo account, finds the example workflows,
starts one from its page, watches the execution finish, finds it in the list,
and cancels another that is still pending. Assertions are about what the
operator sees on the page; screenshots go to var/screenshots/.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import (
    DEMO_PASSWORD,
    DEMO_USER,
    SCREENSHOTS,
    needs_chromium,
    off_loop,
)
from tests.conftest import run_until_done

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]

EXAMPLES = ("conditional-retry", "data-sync", "order-saga", "three-steps")
EXECUTION_PAGE = re.compile(r"/admin/engine/execution/([0-9a-f-]{36})/change/$")
ADMIN_HEADER_BG = "rgb(65, 118, 144)"  # the admin's --header-bg: its CSS has loaded


def expect(*args, **kwargs):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(*args, **kwargs)


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def assert_styled(page) -> None:
    """The admin's stylesheet applied (the header has its colour) and no template error."""
    expect(page.locator("#header")).to_have_css("background-color", ADMIN_HEADER_BG)
    expect(page.get_by_text("TemplateSyntaxError")).to_have_count(0)
    expect(page.get_by_text("Server Error (500)")).to_have_count(0)


def log_in(page, shot_name: str | None = None) -> None:
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
    assert_styled(page)
    page.get_by_label("Username").fill(DEMO_USER)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    if shot_name:
        shot(page, shot_name)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Workflows, executions and operations")).to_be_visible()


def start_from_workflow_page(page, slug: str) -> str:
    """Open the workflow's page, start it with the empty input; return the execution's id."""
    page.goto("/admin/workflows/workflowdefinition/")
    page.locator("#result_list").get_by_role("link", name=slug, exact=True).click()
    page.get_by_role("link", name="Start execution").click()
    page.get_by_role("button", name="Start execution").click()  # the input is {}
    expect(page).to_have_url(EXECUTION_PAGE)
    return EXECUTION_PAGE.search(page.url)[1]


def field(page, name: str):
    """The value shown for a read-only field on a change page."""
    return page.locator(f".form-row.field-{name} .readonly")


def list_row(page, execution_id: str):
    return page.locator("#result_list tbody tr").filter(has_text=execution_id[:8])


def test_start_an_example_and_watch_it_succeed(page, failed_responses):
    log_in(page, "01-login")
    assert_styled(page)
    shot(page, "02-index")

    page.get_by_role("link", name="Workflow definitions").click()
    expect(page.get_by_role("heading", name="Select workflow definition to change")).to_be_visible()
    listed = page.locator("#result_list tbody th.field-slug")
    expect(listed).to_have_text(list(EXAMPLES))
    assert_styled(page)
    shot(page, "03-workflow-definitions")

    listed.get_by_role("link", name="three-steps", exact=True).click()
    expect(page.get_by_role("heading", name="three-steps")).to_be_visible()
    expect(field(page, "current_version_link")).to_have_text("v1")
    expect(page.get_by_role("link", name="Executions of three-steps")).to_be_visible()
    assert_styled(page)
    shot(page, "04-three-steps")

    page.get_by_role("link", name="Start execution").click()
    page.get_by_role("button", name="Start execution").click()
    expect(page).to_have_url(EXECUTION_PAGE)
    execution_id = EXECUTION_PAGE.search(page.url)[1]
    expect(page.locator(".messagelist .success")).to_have_text(
        f"Started execution {execution_id} of three-steps v1.")
    expect(field(page, "id")).to_have_text(execution_id)
    expect(field(page, "workflow_link")).to_have_text("three-steps")
    expect(field(page, "badge")).to_have_text("pending")
    expect(field(page, "progress")).to_have_text("0/3")
    assert_styled(page)
    shot(page, "05-execution-pending")

    execution = off_loop(run_until_done, execution_id)
    page.reload()
    shot(page, "06-execution-finished")
    # Not what the user sees, but the reason when the page below says otherwise.
    assert execution.status == "succeeded", execution.error
    expect(field(page, "badge")).to_have_text("succeeded")
    expect(field(page, "progress")).to_have_text("3/3")
    expect(field(page, "output_pretty").locator("pre")).to_contain_text('"step": 3')
    expect(field(page, "error_pretty")).to_have_text("—")
    expect(page.locator(".inline-group td.field-node_id")).to_have_text(["a", "b", "c"])
    expect(page.locator(".inline-group td.field-badge")).to_have_text(["succeeded"] * 3)
    expect(field(page, "events_table")).to_contain_text("execution.succeeded")
    assert_styled(page)

    assert failed_responses == []


def test_find_an_execution_and_cancel_a_pending_one(page, failed_responses):
    log_in(page)
    finished = start_from_workflow_page(page, "three-steps")
    off_loop(run_until_done, finished)
    pending = start_from_workflow_page(page, "three-steps")

    page.get_by_role("link", name="Executions", exact=True).first.click()
    expect(page.get_by_role("heading", name="Select execution to view")).to_be_visible()
    expect(list_row(page, finished).locator("td.field-badge")).to_have_text("succeeded")
    expect(list_row(page, finished).locator("td.field-progress")).to_have_text("3/3")
    expect(list_row(page, pending).locator("td.field-badge")).to_have_text("pending")
    expect(list_row(page, pending).locator("td.field-progress")).to_have_text("0/3")
    assert_styled(page)
    shot(page, "07-executions")

    page.locator("#searchbar").fill(finished)
    page.locator("#searchbar").press("Enter")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(list_row(page, finished).locator("td.field-badge")).to_have_text("succeeded")
    shot(page, "08-executions-search")

    page.locator("#searchbar").fill(pending)
    page.locator("#searchbar").press("Enter")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    list_row(page, pending).locator("input.action-select").check()
    page.locator("select[name=action]").select_option(label="Cancel selected executions")
    shot(page, "09-cancel-action")
    page.get_by_role("button", name="Go").click()

    expect(page.locator(".messagelist .success")).to_have_text("Cancelled 1 execution.")
    expect(list_row(page, pending).locator("td.field-badge")).to_have_text("cancelled")
    assert_styled(page)
    shot(page, "10-cancelled")

    list_row(page, pending).get_by_role("link", name=pending[:8]).click()
    expect(field(page, "badge")).to_have_text("cancelled")
    expect(field(page, "error_pretty")).to_contain_text("cancelled in the admin by admin")
    shot(page, "11-cancelled-execution")

    page.goto("/admin/engine/execution/")
    expect(list_row(page, pending).locator("td.field-badge")).to_have_text("cancelled")
    expect(list_row(page, finished).locator("td.field-badge")).to_have_text("succeeded")

    assert failed_responses == []
