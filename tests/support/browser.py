"""Browser fixtures for every test that drives a page: Debian's Chromium through Playwright.

Loaded as a plugin by tests/conftest.py, so the whole run shares ONE Playwright driver: a
second sync_playwright() in the same process fails ("Sync API inside the asyncio loop").
`browser` (session) launches /usr/bin/chromium once; `context` and `page` are fresh per test
(own cookies). When a test fails, a screenshot of each of its open pages is saved under
`test-artifacts/` (set E2E_ARTIFACTS to change the folder).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("PAYBRIDGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS", "test-artifacts"))
# How long an action, and an expect() assertion, waits for the page to get there. Playwright's
# expect() has its own default of 5 s, which a page that waits for a webhook or a redirect
# chain can take on a busy machine: both wait as long.
DEFAULT_TIMEOUT_MS = 15_000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures know whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def playwright_instance():
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=DEFAULT_TIMEOUT_MS)
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_instance):
    """Debian's Chromium (Playwright's own browser download cannot work offline)."""
    if not Path(CHROMIUM).exists():
        # A skip would hide a broken setup: the browser tests are part of the proof.
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    b = playwright_instance.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )
    yield b
    b.close()


@pytest.fixture
def make_context(browser, request):
    """Open more browser contexts (another user, a phone viewport); all closed after the test,
    each one's pages screenshotted if it failed."""
    opened = []

    def factory(**options):
        options.setdefault("viewport", {"width": 1280, "height": 900})
        options.setdefault("locale", "en-GB")
        ctx = browser.new_context(**options)
        ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
        opened.append(ctx)
        return ctx

    yield factory
    failed = any(
        getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
        for when in ("setup", "call")
    )
    for index, ctx in enumerate(opened):
        if failed:
            save_screenshots(ctx, request.node.nodeid + (f"-ctx{index}" if index else ""))
        ctx.close()


@pytest.fixture
def context(make_context):
    return make_context()


@pytest.fixture
def page(context):
    """A fresh tab in its own browser context (no cookies shared between tests)."""
    return context.new_page()


def save_screenshots(ctx, nodeid: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)[-150:]
    for index, open_page in enumerate(ctx.pages):
        suffix = f"-{index}" if index else ""
        try:
            open_page.screenshot(path=str(ARTIFACTS / f"{name}{suffix}.png"), full_page=True)
            (ARTIFACTS / f"{name}{suffix}.url.txt").write_text(open_page.url + "\n")
        except Exception as exc:  # a crashed page must not hide the test's own failure
            (ARTIFACTS / f"{name}{suffix}.error.txt").write_text(f"{exc!r}\n")
