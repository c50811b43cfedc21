"""Browser tests: the admin in headless Chromium, driven by Playwright.

Debian's chromium (`apt-get install chromium`; `.ci/run` installs it) is the
browser: Playwright never downloads one. Without /usr/bin/chromium the tests
skip. The live server runs in a thread of this process on the test database.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from django.core.management import call_command
from django.db import connections

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google's
# hosts, which this machine's closed network refuses.
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
DEMO_USER, DEMO_PASSWORD = "admin", "braid-demo"
T = TypeVar("T")

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no browser: Debian's chromium is not at {CHROMIUM} "
           "(`apt-get install chromium` as root; .ci/run does it)")


def off_loop(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run database work in a plain thread and return its result.

    Playwright's sync API keeps an asyncio loop running in the test's thread, and
    Django refuses ORM calls there (SynchronousOnlyOperation). The thread closes
    its connections so nothing holds the test database at teardown.
    """

    def call():
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


@pytest.fixture
def demo_server(live_server, settings):
    """The live server with `braid demo`'s data: the admin user and examples/*.json."""
    settings.DEBUG = True  # demo runs on a development machine only
    call_command("braid", "demo", stdout=io.StringIO())
    return live_server


@pytest.fixture
def failed_responses() -> list[str]:
    """Every response of 400 or more the page received: a broken page, script or style."""
    return []


@pytest.fixture
def page(demo_server, failed_responses) -> Iterator:
    """A fresh Chromium page whose relative URLs go to the live server.

    Function-scoped on purpose: while Playwright runs, the ORM is off limits in
    this thread, and the database teardown (set up before this fixture, torn
    down after it) needs it back.
    """
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=LAUNCH_ARGS)
        context = browser.new_context(base_url=demo_server.url,
                                      viewport={"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        page = context.new_page()
        page.on("response", lambda r: r.status >= 400 and failed_responses.append(
            f"{r.status} {r.request.method} {r.url}"))
        try:
            yield page
        finally:
            context.close()
            browser.close()
