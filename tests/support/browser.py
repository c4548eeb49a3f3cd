"""Browser fixtures for every test that drives a page: Debian's Chromium through Playwright.

Loaded as a plugin by tests/conftest.py, so the whole run shares ONE Playwright driver: a
second sync_playwright() in the same process fails ("Sync API inside the asyncio loop").
`browser` (session) launches /usr/bin/chromium once; `context` and `page` are fresh per test
(own cookies). When a test fails, a screenshot of each of its open pages is saved under
`test-artifacts/` (set E2E_ARTIFACTS to change the folder), beside the screenshots the page
tests take of what they build (`shot`, `shoot`: at a laptop's and a phone's width). At the end
of the run `test-artifacts/index.html` shows them all on one page, and the summary says where.
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
# The widths every page is looked at: a laptop, a phone (an iPhone 14).
WIDTHS = (1280, 390)


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


def shot(page, name: str, width: int) -> None:
    """The page as it is now (viewport `width`), whole, kept as `{name}-{width}.png`; nothing
    may be wider than the screen (tables fit or scroll in their own box)."""
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert fits, f"{name} at {width} px is wider than the screen"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)


def shoot(page, name: str) -> None:
    """`shot` of the page at each of WIDTHS, then back to the first."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        shot(page, name, width)
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def within_screen(page, *locators) -> None:
    """Each of `locators` (its first match) ends inside the screen's width: read without
    scrolling sideways, in the page or in a table's own box."""
    width = page.viewport_size["width"]
    for locator in locators:
        locator = locator.first
        locator.scroll_into_view_if_needed()
        box = locator.bounding_box()
        assert box is not None, f"{locator} is not shown"
        right = box["x"] + box["width"]
        assert right <= width, f"{locator} ends at {right:.0f} px, past the screen's {width} px"


def nav_link(page, name: str):
    """The dashboard navigation's link `name`; on a phone, where the links fold into a menu,
    the menu is opened first, as a person would."""
    page.wait_for_load_state()  # its stylesheet decides whether the menu is folded
    menu = page.locator("details.dash-menu")
    if menu.locator("summary").is_visible() and menu.get_attribute("open") is None:
        menu.locator("summary").click()
    nav = page.get_by_role("navigation", name="Dashboard")
    return nav.get_by_role("link", name=name, exact=True)


def pytest_terminal_summary(terminalreporter) -> None:
    """Index the screenshots of this run (and of failures) on one page, and say where."""
    pictures = sorted(ARTIFACTS.glob("*.png")) if ARTIFACTS.is_dir() else []
    if not pictures:
        return
    figures = "\n".join(
        f'<figure><a href="{p.name}"><img src="{p.name}" loading="lazy" alt="{p.stem}"></a>'
        f"<figcaption>{p.stem}</figcaption></figure>"
        for p in pictures
    )
    (ARTIFACTS / "index.html").write_text(
        "<!doctype html><meta charset=utf-8><title>PayBridge test screenshots</title>"
        "<style>body{font-family:sans-serif}figure{display:inline-block;vertical-align:top;"
        "margin:.5rem;width:320px}img{max-width:100%;border:1px solid #ccc}</style>\n"
        f"{figures}\n"
    )
    terminalreporter.write_line(
        f"{len(pictures)} screenshots kept in {ARTIFACTS.resolve()} (index.html shows them all)"
    )
