"""The sandbox page in headless Chromium: a person approves one escalation and overrides
another, as they would in Slack, and sees the decision on the card and in the CRM record.

Skipped without Chromium (Debian's ``chromium`` and ``chromium-driver``) unless
``LOOPGATE_REQUIRE_BROWSER=1`` (CI sets it, so a missing browser fails there). The screenshot
is saved to ``test-artifacts/sandbox.png``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import ids
from core.store.models import Decision
from loopgate.demo.live import LiveSandbox
from tests.conftest import ROOT
from tests.demo.escalations import is_reviewed, posted_escalations

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts"


def _browser_or_skip() -> Any:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("selenium")
    if missing:
        reason = f"no browser to drive: {', '.join(missing)} missing (apt-get install chromium chromium-driver)"
        if os.environ.get("LOOPGATE_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return webdriver


@pytest.fixture
def browser() -> Iterator[Any]:
    webdriver = _browser_or_skip()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,950"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveSandbox]:
    sandbox = LiveSandbox(tmp_path, port=0, leads=60, scheduler=False).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _wait(driver: Any, check: Any, timeout: float = 15) -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # the page re-renders a part when its data changes: look again rather than fail
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=ignored).until(lambda d: check(d))


def _click(driver: Any, css: str) -> None:
    """Click the element once it is there; if the page re-rendered it meanwhile (new messages
    arrive every moment here), find it again — a stale element was not clicked."""
    from selenium.webdriver.common.by import By

    _wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, css).click() or True)


def _card_text(driver: Any, ts: str) -> str:
    from selenium.webdriver.common.by import By

    cards = driver.find_elements(By.CSS_SELECTOR, f'div.message[data-ts="{ts}"]')
    return str(cards[0].text) if cards else ""


def _crm_row(driver: Any, crm_id: str) -> Any:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f'tr[data-crm-id="{crm_id}"]')
    return rows[0] if rows else None


def test_given_the_sandbox_page_when_a_person_approves_and_overrides_then_cards_and_crm_records_show_it(
    live: LiveSandbox, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    assert live.db is not None
    slack = live.sandbox.slack
    channel = "C0MMREVIEW"
    db = live.db

    def two_posted() -> list[Any]:  # one posted is truthy too: wait until both are there
        posted = posted_escalations(db, Decision.team == "mm")[:2]
        return posted if len(posted) == 2 else []

    (first, first_ts), (second, second_ts) = slack.wait_until(two_posted, timeout=20)
    posted = {first.pk: first_ts, second.pk: second_ts}
    reps = {r.id: r for r in live.sandbox.loaded.policy.reps}
    owner_name = reps[str(first.owner)].name

    browser.get(live.url)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'a.channel[data-id="{channel}"]'))
    _click(browser, f'a.channel[data-id="{channel}"]')
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'button[data-value="{first.pk}"]'))

    # Approve (acting as the RevOps admin, who may act on any escalation)
    _click(browser, f'button[data-action-id="{ids.APPROVE}"][data-value="{first.pk}"]')
    _wait(browser, lambda d: "Approved" in _card_text(d, posted[first.pk]))

    # Override: submitting without a reason shows the modal's error; with one it is recorded
    override = f'button[data-action-id="{ids.OVERRIDE}"][data-value="{second.pk}"]'
    _click(browser, override)
    _wait(browser, lambda d: d.find_element(By.ID, "overlay").is_displayed())
    _click(browser, "#modal-submit")
    error = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'.error[data-block-id="{ids.BLOCK_REASON}"]'))
    assert error[0].text
    Select(browser.find_element(By.CSS_SELECTOR, f'select[name="{ids.BLOCK_REASON}"]')).select_by_value("data_quality")
    band = Select(browser.find_element(By.CSS_SELECTOR, f'select[name="{ids.BLOCK_BAND}"]'))
    new_band = next(o.get_attribute("value") for o in band.options if o.get_attribute("value") not in ("", second.band))
    band.select_by_value(new_band)
    owner = Select(browser.find_element(By.CSS_SELECTOR, f'select[name="{ids.BLOCK_OWNER}"]'))
    new_owner = next(r for r in reps.values() if r.team == "mm" and r.id != second.owner and "rep" in r.roles)
    owner.select_by_value(new_owner.id)
    new_owner_name = new_owner.name
    _click(browser, "#modal-submit")
    _wait(browser, lambda d: not d.find_element(By.ID, "overlay").is_displayed())

    # both cards updated in place by the bot, from the real Block Kit
    _wait(browser, lambda d: "Overridden" in _card_text(d, posted[second.pk]))
    assert "Approved" in _card_text(browser, posted[first.pk])
    # and both records written back to the CRM: the owner, the loopgate fields
    _wait(browser, lambda d: (row := _crm_row(d, first.lead_id)) is not None and owner_name in row.text
          and "needs_review" not in row.text, timeout=20)  # fmt: skip
    _wait(
        browser,
        lambda d: (
            (row := _crm_row(d, second.lead_id)) is not None
            and new_owner_name in row.text
            and f"reviewed · {new_band}" in row.text  # the person's band, not the automatic one
        ),
        timeout=20,
    )

    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "sandbox.png"))


def test_given_the_sandbox_page_when_a_rep_uses_home_and_the_slash_command_then_both_answer_them(
    live: LiveSandbox, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    assert live.db is not None
    db = live.db
    slack = live.sandbox.slack

    decision, _ = slack.wait_until(lambda: posted_escalations(db)[:1], timeout=20)[0]
    rep = next(r for r in live.sandbox.loaded.policy.reps if r.id == decision.owner)

    browser.get(live.url)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#user option"))
    Select(browser.find_element(By.ID, "user")).select_by_value(str(rep.slack_user))
    _click(browser, 'a.channel[data-id="@home"]')
    approve = f'button[data-action-id="{ids.APPROVE}"][data-value="{decision.pk}"][data-home="1"]'
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, approve))
    _click(browser, approve)

    _wait(browser, lambda d: is_reviewed(db, decision.pk))
    # the bot republishes the tab without the decided lead, with a notice on top
    _wait(
        browser,
        lambda d: not d.find_elements(By.CSS_SELECTOR, approve) and "Approved" in d.find_element(By.ID, "channel").text,
    )

    # /loopgate queue from a review channel: the answer shows under the messages, for this rep only
    channel = next(t.channel for t in live.sandbox.loaded.policy.teams if t.id == rep.team)
    _click(browser, f'a.channel[data-id="{channel}"]')
    _wait(browser, lambda d: d.find_element(By.ID, "command").is_displayed())
    browser.find_element(By.ID, "command-text").send_keys("/loopgate queue\n")
    _wait(
        browser,
        lambda d: any("waiting" in e.text.lower() for e in d.find_elements(By.CSS_SELECTOR, "#channel .ephemeral")),
    )
