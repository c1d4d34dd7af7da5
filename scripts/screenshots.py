"""Regenerate the README's images: ``docs/images/sandbox.png`` (the sandbox page in headless
Chromium, one escalation approved) and ``docs/images/digest-chart.png`` (the weekly digest chart
of ``loopgate demo``).

    python scripts/screenshots.py            # needs chromium + chromium-driver and selenium

Emoji render only if a colour emoji font is installed (Debian: fonts-noto-color-emoji).
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot import ids  # noqa: E402
from loopgate.demo.live import LiveSandbox  # noqa: E402
from loopgate.demo.outputs import summary, write_outputs  # noqa: E402
from loopgate.demo.pipeline import run_demo  # noqa: E402

IMAGES = ROOT / "docs" / "images"


def digest_chart(tmp: Path) -> None:
    run = run_demo(tmp / "demo")
    try:
        paths = write_outputs(run, summary(run))
    finally:
        run.db.dispose()
        run.sandbox.stop()
    shutil.copyfile(paths["digest-chart.png"], IMAGES / "digest-chart.png")


def sandbox_page(tmp: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    live = LiveSandbox(tmp / "live", port=0, leads=120, scheduler=False).start()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,950"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    try:
        slack = live.sandbox.slack
        slack.wait_until(lambda: len(slack.messages("C0MMREVIEW")) >= 3, timeout=20)
        driver.get(live.url)
        time.sleep(1.5)
        driver.find_element(By.CSS_SELECTOR, 'a.channel[data-id="C0MMREVIEW"]').click()
        time.sleep(1.5)
        buttons = driver.find_elements(By.CSS_SELECTOR, f'button[data-action-id="{ids.APPROVE}"]')
        buttons[1].click()
        time.sleep(3)
        driver.execute_script("document.querySelector('main').scrollTop = 0")
        time.sleep(0.5)
        driver.save_screenshot(str(IMAGES / "sandbox.png"))
    finally:
        driver.quit()
        live.stop()


def main() -> int:
    logging.basicConfig(level=logging.ERROR)  # the demo's SLA steps run "late" on purpose
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="loopgate-shots-") as tmp:
        sandbox_page(Path(tmp))
        digest_chart(Path(tmp))
    print(f"wrote {IMAGES / 'sandbox.png'} and {IMAGES / 'digest-chart.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
