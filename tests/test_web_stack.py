"""The whole stack in real headless Chromium: `pandulce serve`, a real worker, Redis and SQLite.

Screenshots go to test-artifacts/web/ at the repository root.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import requests

from pandulce.db import session_scope
from pandulce.registry import register_model_dir
from tests.conftest import REPO_ROOT, copy_subset
from tests.stack import stack_environment
from tests.test_web_cli import free_port
from tests.test_web_support import PASSWORD
from training.classes import REFERENCE_CLASSES, display_name

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "web"
# Names as phones and computers produce them; the page must show them as they were.
RENAMED = {"conchita": "Concha de vainilla ñ.jpg", "besos": "Пирожок с вареньем.jpg", "donas": "甜甜圈 早餐.jpg"}
PHOTOS_PER_CLASS = 20
# The probability bars' class names that do not fit their box.
CUT_LABELS = ("Array.from(document.querySelectorAll('.bar-label'))"
              ".filter((label) => label.scrollWidth > label.clientWidth + 1).map((label) => label.textContent)")


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory, lite0_model):
    """A database with a model version and the user ana, one real worker, and `pandulce serve` on a free port."""
    data_dir = tmp_path_factory.mktemp("live-stack")
    with stack_environment("sqlite", data_dir) as stack:
        register_model_dir(lite0_model, activate=True)
        from web.accounts import create_user

        with session_scope() as session:
            create_user(session, "ana", PASSWORD)
        stack.start_worker(concurrency=2)
        port = free_port()
        log_path = data_dir / "serve.log"
        with log_path.open("w") as log_file:
            server = subprocess.Popen([sys.executable, "-m", "pandulce.cli", "serve", "--port", str(port)],
                                      cwd=REPO_ROOT, env={**os.environ, **stack.env}, stdout=log_file,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        stack.base_url = f"http://127.0.0.1:{port}"
        try:
            wait_until_answering(stack.base_url, server, log_path)
            yield stack
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def wait_until_answering(base_url, server, log_path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base_url}/login", timeout=2)
            return
        except requests.ConnectionError:
            assert server.poll() is None, log_path.read_text()
            time.sleep(0.2)
    raise AssertionError(f"pandulce serve did not answer in {timeout} s:\n{log_path.read_text()}")


@pytest.fixture(scope="module")
def photo_folder(dataset_root, tmp_path_factory):
    """200 real photos in class folders, three of them renamed with accents, Cyrillic and CJK."""
    folder = copy_subset(dataset_root, tmp_path_factory.mktemp("upload") / "vitrina", PHOTOS_PER_CLASS, offset=30)
    for class_name, new_name in RENAMED.items():
        first = sorted((folder / class_name).iterdir())[0]
        first.rename(first.with_name(new_name))
    return folder


@pytest.fixture
def browser_page():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(accept_downloads=True, locale="es-MX", viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def screenshot(page, name, full_page=True):
    """Save a screenshot after loading every lazily loaded thumbnail on the page."""
    page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach((image) => { image.loading = 'eager'; })")
    page.wait_for_function("Array.from(document.images).every((image) => image.complete)")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def sign_in(page, base_url):
    page.goto(f"{base_url}/")
    assert "/login" in page.url
    screenshot(page, "01-sign-in")
    page.fill("#username", "ana")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(re.compile(r"/jobs/$"))


def progress_percent(page) -> float:
    return float(page.get_attribute("#progress", "data-percent"))


def test_browser_uploads_a_folder_and_browses_the_results(live_stack, photo_folder, browser_page, tmp_path):
    page = browser_page
    sign_in(page, live_stack.base_url)

    page.click("text=Subir fotos")
    page.set_input_files("#pick-folder", str(photo_folder))
    page.wait_for_function("document.getElementById('selection').textContent.includes('200 archivos')")
    screenshot(page, "02-upload-chosen")
    page.click("#start-upload")
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}$"), timeout=120_000)
    job_url = page.url
    page.wait_for_function("parseFloat(document.getElementById('progress').dataset.percent) > 0", timeout=120_000)
    try:
        # Best effort: the page reloads itself when the job finishes, which can cut this short.
        page.screenshot(path=str(ARTIFACTS / "03-job-running.png"))
    except playwright_api.Error:
        pass
    page.wait_for_function("parseFloat(document.getElementById('progress').dataset.percent) >= 100",
                           timeout=300_000)
    # The page reloads itself once the job has finished, to offer the finished job's actions.
    page.wait_for_selector("#job[data-finished=true]")
    page.goto(job_url)
    screenshot(page, "04-job-done")

    assert progress_percent(page) == 100
    assert page.text_content("#count-total").strip() == "200"
    assert page.text_content("#count-done").strip() == "200"
    assert page.text_content("#job-status").strip() == "Terminado"
    assert page.text_content("#created-age").startswith("hace ")

    page.click("#results-link")
    page.wait_for_selector("#results-grid")
    screenshot(page, "05-results-grid")
    page.select_option("#filter-class", "conchita")
    page.click("#apply-filters")
    page.wait_for_url(re.compile(r"class=conchita"))
    screenshot(page, "06-results-conchita")
    labels = page.locator(".tile-class strong").all_text_contents()
    assert labels, "no photo was classified as conchita"
    assert set(labels) == {display_name("conchita", "es")}
    count = int(re.match(r"\d+", page.text_content("#result-count")).group())
    assert len(labels) == min(count, 48)

    page.locator(".tile-link").first.click()
    page.wait_for_selector("#photo-image")
    screenshot(page, "07-photo")
    assert page.text_content("#predicted-class").strip() == display_name("conchita", "es")
    assert "Pan suave y redondo" in page.text_content("#class-description")
    assert page.locator(".bars li").count() == len(REFERENCE_CLASSES)
    assert page.evaluate("document.getElementById('photo-image').naturalWidth") > 0

    page.click("#back-to-results")
    page.wait_for_selector("#export-csv")
    with page.expect_download() as download_info:
        page.click("#export-csv")
    download = download_info.value
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    shutil.copy(target, ARTIFACTS / "results.csv")
    with target.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 200
    assert {row["status"] for row in rows} == {"done"}
    assert {f"vitrina/{class_name}/{name}" for class_name, name in RENAMED.items()} <= {row["path"] for row in rows}
    assert all(row["top_class"] in REFERENCE_CLASSES for row in rows)
    assert job_url.rsplit("/", 1)[-1][:8] in download.suggested_filename


def test_browser_table_shows_original_names(live_stack, browser_page):
    page = browser_page
    sign_in(page, live_stack.base_url)
    page.locator("table.jobs a").first.click()
    page.click("text=Tabla")
    page.wait_for_selector("#results-table")

    page.goto(page.url + "&per_page=200")
    screenshot(page, "08-results-table", full_page=False)

    text = page.text_content("#results-table")
    for class_name, name in RENAMED.items():
        assert f"vitrina/{class_name}/{name}" in text
    layout = page.evaluate("""() => {
      const scroller = document.getElementById('results-table-scroll');
      scroller.scrollIntoView();
      const box = scroller.getBoundingClientRect();
      scroller.scrollLeft = scroller.scrollWidth;
      const name = document.querySelector('#results-table td.name').getBoundingClientRect();
      const lastColumn = document.querySelector('#results-table thead th:last-child').getBoundingClientRect();
      return {pageWidth: document.documentElement.scrollWidth, viewportWidth: document.documentElement.clientWidth,
              viewportHeight: window.innerHeight, bottom: box.bottom, right: box.right, scrolled: scroller.scrollLeft,
              nameLeft: name.left - box.left, nameWidth: name.width, lastColumnRight: lastColumn.right};
    }""")
    screenshot(page, "09-results-table-scrolled", full_page=False)
    # The table scrolls sideways in its own box, whose scroll bar is on screen, and the names stay in view.
    assert layout["pageWidth"] <= layout["viewportWidth"]
    assert layout["bottom"] <= layout["viewportHeight"]
    assert layout["scrolled"] > 0
    assert layout["lastColumnRight"] <= layout["right"]
    assert layout["nameLeft"] <= 2
    assert layout["nameWidth"] >= 250


def test_browser_quick_test_answers_on_the_same_page(live_stack, browser_page, dataset_root):
    page = browser_page
    sign_in(page, live_stack.base_url)

    page.click("text=Prueba rápida")
    page.set_input_files("#quick-photo", str(dataset_root / "orejas" / "orejas_3.jpg"))
    page.wait_for_selector("#quick-result:not([hidden])", timeout=120_000)
    screenshot(page, "10-quick-test")

    label = page.text_content("#quick-class").strip()
    assert label in {display_name(name, "es") for name in REFERENCE_CLASSES}
    assert page.locator("#quick-bars li").count() == len(REFERENCE_CLASSES)
    assert page.url.endswith("/quick/")


def test_browser_language_switch_to_english(live_stack, browser_page):
    page = browser_page
    sign_in(page, live_stack.base_url)

    page.click("button[lang=en]")
    page.wait_for_selector("text=Upload photos")
    page.click("text=Upload photos")
    screenshot(page, "11-upload-english")

    assert page.locator("html").get_attribute("lang") == "en"
    assert "Drag photos, folders or a zip here" in page.content()
    page.click("button[lang=es]")
    page.wait_for_selector("text=Subir fotos")


def test_browser_english_class_names_are_not_cut(live_stack, browser_page, dataset_root):
    page = browser_page
    sign_in(page, live_stack.base_url)
    page.click("button[lang=en]")
    try:
        page.wait_for_selector("text=Upload photos")
        page.locator("table.jobs a").first.click()
        page.click("#results-link")
        page.wait_for_selector("#results-grid")
        screenshot(page, "12-results-grid-english")
        grid_labels = page.locator(".bars.compact .bar-label").count()
        cut_in_grid = page.evaluate(CUT_LABELS)
        page.locator(".tile-link").first.click()
        page.wait_for_selector("#photo-image")
        screenshot(page, "13-photo-english")
        cut_on_photo_page = page.evaluate(CUT_LABELS)
        page.click("text=Quick test")
        page.set_input_files("#quick-photo", str(dataset_root / "puerquito" / "puerquito_3.jpg"))
        page.wait_for_selector("#quick-result:not([hidden])", timeout=120_000)
        screenshot(page, "14-quick-test-english")
        cut_in_quick_test = page.evaluate(CUT_LABELS)
    finally:
        page.click("button[lang=es]")
        page.wait_for_selector("text=Subir fotos")

    assert grid_labels >= len(REFERENCE_CLASSES)
    assert cut_in_grid == []
    assert cut_on_photo_page == []
    assert cut_in_quick_test == []


def test_browser_failed_upload_hides_the_progress_bar(live_stack, browser_page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("a shopping list, not a photo\n")
    page = browser_page
    sign_in(page, live_stack.base_url)
    page.click("text=Subir fotos")

    page.set_input_files("#pick-files", str(notes))
    page.wait_for_function("document.getElementById('selection').textContent !== ''")
    chosen = page.text_content("#selection")
    page.click("#start-upload")
    page.wait_for_selector("#upload-error:not([hidden])")
    screenshot(page, "15-upload-failed")

    assert chosen.startswith("1 archivo elegido (")
    assert page.is_hidden("#upload-progress")
    assert page.get_attribute("#upload-progress", "data-percent") == "0"
    assert "Ninguno de los archivos subidos es una foto" in page.text_content("#upload-error")
