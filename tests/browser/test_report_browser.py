"""The rendered report opens offline from file:// and its widget playground works."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.helpers import run_notebook

from .conftest import severe_errors

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report_html(tiny_reports, tmp_path_factory) -> Path:
    from emolib.render import render_report

    out = tmp_path_factory.mktemp("report")
    executed = out / "40_report.ipynb"
    run_notebook("40_report.ipynb", executed, reports_dir=str(tiny_reports), playground_images=6, profile="smoke")
    return render_report(executed, out / "report.html")


def test_report_is_self_contained(report_html):
    text = report_html.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\ssrc=[\"']?(https?:)?//", text, re.I)
    # (embed.js keeps a CDN base for third-party widget modules; the report uses only built-in widgets)
    assert "html-manager@" not in text and "require.min.js" not in text and "MathJax.js" not in text
    assert "application/vnd.jupyter.widget-state+json" in text
    assert 'src="data:image/png;base64,' in text
    assert "SYNTHETIC DATA" in text
    assert report_html.stat().st_size < 15e6


def _visible_probs(drv) -> str:
    pg = drv.find_element("css selector", ".emolib-playground")
    return " | ".join(e.text for e in pg.find_elements("css selector", ".emolib-probs") if e.is_displayed())


def test_report_widgets_render_offline(report_html, driver, tmp_path):
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver.get(report_html.resolve().as_uri())
    wait = WebDriverWait(driver, 30)
    wait.until(lambda d: d.find_elements("css selector", ".emolib-playground select"))
    # no placeholder or error left from the widget renderer
    body = driver.find_element("tag name", "body").text
    assert "Loading widgets" not in body
    assert "Error displaying widget" not in body and "Error rendering" not in body
    wait.until(lambda d: _visible_probs(d))
    before = _visible_probs(driver)
    assert "%" in before

    select = Select(driver.find_element("css selector", ".emolib-playground select"))
    assert len(select.options) >= 2
    select.select_by_index(1)
    wait.until(lambda d: _visible_probs(d) != before)
    after_image = _visible_probs(driver)
    assert after_image and after_image != before

    # switch model with the toggle buttons
    buttons = driver.find_elements("css selector", ".emolib-playground .widget-toggle-button")
    assert len(buttons) == 2
    buttons[1].click()
    wait.until(lambda d: _visible_probs(d) != after_image)
    assert "mobilenetv2" in _visible_probs(driver)

    figures = tmp_path / "figures"
    figures.mkdir()
    driver.execute_script("document.querySelector('.emolib-playground').scrollIntoView()")
    time.sleep(0.3)
    shot = figures / "report_screenshot.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    errors = severe_errors(driver)
    assert not errors, errors
