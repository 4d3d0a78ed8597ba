"""Headless Chromium for the browser tests: start it, check a page with axe-core, walk the
keyboard focus order, read dialogs, take screenshots.

Plain functions rather than fixtures so any test module (or a one-off script) can use them with
its own scoping. Everything is local on purpose: the Debian browser and driver at fixed paths
(`.ci/run` installs them), `Service(executable_path=...)` so Selenium Manager never runs and never
downloads a driver, and axe-core read from `tests/vendor/axe-core/` (see its SOURCE.md) instead of
a CDN. A missing browser fails the test with a message saying what to install: skipping would let
CI go green without ever having looked at a page.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

AXE_JS = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
# WCAG 2.0 and 2.1, levels A and AA: the level the project's pages promise. Best-practice rules
# are left out so a failure always points at a WCAG success criterion.
AXE_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")

T = TypeVar("T")

_MISSING = "install chromium and chromium-driver (.ci/run does)"


def _require_executable(path: str, what: str) -> None:
    """Fail (never skip) the calling test when a browser binary is absent."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{what} not found at {path}: {_MISSING}", pytrace=False)


def open_browser(profile_dir: Path, *, width: int = 1280, height: int = 900) -> webdriver.Chrome:
    """Start headless Chromium with its own profile in `profile_dir`.

    The flags keep the browser quiet and offline apart from the pages a test opens: no first-run
    UI, no background, component-update or sync traffic, no QUIC. `--no-sandbox` because CI runs
    as root in a container; `--disable-dev-shm-usage` because container /dev/shm is tiny. Open
    dialogs are left alone ("ignore") so `alert_text` can see them instead of WebDriver silently
    dismissing them on the next command.
    """
    _require_executable(CHROMIUM, "Chromium")
    _require_executable(CHROMEDRIVER, "ChromeDriver")
    # Belt and braces: even if some code path reached Selenium Manager it must not download.
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(arg)
    options.unhandled_prompt_behavior = "ignore"
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_script_timeout(30)
    driver.set_page_load_timeout(30)
    return driver


@contextmanager
def browser_session(profile_dir: Path, *, width: int = 1280,
                    height: int = 900) -> Iterator[webdriver.Chrome]:
    """`open_browser`, quitting the browser however the block ends so no Chromium outlives it."""
    driver = open_browser(profile_dir, width=width, height=height)
    try:
        yield driver
    finally:
        driver.quit()


@cache
def _axe_source() -> str:
    """The vendored axe-core, read once per test run (it is ~650 kB)."""
    return AXE_JS.read_text(encoding="utf-8")


_AXE_RUN = """
const done = arguments[arguments.length - 1];
const context = arguments[1] === null ? document : arguments[1];
axe.run(context, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']}).then(
    (results) => done({violations: results.violations}),
    (error) => done({error: String(error && error.stack || error)}));
"""


def axe_violations(driver: WebDriver, *, context: str | None = None) -> list[dict[str, Any]]:
    """Run axe-core's WCAG 2.0/2.1 A+AA rules on the current page and return the violations.

    `context` is a CSS selector to check only part of the page (default: the whole document).
    axe is injected through WebDriver rather than a <script> tag: the pages send
    `script-src 'self'`, which forbids inline and foreign scripts but does not apply to code
    the driver evaluates over DevTools (`tests/test_browser_harness.py` checks both halves).
    It is injected only when the page does not have it yet, so repeated runs on one page stay
    cheap, and asked for violations only (`resultTypes`), which spares it listing every
    element that passed: about a third of a run's time.
    """
    if not driver.execute_script("return typeof window.axe === 'object';"):
        driver.execute_script(_axe_source())
    outcome = driver.execute_async_script(_AXE_RUN, list(AXE_TAGS), context)
    if not isinstance(outcome, dict) or "error" in outcome:
        raise AssertionError(f"axe.run failed on {driver.current_url}: {outcome!r}")
    violations: list[dict[str, Any]] = outcome["violations"]
    return violations


def _truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_violations(violations: list[dict[str, Any]], *, max_nodes: int = 5) -> str:
    """Readable text for an assertion message: rule, impact, help, and the offending elements."""
    if not violations:
        return "no accessibility violations"
    lines = [f"{len(violations)} accessibility violation(s):"]
    for violation in violations:
        lines.append(f"- {violation.get('id')} ({violation.get('impact')}): "
                     f"{violation.get('help')} <{violation.get('helpUrl')}>")
        nodes = violation.get("nodes", [])
        for node in nodes[:max_nodes]:
            target = " ".join(str(part) for part in node.get("target", []))
            lines.append(f"    at {target}: {_truncate(str(node.get('html', '')), 120)}")
            summary = node.get("failureSummary")
            if summary:
                lines.append(f"      {_truncate(str(summary), 200)}")
        if len(nodes) > max_nodes:
            lines.append(f"    … and {len(nodes) - max_nodes} more element(s)")
    return "\n".join(lines)


def alert_text(driver: WebDriver, *, timeout: float = 0.0) -> str | None:
    """The text of an open alert/confirm/prompt, or None when there is none.

    A page that opens a dialog unasked is usually a bug (or an injected script), so tests ask.
    The dialog is dismissed after reading: `open_browser` makes WebDriver leave dialogs open,
    and one left open would make every later command fail. With a `timeout`, waits that long
    for a dialog to appear (for ones opened by a timer or an event).
    """
    if timeout > 0:
        try:
            WebDriverWait(driver, timeout).until(expected_conditions.alert_is_present())
        except TimeoutException:
            return None
    try:
        dialog = driver.switch_to.alert
        text = dialog.text
        dialog.dismiss()
    except NoAlertPresentException:
        return None
    return text


_RESET_FOCUS = """
if (document.activeElement && document.activeElement !== document.body) {
    document.activeElement.blur();
}
window.getSelection().removeAllRanges();
window.scrollTo(0, 0);
// Make <body> the sequential-focus starting point, so the next TAB goes to the page's first
// focusable element whatever was clicked or focused before.
const body = document.body;
const had = body.hasAttribute('tabindex');
const old = body.getAttribute('tabindex');
body.setAttribute('tabindex', '-1');
body.focus({preventScroll: true});
if (had) { body.setAttribute('tabindex', old); } else { body.removeAttribute('tabindex'); }
window.__tabThroughFirst = null;
"""

_FOCUSED = """
const limit = arguments[0];
const e = document.activeElement;
if (!e || e === document.body || e === document.documentElement) {
    return {none: true};
}
if (window.__tabThroughFirst === null) { window.__tabThroughFirst = e; }
else if (e === window.__tabThroughFirst) { return {again: true}; }
let d = e.tagName.toLowerCase();
if (e.id) { d += '#' + e.id; }
if (e.getAttribute('name')) { d += '[name=' + e.getAttribute('name') + ']'; }
if (d.startsWith('input') && e.type) { d += '[type=' + e.type + ']'; }
let text = ('value' in e && typeof e.value === 'string' && e.tagName !== 'BUTTON' && e.value)
    || (e.innerText || '').trim() || e.getAttribute('aria-label') || e.getAttribute('title')
    || e.getAttribute('placeholder') || '';
text = text.replace(/\\s+/g, ' ');
if (text.length > limit) { text = text.slice(0, limit - 1) + '…'; }
if (text) { d += ' "' + text + '"'; }
return {desc: d};
"""


def tab_through(driver: WebDriver, limit: int = 80, *, text_limit: int = 40) -> list[str]:
    """Press TAB from the top of the page and describe each element that receives focus.

    This is the order a keyboard user meets the page in. The keys go through the Actions API
    to whatever element is focused, like a real key press (`send_keys_to_element` would click
    the element first). Stops when focus comes back to the first element, or after `limit`
    presses. Descriptions look like `input#email[type=email] "kari@example.org"`. When focus
    leaves the document (after the last element) the press is not recorded.
    """
    driver.execute_script(_RESET_FOCUS)
    seen: list[str] = []
    misses = 0
    for _ in range(limit):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        focused = driver.execute_script(_FOCUSED, text_limit)
        if focused.get("again"):
            break
        if focused.get("none"):
            misses += 1
            # Two presses without any focusable element: the page has none (or a trap outside).
            if misses >= 2 and not seen:
                break
            continue
        misses = 0
        seen.append(str(focused["desc"]))
    return seen


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], T], timeout: float = 10.0,
             message: str = "") -> T:
    """Wait until `condition(driver)` is truthy and return its value.

    Pages that update after load (fetches, timers) must be waited for, never slept for. On
    timeout the test fails with what it waited for (`message`), how long, and on which URL,
    instead of a bare TimeoutException.
    """
    try:
        return WebDriverWait(driver, timeout).until(condition, message)
    except TimeoutException:
        pytest.fail(f"waited {timeout:g} s for {message or 'a condition'} on {driver.current_url}",
                    pytrace=False)


def screenshot(driver: webdriver.Chrome, path: Path, *, full_page: bool = True) -> Path:
    """Save a PNG of the page at `path` (for a failing test's artefacts, or a visual check).

    `full_page` captures the whole document, not just the window, through DevTools'
    Page.captureScreenshot with captureBeyondViewport; the window size is left unchanged.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not full_page:
        path.write_bytes(driver.get_screenshot_as_png())
        return path
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png",
        "captureBeyondViewport": True,
        "fromSurface": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
    })
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
