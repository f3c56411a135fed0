"""Browser tests: Debian's chromium + chromedriver driven by selenium (no driver download:
the driver path is given explicitly, so selenium-manager never runs), pages opened with
networking off."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("EMOLIB_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("EMOLIB_CHROMEDRIVER", "/usr/bin/chromedriver"))
ROOT = Path(__file__).resolve().parents[2]


def _require_browser():
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium)")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium chromium-driver")
    if not CHROMEDRIVER.is_file():
        pytest.skip(f"{CHROMEDRIVER} not found: apt-get install -y chromium-driver")


@pytest.fixture(scope="session")
def tiny_reports(tmp_path_factory) -> Path:
    """A reports/ folder with two tiny stand-in models (see fixture_reports.py)."""
    from .fixture_reports import build_tiny_reports

    return build_tiny_reports(tmp_path_factory.mktemp("browser"))


@pytest.fixture
def driver():
    """Headless chromium, fresh profile, no network (proxy to a closed port, no DNS)."""
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="emolib-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1280,1600", f"--user-data-dir={profile}",
                 "--proxy-server=127.0.0.1:9",  # loopback bypasses the proxy by default
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def severe_errors(drv, ignore=()) -> list[dict]:
    return [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"
            and not any(s in e.get("message", "") for s in ignore)]
