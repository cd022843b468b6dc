"""The report in a real browser: headless Chromium opens the file, draws every chart, filters and sorts.

What the HTML tests cannot see: that the page runs without a console error, that the SVG charts
have a size and shapes, and that the inline script filters and sorts the customer table.  Needs
Debian's chromium and chromium-driver and the selenium package (the `test` extra).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("Chromium not installed: apt-get install chromium chromium-driver", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed: pip install selenium")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from crm_rules.cli import app  # noqa: E402
from conftest import AS_OF  # noqa: E402

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1000")
EVIL = "<script>alert(1)</script>"
SHAPES = "rect, path, polygon, circle, line"
VISIBLE_ROWS = "return Array.from(document.querySelectorAll('#customers tbody tr')).filter(r => r.getClientRects().length).length"
COLUMN = """const col = Array.from(document.querySelectorAll('#customers thead th')).findIndex(th => th.textContent === arguments[0]);
return Array.from(document.querySelectorAll('#customers tbody tr')).filter(r => r.getClientRects().length)
  .map(r => r.cells[col].getAttribute('data-v') ?? r.cells[col].textContent);"""


@pytest.fixture(scope="module")
def report(demo_template, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("browser")
    db = folder / "crm.db"
    shutil.copy(demo_template, db)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE customers SET name = ? WHERE id = (SELECT min(id) FROM customers)", (EVIL,))
    conn.commit()
    conn.close()
    runner = CliRunner()
    for args in (["apply", "--db", db, "-p", "base", "--as-of", "2026-03-31"], ["apply", "--db", db, "-p", "base", "--as-of", AS_OF],
                 ["report", "--db", db, "--out", folder / "report.html"]):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return folder / "report.html"


@pytest.fixture(scope="module")
def browser(report, tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.get(report.as_uri())
        yield driver
    finally:
        driver.quit()


def _severe(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_page_loads_without_console_errors_or_script_injection(browser):
    assert browser.title.startswith("base · as of")
    assert _severe(browser) == []
    with pytest.raises(NoAlertPresentException):  # the customer called <script>alert(1)</script> ran nothing
        browser.switch_to.alert.text
    assert browser.find_element(By.CSS_SELECTOR, "header.top h1").text.startswith("base")
    assert "重点客户 Key customers" in browser.find_element(By.ID, "tiers").text  # CJK labels rendered as text


def test_every_chart_is_drawn(browser):
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    # Pareto, customers and revenue per tier, a funnel per tier, credit outcome, aging, actions
    assert len(charts) >= 9
    for chart in charts:
        label = chart.get_attribute("aria-label")
        assert chart.size["width"] > 100 and chart.size["height"] > 40, label
        assert len(chart.find_elements(By.CSS_SELECTOR, SHAPES)) > 2, label
        bars = chart.find_elements(By.CSS_SELECTOR, ".bar, .curve")
        assert any(b.size["width"] > 0 and b.size["height"] > 0 for b in bars), label
    curve = browser.find_element(By.CSS_SELECTOR, "#pareto path.curve")
    assert curve.get_attribute("d").count("L") > 100  # sampled, not a straight line
    matrix = browser.find_element(By.ID, "transition-matrix")
    assert matrix.size["height"] > 50 and len(matrix.find_elements(By.CSS_SELECTOR, "tbody tr")) >= 4


def test_search_filters_the_customer_table(browser):
    box = browser.find_element(By.ID, "customer-search")
    total = browser.execute_script(VISIBLE_ROWS)
    assert total == 300
    box.send_keys("alert(1)")
    assert browser.execute_script(VISIBLE_ROWS) == 1
    assert EVIL in browser.find_element(By.CSS_SELECTOR, "#customers tbody tr:not([hidden]) td.name").text
    box.clear()
    box.send_keys("有限公司")
    some = browser.execute_script(VISIBLE_ROWS)
    assert 0 < some < total
    assert browser.find_element(By.ID, "customer-count").text == f"{some:,} of {total:,} rows match"
    box.clear()
    box.send_keys(" ")  # clear() fires no input event; a blank query shows everything
    assert browser.execute_script(VISIBLE_ROWS) == total
    assert _severe(browser) == []


def test_clicking_a_header_sorts(browser):
    header = browser.find_element(By.XPATH, "//table[@id='customers']//th[text()='revenue_12m']")
    header.click()  # numbers: largest first
    values = [float(v) for v in browser.execute_script(COLUMN, "revenue_12m")]
    assert values == sorted(values, reverse=True) and header.get_attribute("aria-sort") == "descending"
    header.click()
    values = [float(v) for v in browser.execute_script(COLUMN, "revenue_12m")]
    assert values == sorted(values) and header.get_attribute("aria-sort") == "ascending"
    browser.find_element(By.XPATH, "//table[@id='customers']//th[text()='Customer']").click()  # text: A to Z
    ids = browser.execute_script(COLUMN, "Customer")
    assert ids == sorted(ids) and len(ids) == 300
    assert _severe(browser) == []
