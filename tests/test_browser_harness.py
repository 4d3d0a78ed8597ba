"""The browser harness itself (tests/browser.py) against pages whose faults are known.

A tiny HTTP server on a free loopback port serves fixed pages with the same kind of
Content-Security-Policy the application sends, so these tests show that axe-core, injected
through WebDriver, runs under that policy, finds what it should and stays quiet on a clean page;
that keyboard navigation and dialog detection see what a person would; and that a missing
browser fails rather than skips.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from browser import (
    alert_text,
    axe_violations,
    browser_session,
    describe_violations,
    open_browser,
    screenshot,
    tab_through,
    wait_for,
)
from selenium import webdriver
from selenium.webdriver.common.by import By

CSP = "default-src 'self'; script-src 'self'; frame-ancestors 'none'"

GOOD = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Good page</title></head>
<body>
<main>
<h1>Tell us what you think</h1>
<form action="/good" method="get">
  <label for="name">Your name</label>
  <input id="name" name="name" type="text" value="Kari">
  <button type="submit">Send</button>
</form>
</main>
<footer><a href="/good#privacy">Privacy</a></footer>
</body>
</html>
"""

BAD = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Bad page</title></head>
<body>
<main>
<h1>Missing alternatives</h1>
<img src="/pixel.gif">
<form action="/bad" method="get"><input id="unlabelled" name="q" type="text"></form>
</main>
</body>
</html>
"""

ALERT = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Alert page</title><script src="/alert.js"></script></head>
<body><h1>An external, same-origin script opens a dialog</h1></body>
</html>
"""

# The same dialog from an inline script, which the CSP must block: proof that the policy is in
# force, so a clean axe run under it means WebDriver's injection really is exempt.
INLINE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Inline page</title></head>
<body><h1>Inline script</h1><script>alert('inline ran');</script></body>
</html>
"""

# A 1x1 transparent GIF, so the bad page's image loads and only its missing alt is wrong.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)

PAGES: dict[str, tuple[str, bytes]] = {
    "/good": ("text/html; charset=utf-8", GOOD.encode()),
    "/bad": ("text/html; charset=utf-8", BAD.encode()),
    "/alert": ("text/html; charset=utf-8", ALERT.encode()),
    "/alert.js": ("text/javascript; charset=utf-8", b"alert('x');\n"),
    "/inline": ("text/html; charset=utf-8", INLINE.encode()),
    "/pixel.gif": ("image/gif", PIXEL),
}


class _Pages(BaseHTTPRequestHandler):
    """Serves `PAGES` by path (ignoring the query), each with the CSP header; 404 otherwise."""

    def do_GET(self) -> None:
        page = PAGES.get(self.path.split("?", 1)[0])
        if page is None:
            self.send_error(404)
            return
        content_type, body = page
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a test's output is for its failures."""


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The base URL of the page server, stopped after the module's tests."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, name="harness-pages", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def shared_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """One browser for the module: starting Chromium costs far more than any check here."""
    with browser_session(tmp_path_factory.mktemp("browser")) as session:
        yield session


@pytest.fixture
def driver(shared_browser: webdriver.Chrome) -> Iterator[webdriver.Chrome]:
    """The shared browser, with any dialog a test left open dismissed afterwards: dialogs are
    left open on purpose (see `open_browser`), and one would block every later test's commands."""
    yield shared_browser
    alert_text(shared_browser)


def test_axe_finds_nothing_on_a_clean_page_under_csp(driver: webdriver.Chrome, site: str) -> None:
    driver.get(f"{site}/good")
    assert driver.title == "Good page"
    violations = axe_violations(driver)
    assert violations == [], describe_violations(violations)
    # axe really ran in this page, injected despite `script-src 'self'`.
    assert driver.execute_script("return typeof axe.version;") == "string"


def test_axe_finds_missing_alt_and_label(driver: webdriver.Chrome, site: str) -> None:
    driver.get(f"{site}/bad")
    violations = axe_violations(driver)
    found = {v["id"]: v for v in violations}
    assert {"image-alt", "label"} <= found.keys(), describe_violations(violations)
    assert found["image-alt"]["nodes"][0]["target"] == ["img"]
    assert found["label"]["nodes"][0]["target"] == ["#unlabelled"]
    message = describe_violations(violations)
    assert "image-alt" in message
    assert "#unlabelled" in message


def test_axe_context_limits_the_check(driver: webdriver.Chrome, site: str) -> None:
    driver.get(f"{site}/bad")
    ids = {v["id"] for v in axe_violations(driver, context="form")}
    assert "label" in ids
    assert "image-alt" not in ids


def test_tab_reaches_the_input_then_the_button(driver: webdriver.Chrome, site: str) -> None:
    driver.get(f"{site}/good")
    # Focus somewhere in the middle first: the walk must still start at the top of the page.
    driver.execute_script("document.querySelector('button').focus();")
    stops = tab_through(driver)
    assert stops == [
        'input#name[name=name][type=text] "Kari"',
        'button "Send"',
        'a "Privacy"',
    ], stops
    # The helper leaves the page as it found it (it borrows <body>'s tabindex to start).
    assert driver.find_elements(By.CSS_SELECTOR, "body[tabindex]") == []


def test_no_dialog_on_a_clean_page(driver: webdriver.Chrome, site: str) -> None:
    driver.get(f"{site}/good")
    assert alert_text(driver) is None


def test_dialog_from_a_same_origin_script_is_seen(driver: webdriver.Chrome, site: str) -> None:
    driver.get(f"{site}/alert")
    assert alert_text(driver, timeout=5) == "x"
    # Dismissed after reading: the session goes on.
    assert alert_text(driver) is None
    assert driver.title == "Alert page"


def test_csp_blocks_an_inline_script(driver: webdriver.Chrome, site: str) -> None:
    driver.get(f"{site}/inline")
    assert alert_text(driver, timeout=1) is None
    assert driver.title == "Inline page"


def test_execute_script_runs_while_the_csp_blocks_inline_code(
    driver: webdriver.Chrome, site: str
) -> None:
    driver.get(f"{site}/good")
    # WebDriver's own script runs (it answers), but an inline <script> it adds to the page is
    # still refused by the page's `script-src 'self'`: the policy is on, only the driver is exempt.
    outcome = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        document.addEventListener('securitypolicyviolation',
            (e) => done({ran: window.__inlineRan === true, blocked: e.effectiveDirective}));
        const s = document.createElement('script');
        s.textContent = 'window.__inlineRan = true;';
        document.body.appendChild(s);
        setTimeout(() => done({ran: window.__inlineRan === true, blocked: null}), 2000);
    """)
    assert outcome == {"ran": False, "blocked": "script-src-elem"}


def test_full_page_screenshot_is_taller_than_the_window(
    driver: webdriver.Chrome, site: str, tmp_path: Path
) -> None:
    driver.get(f"{site}/good")
    driver.execute_script("document.body.style.minHeight = '2500px';")
    window_height = driver.execute_script("return window.innerHeight;")
    png = screenshot(driver, tmp_path / "shots" / "good.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert height >= 2500 > window_height, (width, height, window_height)
    png = screenshot(driver, tmp_path / "viewport.png", full_page=False).read_bytes()
    assert struct.unpack(">II", png[16:24])[1] == window_height


def test_wait_for_fails_with_a_message(driver: webdriver.Chrome, site: str) -> None:
    driver.get(f"{site}/good")
    assert wait_for(driver, lambda d: d.find_element(By.ID, "name"), message="the name field")
    with pytest.raises(pytest.fail.Exception, match=r"waited 0\.2 s for a miracle on http://"):
        wait_for(driver, lambda d: False, timeout=0.2, message="a miracle")


def test_missing_browser_fails_not_skips(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("browser.CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(pytest.fail.Exception, match="install chromium and chromium-driver"):
        open_browser(tmp_path)


def test_a_browser_starts_and_quits(tmp_path: Path) -> None:
    started = time.perf_counter()
    with browser_session(tmp_path) as session:
        assert session.capabilities["browserName"] == "chrome"
        assert session.execute_script("return navigator.webdriver;") is True
    print(f"browser start and quit: {time.perf_counter() - started:.2f} s")
