"""Take the README's pictures of the web pages: docs/dashboard.png and docs/desk.png.

Run the demo first, then this script, both from the project's folder:

    make demo                                    # or .venv/bin/svarbot demo
    .venv/bin/python docs/screenshots.py --demo demo

The script reads the demo's configuration (`demo/config.yaml`) and opens its database. It adds
two users of its own with random passwords through `storage.users`: an operator for the
dashboard and a contact person for the desk, so each page shows what that role sees. It serves
the pages with `bot.web.serve.WebServer` on a free port on 127.0.0.1, as `svarbot web` does,
and starts headless Chromium (/usr/bin/chromium with /usr/bin/chromedriver, no download) in a
1280 x 900 window. It logs in through the login form and saves /dashboard and the desk: /desk
when it lists open questions, otherwise the first question found under the other tabs. A page
no taller than 1600 px is saved whole, a longer one as the first 900 px. The script then
removes its users again, also when something failed. It takes about ten seconds.

Exit status 0 when both pictures were saved, 1 when something failed (the reason on stderr).
`--out` chooses another folder for the pictures (default: this script's folder).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bot.config import ConfigError, Settings, load_settings
from bot.runner import survey_contexts
from bot.web.context import WebContext
from bot.web.serve import WebServer
from storage.answers import NoAnswerStore
from storage.db import StorageError, session_factory, transaction
from storage.migrate import open_database
from storage.schema import UserRole
from storage.users import UserError, add_user, find_user, remove_user, set_password

log = logging.getLogger("screenshots")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
LOOPBACK = "127.0.0.1"
WIDTH = 1280
HEIGHT = 900
#: A page up to this tall is saved whole; a taller one as its first HEIGHT pixels.
FULL_PAGE_LIMIT = 1600
ACTOR = "docs/screenshots.py"
#: The script's own users: an operator (the dashboard) and a contact person (the desk).
OPERATOR = "docs-operator"
CONTACT = "docs-kontakt"
WAIT = 15.0

T = TypeVar("T")


class ShotError(Exception):
    """A picture cannot be taken; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Login:
    name: str
    password: str


# --- the database and the script's users -----------------------------------------------------


def load_demo(folder: Path) -> Settings:
    """The demo's settings, after checking that its database is where the config says."""
    path = folder / "config.yaml"
    if not path.is_file():
        raise ShotError(f"{path} not found: run `make demo` (or `svarbot demo`) first")
    try:
        settings = load_settings(str(path))
    except ConfigError as exc:
        raise ShotError(f"{path}: {exc}") from exc
    url = make_url(settings.database.url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        database = Path(url.database)
        if not database.is_file():
            raise ShotError(f"database {database} (from {path}) not found from {Path.cwd()}: "
                            "run this script from the folder `svarbot demo` was run in")
    return settings


def put_user(factory: sessionmaker[Session], name: str, role: UserRole) -> Login:
    """Add the user `name` with `role` and a fresh password, or give an existing one (left
    by an interrupted run) a fresh password."""
    password = secrets.token_urlsafe(18)
    with transaction(factory) as session:
        existing = find_user(session, name)
        if existing is None:
            add_user(session, name, role, password, actor=ACTOR)
        elif existing.role != role:
            raise ShotError(f"there is already a user {name!r} with role {existing.role}")
        else:
            set_password(session, name, password, actor=ACTOR)
    return Login(name, password)


@contextmanager
def own_users(factory: sessionmaker[Session]) -> Iterator[dict[UserRole, Login]]:
    """The script's operator and contact person for the block, removed afterwards."""
    made: list[str] = []
    try:
        logins = {}
        for name, role in ((OPERATOR, UserRole.OPERATOR), (CONTACT, UserRole.CONTACT)):
            logins[role] = put_user(factory, name, role)
            made.append(name)
        yield logins
    finally:
        for name in made:
            try:
                with transaction(factory) as session:
                    remove_user(session, name, actor=ACTOR)
            except (UserError, StorageError) as exc:
                log.warning("could not remove the user %s: %s", name, exc)


# --- the web server ---------------------------------------------------------------------------


async def serving(ctx: WebContext, job: Callable[[str], T]) -> T:
    """Serve `ctx` on a free loopback port and run `job(base_url)` in a thread meanwhile."""
    server = WebServer(ctx, host=LOOPBACK, port=0)
    stop = asyncio.Event()
    ready = asyncio.Event()
    serve = asyncio.create_task(server.run(stop, on_ready=lambda _: ready.set()), name="web")
    started = asyncio.create_task(ready.wait())
    await asyncio.wait({serve, started}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():
        started.cancel()
        await serve  # raises OSError when it could not listen
        raise ShotError("the web server stopped before it was ready")
    try:
        return await asyncio.to_thread(job, f"http://{LOOPBACK}:{server.port}")
    finally:
        stop.set()
        await serve


# --- the browser ------------------------------------------------------------------------------


def open_chromium(profile: Path) -> webdriver.Chrome:
    """Headless Chromium, offline apart from the pages opened, in a WIDTH x HEIGHT window."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise ShotError(f"{path} not found: install chromium and chromium-driver")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
    return driver


def _path(driver: webdriver.Chrome) -> str:
    return urlsplit(driver.current_url).path


def _settle(driver: webdriver.Chrome) -> None:
    """Wait until the page and its fonts are loaded, with nothing focused and at the top."""
    WebDriverWait(driver, WAIT).until(
        lambda d: d.execute_script("return document.readyState") == "complete")
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "document.fonts.ready.then(() => done(true));")
    driver.execute_script("if (document.activeElement) { document.activeElement.blur(); }"
                          "window.scrollTo(0, 0);")


def log_in(driver: webdriver.Chrome, base: str, login: Login, path: str) -> None:
    """Log in as `login` through the login form and land on `path`."""
    driver.delete_all_cookies()
    driver.get(f"{base}/login?next={quote(path)}")
    driver.find_element(By.ID, "name").send_keys(login.name)
    driver.find_element(By.ID, "password").send_keys(login.password)
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    try:
        WebDriverWait(driver, WAIT).until(lambda d: _path(d) == path)
    except TimeoutException as exc:
        raise ShotError(f"logging in as {login.name} ended on {driver.current_url}, "
                        f"not {path}") from exc
    if not driver.find_elements(By.CSS_SELECTOR, "form.logout"):
        raise ShotError(f"{driver.current_url}: not logged in as {login.name}")


def show(driver: webdriver.Chrome, url: str, expect: str) -> None:
    """Open `url` and check it is the page wanted (the CSS selector `expect` is on it)."""
    driver.get(url)
    _settle(driver)
    if not driver.find_elements(By.CSS_SELECTOR, expect):
        raise ShotError(f"{driver.current_url} ({driver.title!r}) has no {expect}: "
                        "an error page?")


def save_png(driver: webdriver.Chrome, target: Path) -> tuple[int, int]:
    """Save the page as a PNG at `target`; returns its width and height in pixels."""
    metrics: dict[str, Any] = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    width, height = int(size["width"]), int(size["height"])
    if width > WIDTH:
        log.warning("%s is %d px wide, wider than the %d px window",
                    driver.current_url, width, WIDTH)
    height = height if height <= FULL_PAGE_LIMIT else HEIGHT
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": height > HEIGHT, "fromSurface": True,
        "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(base64.b64decode(shot["data"]))
    return WIDTH, height


# --- the two pages ----------------------------------------------------------------------------


def desk_page(driver: webdriver.Chrome, base: str) -> str:
    """The desk with open questions; else the first question under the other tabs; else the
    empty desk (with a warning)."""
    show(driver, f"{base}/desk", "#queue")
    if driver.find_elements(By.CSS_SELECTOR, "#queue a[href^='/desk/']"):
        return "/desk, open questions listed"
    for status in ("answered", "closed"):
        show(driver, f"{base}/desk?status={status}", "#queue")
        links = driver.find_elements(By.CSS_SELECTOR, "#queue a[href^='/desk/']")
        if links:
            href = str(links[0].get_attribute("href"))
            show(driver, href, "blockquote.question")
            return f"{_path(driver)}, a question {status} (no open questions)"
    show(driver, f"{base}/desk", "#queue")
    log.warning("the demo's desk has no questions at all: desk.png shows an empty desk")
    return "/desk, empty"


def take(base: str, logins: dict[UserRole, Login], out: Path) -> None:
    """Log in as each of the script's users and save their page."""
    with tempfile.TemporaryDirectory(prefix="svarbot-shots-") as profile:
        driver = open_chromium(Path(profile))
        try:
            log_in(driver, base, logins[UserRole.OPERATOR], "/dashboard")
            show(driver, f"{base}/dashboard", "main table")
            width, height = save_png(driver, out / "dashboard.png")
            log.info("saved %s (%d x %d, /dashboard)", out / "dashboard.png", width, height)

            log_in(driver, base, logins[UserRole.CONTACT], "/desk")
            shown = desk_page(driver, base)
            width, height = save_png(driver, out / "desk.png")
            log.info("saved %s (%d x %d, %s)", out / "desk.png", width, height, shown)
        finally:
            driver.quit()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--demo", default="demo", type=Path,
                        help="the folder `svarbot demo` wrote (default: demo)")
    parser.add_argument("--out", default=Path(__file__).resolve().parent, type=Path,
                        help="folder for dashboard.png and desk.png (default: docs/)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for quiet in ("alembic", "bot", "storage"):
        logging.getLogger(quiet).setLevel(logging.WARNING)
    began = time.monotonic()
    try:
        settings = load_demo(args.demo)
        engine = open_database(settings.database.url)
        try:
            factory = session_factory(engine)
            ctx = WebContext(settings=settings, factory=factory,
                             surveys=survey_contexts(settings), store=NoAnswerStore())
            with own_users(factory) as logins:
                asyncio.run(serving(ctx, lambda base: take(base, logins, args.out)))
        finally:
            engine.dispose()
    except (ShotError, UserError, StorageError, OSError, WebDriverException) as exc:
        lines = str(exc).strip().splitlines()
        raise SystemExit(f"screenshots: {lines[0] if lines else type(exc).__name__}") from None
    log.info("done in %.1f s", time.monotonic() - began)


if __name__ == "__main__":
    main()
