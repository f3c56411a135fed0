"""The live playground served by Voila: upload a photo in a real browser, get a prediction."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, severe_errors

pytestmark = pytest.mark.slow
NOTEBOOK = ROOT / "notebooks" / "50_playground.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def voila_url(tiny_reports, tmp_path):
    try:
        import voila  # noqa: F401
    except ImportError:
        pytest.skip("voila is not installed (pip install voila)")
    port = _free_port()
    env = {**os.environ, "EMOLIB_MODEL_DIR": str(tiny_reports / "models"), "TF_CPP_MIN_LOG_LEVEL": "2",
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = open(tmp_path / "voila.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "voila", str(NOTEBOOK), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
         "--Voila.port_retries=0", "--show_tracebacks=True"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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


def test_upload_gives_prediction(voila_url, driver, tiny_reports, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    photo = next((tiny_reports.parent / "data" / "test" / "sad").glob("*.png"))
    upload = tmp_path / "my photo.png"
    shutil.copy(photo, upload)
    driver.get(voila_url)
    wait = WebDriverWait(driver, 90)
    wait.until(lambda d: d.find_elements("css selector", "button.emolib-upload, .emolib-upload button"))
    # ipywidgets 8's FileUpload keeps its <input type=file> detached and click()s it to open the
    # dialog: attach it to the page instead, so that selenium can send a file path to it.
    driver.execute_script("""
        const orig = HTMLInputElement.prototype.click;
        HTMLInputElement.prototype.click = function () {
            if (this.type === 'file') { this.id = 'emolib-test-file-input'; document.body.appendChild(this); return; }
            return orig.call(this);
        };""")
    driver.find_element("css selector", "button.emolib-upload, .emolib-upload button").click()
    wait.until(lambda d: d.find_elements("css selector", "#emolib-test-file-input"))
    driver.find_element("css selector", "#emolib-test-file-input").send_keys(str(upload))
    wait.until(lambda d: "%" in "".join(e.text for e in d.find_elements("css selector", ".emolib-output .emolib-probs")))
    text = driver.find_element("css selector", ".emolib-output").text
    assert "my photo.png" in text
    assert "cnn" in text and "mobilenetv2" in text  # "all models" is the default
    assert driver.find_elements("css selector", ".emolib-output a.emolib-csv")
    shot = tmp_path / "figures" / "playground_screenshot.png"
    shot.parent.mkdir()
    driver.save_screenshot(str(shot))
    if os.environ.get("EMOLIB_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["EMOLIB_SCREENSHOT_DIR"]) / shot.name)
    # Voila's page template asks a CDN for Font Awesome's CSS (icons only); offline that fails
    errors = severe_errors(driver, ignore=("favicon", "fontawesome"))
    assert not errors, errors
