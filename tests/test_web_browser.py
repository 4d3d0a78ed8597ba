"""The web app in headless Chromium, driven the way people use it: logging in through the
form, every page of every role checked with axe-core (WCAG 2.1 AA) at a laptop's and a
phone's width, the desk answered with the keyboard alone, respondents' markup left inert,
a dead message replayed and delivered, and logging out.

The same pages over plain HTTP are `test_web.py`; the browser helpers are `browser.py`.
One database, one server, one SMTP sink and one browser serve the whole module (starting
Chromium costs more than any check here), so the tests that change the database (the desk's
answer, the replay) only ever add to it and the others do not depend on what they add.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from browser import (
    alert_text,
    axe_violations,
    browser_session,
    describe_violations,
    tab_through,
    wait_for,
)
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from smtp_servers import SmtpSink
from sqlalchemy import select
from web_support import (
    HOSTILE_NAME,
    PASSWORDS,
    QUESTION,
    ROLES,
    WebRun,
    World,
    context,
    web_world,
)

from bot.channels.email.compose import OutgoingMail
from bot.channels.email.smtp import Sender
from bot.config import WebSettings
from storage.schema import AuditEvent, DeskQuery, OutboxMessage, OutboxStatus, QueryStatus

#: What each role can open: every page of the menu and each kind of page linked from them
#: (a question, a respondent), in each state worth seeing (an empty list, a search form
#: before and after searching). Error pages are checked too: a contact person meets "no
#: access", everyone can mistype an address.
DESK_PAGES = ("/desk", "/desk?status=answered", "/desk/1", "/desk/canned")
OPERATOR_PAGES = ("/dashboard", "/log", "/attention", "/outbox", "/quarantine", "/health",
                  "/respondent/1", "/find", "/find?q=leder")
PAGES = {
    "kari": (*DESK_PAGES, "/dashboard", "/no-such-page"),
    "ola": (*DESK_PAGES, *OPERATOR_PAGES, "/audit", "/no-such-page"),
    "admin": (*DESK_PAGES, *OPERATOR_PAGES, "/audit", "/no-such-page"),
}
#: Pages a role is refused (it sees the error page in their place).
REFUSED = {("kari", "/dashboard"), ("ola", "/audit")}
#: The phone checks: the pages someone on the move opens, at an iPhone 12-14's viewport.
PHONE = (390, 844)
PHONE_PAGES = {"kari": ("/desk", "/desk/1", "/desk/canned"),
               "ola": ("/dashboard", "/outbox", "/log", "/respondent/1", "/quarantine")}


@pytest.fixture(scope="module")
def mail_sink() -> Iterator[SmtpSink]:
    """Where the world's outbox delivers, so a replayed message can be seen to arrive."""
    with SmtpSink() as server:
        yield server


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mail_sink: SmtpSink) -> World:
    return web_world(tmp_path_factory.mktemp("world"), smtp_port=mail_sink.port)


@pytest.fixture(scope="module")
def run(world: World) -> Iterator[WebRun]:
    with WebRun(context(world)) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with browser_session(tmp_path_factory.mktemp("chromium")) as session:
        yield session


@pytest.fixture
def driver(browser: webdriver.Chrome) -> Iterator[webdriver.Chrome]:
    """The module's browser, logged out: cookies of every site cleared before the test, and
    afterwards any dialog it left open dismissed and the viewport given back."""
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    yield browser
    alert_text(browser)
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


# --- helpers ------------------------------------------------------------------------------


def path_of(driver: webdriver.Chrome) -> str:
    return urlsplit(driver.current_url).path


def query_of(driver: webdriver.Chrome) -> dict[str, list[str]]:
    return parse_qs(urlsplit(driver.current_url).query)


def home_of(name: str) -> str:
    return "/desk" if ROLES[name] == "contact" else "/dashboard"


def log_in(driver: webdriver.Chrome, run: WebRun, name: str) -> None:
    """Type the name and password into the login form and submit it, as a person would."""
    driver.get(f"{run.base}/login")
    field = driver.find_element(By.ID, "name")
    assert driver.switch_to.active_element == field, "the login form should have focus"
    field.send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[name])
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    wait_for(driver, lambda d: path_of(d) == home_of(name), message=f"{name}'s home page")
    assert driver.find_element(By.CSS_SELECTOR, "form.logout strong").text == name


def press(driver: webdriver.Chrome, *keys: str) -> None:
    """Key presses sent to whatever has focus (no click first, unlike send_keys on an
    element)."""
    ActionChains(driver).send_keys(*keys).perform()


_FOCUS = """
const e = document.activeElement;
if (!e || e === document.body) { return null; }
const s = getComputedStyle(e);
const r = e.getBoundingClientRect();
return {
  tag: e.tagName.toLowerCase(), id: e.id, href: e.getAttribute('href') || '',
  type: e.getAttribute('type') || '', text: (e.innerText || e.value || '').trim().slice(0, 60),
  ring: (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none',
  onscreen: r.width > 0 && r.height > 0 && r.right > 0 && r.bottom > 0
            && r.left < innerWidth && r.top < innerHeight,
};
"""


def focused(driver: webdriver.Chrome) -> dict[str, str | bool]:
    """The focused element: what it is, whether a focus ring is drawn around it (an outline
    or a box shadow, as computed) and whether it is on screen (a focus ring off screen is
    not visible either)."""
    found = driver.execute_script(_FOCUS)
    assert found is not None, f"nothing has focus on {driver.current_url}"
    return dict(found)


def tab_until(driver: webdriver.Chrome, wanted: str,
              limit: int = 40) -> list[dict[str, str | bool]]:
    """Press TAB until the element matching CSS selector `wanted` has focus, and return the
    elements passed on the way; each of them must show a focus ring on screen while it has
    focus (WCAG 2.4.7), or a keyboard user would not know where they are."""
    passed = []
    for _ in range(limit):
        press(driver, Keys.TAB)
        if driver.execute_script("return document.activeElement.matches(arguments[0]);",
                                 wanted):
            return passed
        if driver.execute_script("return document.activeElement !== document.body;"):
            assert_focus_visible(driver, f"a control on the way to {wanted}")
            passed.append(focused(driver))
    names = [f"{stop['tag']} {stop['text']}" for stop in passed]
    pytest.fail(f"{limit} TABs never reached {wanted} on {driver.current_url}; passed {names}",
                pytrace=False)


def first_of(stops: list[str], prefix: str) -> int:
    """Where in `tab_through`'s stops the first one starting with `prefix` is (past the end
    when none is)."""
    return next((i for i, stop in enumerate(stops) if stop.startswith(prefix)), len(stops))


def assert_focus_visible(driver: webdriver.Chrome, what: str) -> None:
    now = focused(driver)
    assert now["ring"], f"{what} has focus but no visible focus indicator: {now}"
    assert now["onscreen"], f"{what} has focus off screen: {now}"


# --- accessibility ------------------------------------------------------------------------


def test_the_login_page_passes_axe_and_so_does_its_error(driver: webdriver.Chrome,
                                                         run: WebRun) -> None:
    driver.get(f"{run.base}/login")
    violations = axe_violations(driver)
    assert violations == [], describe_violations(violations)
    driver.find_element(By.ID, "name").send_keys("nobody")
    driver.find_element(By.ID, "password").send_keys("wrong" + Keys.ENTER)
    error = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[role=alert]"),
                     message="the wrong-password message")
    assert "Feil brukernavn eller passord" in error[0].text
    violations = axe_violations(driver)
    assert violations == [], describe_violations(violations)


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_a_role_sees_passes_axe(driver: webdriver.Chrome, run: WebRun,
                                           name: str) -> None:
    log_in(driver, run, name)
    found: dict[str, str] = {}
    for page in PAGES[name]:
        driver.get(run.base + page)
        # Really that page (not the login form after a lost session), and a complete one.
        assert path_of(driver) == urlsplit(page).path, (page, driver.current_url)
        assert driver.find_element(By.TAG_NAME, "h1").text
        if (name, page) in REFUSED:
            assert "ikke tilgang" in driver.find_element(By.TAG_NAME, "h1").text, page
        violations = axe_violations(driver)
        if violations:
            found[page] = describe_violations(violations)
    assert found == {}, "\n".join(f"{page}: {text}" for page, text in found.items())


@pytest.mark.parametrize("name", list(PHONE_PAGES))
def test_pages_on_a_phone_pass_axe_and_do_not_scroll_sideways(driver: webdriver.Chrome,
                                                              run: WebRun, name: str) -> None:
    log_in(driver, run, name)
    width, height = PHONE
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 3, "mobile": True})
    found: dict[str, str] = {}
    for page in PHONE_PAGES[name]:
        driver.get(run.base + page)
        assert path_of(driver) == page
        assert driver.execute_script("return window.innerWidth;") == width
        # WCAG 1.4.10 (reflow): the page itself fits the width; only a wide table may scroll,
        # inside its own (keyboard-focusable) box.
        page_width = driver.execute_script("return document.documentElement.scrollWidth;")
        if page_width > width:
            found[page] = f"the page is {page_width} px wide on a {width} px screen"
        violations = axe_violations(driver)
        if violations:
            found[page] = "\n".join(filter(None, (found.get(page), describe_violations(
                violations))))
    assert found == {}, "\n".join(f"{page}: {text}" for page, text in found.items())


# --- the keyboard -------------------------------------------------------------------------


def test_the_desk_is_answered_with_the_keyboard_alone(driver: webdriver.Chrome, run: WebRun,
                                                      world: World) -> None:
    log_in(driver, run, "kari")
    driver.get(f"{run.base}/desk")
    # The order a keyboard user meets the desk in: past the menu to the queue, the question
    # itself reachable (its row's links), the download last.
    stops = tab_through(driver)
    assert stops[0] == 'a "Gå til innholdet"', stops
    assert (first_of(stops, 'button "Logg ut"') < first_of(stops, 'a "Åpne"')
            < first_of(stops, 'a "Leder Nummer0"') < first_of(stops, 'a "Last ned som CSV"')
            < len(stops)), stops

    driver.get(f"{run.base}/desk/1")
    order = tab_through(driver)
    assert (first_of(order, "textarea#answer") < first_of(order, 'button "Send svaret"')
            < first_of(order, 'button "Lukk uten svar"') < len(order)), order

    # Now the whole errand by keyboard. The skip link comes first, shows itself when focused
    # and takes focus past the menu into <main>.
    driver.get(f"{run.base}/desk")
    press(driver, Keys.TAB)
    assert focused(driver)["text"] == "Gå til innholdet"
    assert_focus_visible(driver, "the skip link")
    press(driver, Keys.ENTER)
    assert focused(driver)["id"] == "main"
    # On to the first question in the queue (`tab_until` checks each stop's focus ring).
    passed = tab_until(driver, 'a[href="/desk/1"]')
    assert passed, "the skip link should land before the queue's own controls"
    assert passed[0]["text"] == "Åpne", passed[0]  # the menu was skipped
    assert_focus_visible(driver, "the link to the question")
    press(driver, Keys.ENTER)
    wait_for(driver, lambda d: path_of(d) == "/desk/1", message="the question's page")
    tab_until(driver, "textarea#answer")
    assert_focus_visible(driver, "the answer field")
    # ENTER in the field is a new line, not a submit.
    press(driver, "Hei! Rådmannen vet dette.", Keys.ENTER, "Ring 400 00 000.")
    assert path_of(driver) == "/desk/1"
    assert not query_of(driver)
    press(driver, Keys.TAB)
    now = focused(driver)
    assert (now["tag"], now["text"]) == ("button", "Send svaret"), now
    assert_focus_visible(driver, "the send button")
    press(driver, Keys.ENTER)
    wait_for(driver, lambda d: query_of(d).get("sent") == ["1"], message="the answer sent")
    notice = driver.find_element(By.CSS_SELECTOR, "[role=status]")
    assert "Svaret er sendt" in notice.text

    with world.factory() as session:
        query = session.get_one(DeskQuery, 1)
        replies = session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "desk_reply", OutboxMessage.invitation_id == 1)).all()
    assert query.status == QueryStatus.ANSWERED
    assert query.answered_by == "kari"
    # The browser sent the line break as CRLF (HTML form submission); stored as a newline.
    assert query.answer == "Hei! Rådmannen vet dette.\nRing 400 00 000."
    assert len(replies) == 1
    assert replies[0].status == OutboxStatus.QUEUED
    assert replies[0].recipient == "leder0@kommune0.example"
    mail = OutgoingMail.from_payload(replies[0].payload or {})
    assert "Ring 400 00 000." in mail.prompts[0]


def test_a_live_page_keeps_the_keyboard_focus_when_it_refreshes(
        driver: webdriver.Chrome, world: World) -> None:
    """The desk refreshes itself; someone tabbing through it must not be thrown back to the
    top of the page each time it does."""
    with WebRun(context(world, web=WebSettings(refresh_seconds=2))) as fast:
        log_in(driver, fast, "kari")
        link = driver.find_element(By.CSS_SELECTOR, "#main table a[href^='/desk/']")
        href = link.get_dom_attribute("href")
        tab_until(driver, f"a[href='{href}']")
        driver.execute_script("document.querySelector('#main h1').dataset.before = '1';")
        wait_for(driver, lambda d: d.execute_script(
            "return !document.querySelector('#main h1').dataset.before;"), timeout=10,
            message="the desk to refresh itself")
        after = focused(driver)
        assert after["href"] == href, after
        assert_focus_visible(driver, "the link after the refresh")


# --- hostile text -------------------------------------------------------------------------


def test_markup_from_respondents_shows_as_text_and_never_runs(driver: webdriver.Chrome,
                                                              run: WebRun) -> None:
    log_in(driver, run, "admin")
    # The queue, a question (the second respondent's: both texts), the respondent, a search.
    shown = {"/desk": (QUESTION, HOSTILE_NAME), "/desk/2": (QUESTION, HOSTILE_NAME),
             "/respondent/2": (HOSTILE_NAME,), "/find?q=Per": (HOSTILE_NAME,)}
    for page, texts in shown.items():
        driver.get(run.base + page)
        assert alert_text(driver, timeout=1) is None, page
        main = driver.find_element(By.ID, "main").text
        for text in texts:
            assert text in main, (page, text)
        assert driver.find_elements(By.CSS_SELECTOR, "img") == [], page
        scripts = driver.execute_script(
            "return Array.from(document.scripts, (s) => s.getAttribute('src'));")
        assert scripts == ["/static/refresh.js"], (page, scripts)


# --- the operator -------------------------------------------------------------------------


def test_an_operator_replays_a_dead_message_and_it_is_delivered(
        driver: webdriver.Chrome, run: WebRun, world: World, mail_sink: SmtpSink) -> None:
    with world.factory() as session:
        dead = session.scalars(select(OutboxMessage).where(
            OutboxMessage.status == OutboxStatus.DEAD)).one()
    log_in(driver, run, "ola")
    driver.get(f"{run.base}/outbox")
    table = driver.find_element(By.ID, "dead")
    assert "mailbox full for a week" in table.text
    button = driver.find_element(
        By.XPATH, f"//form[@action='/outbox/replay'][input[@name='id'][@value='{dead.id}']]"
                  "//button")
    assert button.text == f"Send på nytt nr. {dead.id}"
    button.click()
    wait_for(driver, lambda d: query_of(d).get("replayed") == ["1"], message="the replay")
    assert path_of(driver) == "/outbox"
    assert "(1)" in driver.find_element(By.CSS_SELECTOR, "[role=status]").text
    assert "mailbox full for a week" not in driver.find_element(By.ID, "dead").text

    with world.factory() as session:
        row = session.get_one(OutboxMessage, dead.id)
        audit = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "outbox replayed")).all()
    assert row.status == OutboxStatus.QUEUED
    assert [(a.actor, a.target) for a in audit] == [("ola", f"outbox {dead.id}")]

    before = mail_sink.count
    sender = Sender(session_factory=world.factory, settings=world.settings, worker="browser")

    async def one_round() -> int:
        try:
            return await sender.send_batch()
        finally:
            await sender.close()

    assert asyncio.run(one_round()) >= 1
    received = mail_sink.wait_for(before + 1)
    assert any(m.rcpt_tos == (dead.recipient,) for m in received[before:]), received[before:]
    with world.factory() as session:
        assert session.get_one(OutboxMessage, dead.id).status == OutboxStatus.SENT


# --- logging out --------------------------------------------------------------------------


def test_logging_out_ends_the_session(driver: webdriver.Chrome, run: WebRun) -> None:
    log_in(driver, run, "kari")
    cookie = driver.get_cookie("svarbot_session")
    assert cookie is not None
    driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
    wait_for(driver, lambda d: path_of(d) == "/login", message="the login page")
    # The browser's Back button asks for the desk again (it is never cached), and is sent
    # to the login page with the desk as where to go after it.
    driver.back()
    assert path_of(driver) == "/login"
    assert query_of(driver).get("next") == ["/desk"]
    driver.get(f"{run.base}/desk")
    assert path_of(driver) == "/login"
    assert query_of(driver).get("next") == ["/desk"]
    assert driver.find_element(By.ID, "password").get_attribute("value") == ""
    # The old cookie opens nothing either: the session is gone on the server, not only in
    # this browser.
    with httpx.Client(base_url=run.base, follow_redirects=False) as thief:
        thief.cookies.set("svarbot_session", str(cookie["value"]))
        refused = thief.get("/desk")
    assert refused.status_code == 303
    assert refused.headers["location"].startswith("/login")

