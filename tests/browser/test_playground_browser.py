"""The live playground served by Voila: upload a photo in a real browser, get a prediction."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .conftest import severe_errors

pytestmark = pytest.mark.slow


def _file_input(driver, voila_url):
    """Open the playground and return (its file input, a 90 s WebDriverWait)."""
    from selenium.webdriver.support.ui import WebDriverWait

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
    return driver.find_element("css selector", "#emolib-test-file-input"), wait


def test_upload_gives_prediction(voila_url, driver, tiny_reports, tmp_path):
    photo = next((tiny_reports.parent / "data" / "test" / "sad").glob("*.png"))
    upload = tmp_path / "my photo.png"
    shutil.copy(photo, upload)
    file_input, wait = _file_input(driver, voila_url)
    file_input.send_keys(str(upload))
    wait.until(
        lambda d: "%" in "".join(e.text for e in d.find_elements("css selector", ".emolib-output .emolib-probs"))
    )
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


def test_mixed_upload_messages_and_kernel_alive(voila_url, driver, tiny_reports, tmp_path):
    """Several files at once: good photos get predictions, each bad file its own message (an
    over-limit file too: the 10.5 MB upload passes the websocket), then the page still works."""
    from tests.helpers import AUTOGRAPH, header_only_png

    files = tmp_path / "files"
    files.mkdir()
    good = sorted((tiny_reports.parent / "data" / "test" / "sad").glob("*.png"))[:3]
    for i, g in enumerate(good):
        shutil.copy(g, files / f"good{i}.png")
    (files / "notes.jpg").write_text("not a picture\n" * 50)
    (files / "huge.jpg").write_bytes(os.urandom(10_500_000))
    (files / "bomb.png").write_bytes(header_only_png(20_000, 20_000))
    names = ["good0.png", "notes.jpg", "good1.png", "huge.jpg", "bomb.png", "good2.png"]
    file_input, wait = _file_input(driver, voila_url)
    file_input.send_keys("\n".join(str(files / n) for n in names))
    out = "css selector", ".emolib-output"
    wait.until(lambda d: "Results (" in d.find_element(*out).text)
    problems = [e.text for e in driver.find_elements("css selector", ".emolib-output .emolib-problem")]
    assert problems == [
        "huge.jpg: 10.5 MB is over the 10 MB limit",
        "notes.jpg: not an image file (or not one of JPEG, MPO, PNG, GIF, BMP, TIFF, WEBP, PPM)",
        "bomb.png: refused as a possible decompression bomb (400,000,000 pixels; the limit is 50,000,000 pixels)",
    ], problems
    text = driver.find_element(*out).text
    assert "Results (3 of 5 image(s) with a prediction)" in text
    for i in range(3):
        assert f"good{i}.png: 1 face(s)" in text
    assert len(driver.find_elements("css selector", ".emolib-output .emolib-probs")) == 6  # 3 photos x 2 models
    # the kernel is alive and the button usable: a second upload is answered
    shutil.copy(good[0], files / "again.png")
    driver.execute_script("arguments[0].value = '';", file_input)
    file_input.send_keys(str(files / "again.png"))
    wait.until(lambda d: "again.png: 1 face(s)" in d.find_element(*out).text)
    assert not driver.find_elements("css selector", ".emolib-output .emolib-problem")
    assert "upload failed" not in driver.find_element("css selector", "body").text
    # the server's temp folder holds Voila's kernel connection file and TensorFlow autograph's files
    # (both deleted at exit), and nothing else
    tmp = tmp_path / "voila-tmp"
    left = [
        str(p.relative_to(tmp))
        for p in tmp.rglob("*")
        if p.is_file()
        and not p.name.startswith(AUTOGRAPH)
        and not (p.parent.name.startswith("voila_") and p.name.startswith("kernel-") and p.suffix == ".json")
    ]
    assert left == [], left
    errors = severe_errors(driver, ignore=("favicon", "fontawesome"))
    assert not errors, errors
