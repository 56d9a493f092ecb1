"""A newcomer's first page, in Chromium: a fresh server on an empty home with the shipped zoo shows the study's title
and its table of the five nets, with our figures from the zoo. How long that takes is bench/first_view.py's to
measure (a timing is never a pass/fail test); here it is printed beside the result."""

import os
import time
from pathlib import Path

import pytest

from convnets.study import STUDY_NETS
from dashboard.serve import serving

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"the browser tests drive {CHROMIUM}, "
                                "which is missing (apt-get install chromium)")


def test_a_fresh_server_shows_the_studys_title_and_table_first(tmp_path):
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "CONVNETS_HOME": str(tmp_path / "home"), "CONVNETS_OFFLINE": "1"}
    env.pop("CONVNETS_ZOO", None)  # the shipped zoo, as on a fresh clone
    env.pop("CONVNETS_DATA", None)
    with open(tmp_path / "streamlit.log", "wb") as log, serving(env, log, start_timeout=120) as (_, url), \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        start = time.perf_counter()
        page.goto(url)
        page.locator("h1").filter(has_text="The study").wait_for(timeout=60_000)
        title = time.perf_counter() - start
        table = page.get_by_test_id("stTable").first
        table.wait_for(timeout=60_000)
        shown = time.perf_counter() - start
        rows = table.locator("tbody tr").all_inner_texts()
        browser.close()
    nets = [net.title for net in STUDY_NETS.values()]
    assert [row.split("\t")[0].strip() for row in rows] == nets
    assert all("%" not in row and row.count(".") >= 3 for row in rows)  # study, ours and ≈ official figures
    print(f"first paint: title {title:.2f} s, study table {shown:.2f} s after the server answered")


def test_a_link_to_another_page_on_a_fresh_server_opens_that_page(tmp_path):
    """The first paint reruns the app only over the study's head: a rerun goes to the default page, so a class
    given a link to /draw on a server just started would all land on the study (bench/class_load.py found it)."""
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "CONVNETS_HOME": str(tmp_path / "home"), "CONVNETS_OFFLINE": "1"}
    env.pop("CONVNETS_ZOO", None)
    with open(tmp_path / "streamlit.log", "wb") as log, serving(env, log, start_timeout=120) as (_, url), \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/draw")
        page.locator("h1").filter(has_text="Draw a digit").wait_for(timeout=60_000)
        assert page.url.rstrip("/").endswith("/draw")
        assert page.locator("h1").filter(has_text="The study").count() == 0
        browser.close()
