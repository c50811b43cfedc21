"""Releases in a real browser: compare two versions, deploy a canary, watch it, roll back.

The operator signs in with the demo account, opens three-steps' Releases
page, compares v1 with a new v2 side by side, deploys v2 as a canary from
the form, sees executions split between the versions with their figures,
and rolls back after confirming. Screenshots go to var/screenshots/.
"""

from __future__ import annotations

import copy

import pytest

from apps.engine.start import StartRequest, start_many
from apps.engine.worker import drain
from apps.workflows.services import publish_version
from tests.browser.conftest import needs_chromium, off_loop
from tests.browser.test_admin_pages import assert_styled, expect, log_in, shot
from tests.conftest import load_example

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]


def publish_v2():
    spec = copy.deepcopy(load_example("three_steps"))
    spec["nodes"][1]["config"]["output"]["step"] = "nodes.a.output.step + 10"
    spec["nodes"].append({"id": "d", "type": "noop"})
    spec["edges"].append({"from": "c", "to": "d"})
    publish_version("three-steps", spec, make_current=False, notes="step + 10, then d")


def start_and_run(count: int) -> None:
    start_many([StartRequest(workflow="three-steps", input={}) for _ in range(count)])
    while drain(budget_s=5):
        pass


def test_compare_deploy_a_canary_watch_it_and_roll_back(page, failed_responses):
    off_loop(publish_v2)
    log_in(page)
    page.goto("/admin/workflows/workflowdefinition/")
    page.locator("#result_list").get_by_role("link", name="three-steps", exact=True).click()
    page.get_by_role("link", name="Releases & versions").click()
    expect(page.get_by_role("heading", name="Releases of three-steps")).to_be_visible()
    versions = page.locator("table.versions tbody tr")
    expect(versions).to_have_count(2)
    expect(versions.first).to_contain_text("step + 10, then d")
    expect(versions.nth(1).locator(".badge.current")).to_have_text("current")
    assert_styled(page)
    shot(page, "20-releases")

    page.get_by_role("button", name="Compare A → B").click()
    expect(page.get_by_role("heading", name="three-steps: v1 → v2")).to_be_visible()
    expect(page.locator("p.summary")).to_contain_text("1 node(s) added, 0 removed, 1 changed")
    changed = page.locator("tr.line-changed").filter(has_text="config.output.step")
    expect(changed.locator("td.old")).to_have_text('"nodes.a.output.step + 1"')
    expect(changed.locator("td.new")).to_have_text('"nodes.a.output.step + 10"')
    expect(changed.locator("td.new")).to_have_css("background-color", "rgb(221, 244, 228)")
    expect(page.locator("tr.line-added td.new")).to_contain_text(["c → d"])
    assert_styled(page)
    shot(page, "21-diff")

    page.go_back()
    page.get_by_label("Version").select_option("2")
    page.get_by_label("Strategy").select_option("canary")
    page.get_by_label("Steps").fill("30,100")
    page.get_by_label("Routing key").select_option("execution_id")
    page.get_by_label("Reason").fill("try the +10 step")
    shot(page, "22-deploy-form")
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator(".messagelist .success")).to_have_text("Deployed v2 (canary).")
    expect(page.locator("#release-state")).to_contain_text(
        "step 1 of 2: 30% of new executions on v2")

    off_loop(start_and_run, 60)
    page.reload()
    figures = page.locator("table.figures tbody tr")
    expect(figures).to_have_count(2)
    expect(figures.filter(has_text="candidate").locator("td").nth(6)).to_contain_text("ms")
    expect(figures.filter(has_text="stable").locator("td").nth(5)).to_have_text("100.0%")
    expect(page.locator("table.log")).to_contain_text("try the +10 step")
    assert_styled(page)
    shot(page, "23-canary-live")

    page.locator("#release-state").get_by_role("link", name="Rollback").click()
    expect(page.get_by_role("heading", name="Roll back three-steps?")).to_be_visible()
    page.get_by_label("Why").fill("not today")
    shot(page, "24-confirm-rollback")
    page.get_by_role("button", name="Yes, roll back").click()
    expect(page.locator(".messagelist .success")).to_have_text("Roll back: done.")
    expect(page.locator("#release-state .state")).to_have_text("rolled_back")
    expect(page.locator("table.log tbody tr").first).to_contain_text("not today")
    expect(page.locator("table.log tbody tr").first).to_have_class("severity-warning")
    assert_styled(page)
    shot(page, "25-rolled-back")

    assert failed_responses == []
