"""Browser tests: Debian's chromium + chromedriver driven by selenium (no driver download:
the driver path is given explicitly, so selenium-manager never runs), pages opened with
networking off."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("EMOLIB_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("EMOLIB_CHROMEDRIVER", "/usr/bin/chromedriver"))
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "50_playground.ipynb"


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


@contextmanager
def chromium(*extra_args: str):
    """Headless chromium, fresh profile, no network (proxy to a closed port, no DNS); `extra_args`
    add flags (the camera tests add a fake camera)."""
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="emolib-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
        f"--user-data-dir={profile}",
        "--proxy-server=127.0.0.1:9",  # loopback bypasses the proxy by default
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        *extra_args,
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def driver():
    """Headless chromium (see `chromium`)."""
    with chromium() as drv:
        yield drv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def voila_url(tiny_reports, tmp_path):
    """notebooks/50_playground.ipynb served by Voila as `make playground` does, with the tiny models;
    the server's TMPDIR is tmp_path/voila-tmp (the tests check what is left in it)."""
    try:
        import voila  # noqa: F401
    except ImportError:
        pytest.skip("voila is not installed (pip install voila)")
    port = _free_port()
    from emolib.uploads import VOILA_ARGS  # as `make playground`: a whole upload fits one websocket message

    (tmp_path / "voila-tmp").mkdir()
    env = {
        **os.environ,
        "EMOLIB_MODEL_DIR": str(tiny_reports / "models"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "TMPDIR": str(tmp_path / "voila-tmp"),
    }
    log = open(tmp_path / "voila.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voila",
            str(NOTEBOOK),
            "--no-browser",
            f"--port={port}",
            "--Voila.ip=127.0.0.1",
            "--Voila.port_retries=0",
            "--show_tracebacks=True",
            *VOILA_ARGS,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"voila exited early:\n{(tmp_path / 'voila.log').read_text()[-3000:]}")
            try:  # the port accepts connections: the server is up (rendering happens per request)
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("voila did not start within 60 s")
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()


def severe_errors(drv, ignore=()) -> list[dict]:
    return [
        e
        for e in drv.get_log("browser")
        if e.get("level") == "SEVERE" and not any(s in e.get("message", "") for s in ignore)
    ]
