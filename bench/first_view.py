"""How long a newcomer waits: the first page's title and study table on a fresh server, then each page's first view.

A fresh server (its own port, an empty CONVNETS_HOME, the shipped zoo) is opened in Chromium. The clock starts
when the browser asks for the page, right after the server's health endpoint answers: the first paint is when the
study's title and then its table are on screen, the script's end when Streamlit says it is no longer running.
Each other page is then opened from the sidebar, as a user would, and timed the same way (title, script done).
With ``--data-dir`` the pages read the data too (Datasets' examples, the test images the galleries show). Then
the sidebar's dataset is set to CIFAR-10 and every page is opened once more: each page's first CIFAR-10 view (with
the data, the first that reads the JPEG copy's files where the first pass showed MNIST).

    python bench/first_view.py [--data-dir ../shared/data] [--rounds 2]

A timing is never a pass/fail test here: the figures go to bench/README.md (targets: first paint <= 2 s, any later
first view <= 3 s, on the 2-core development machine). The test suite asserts only that the title and the study
table appear (tests/test_browser_first_view.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dashboard.common import PAGES  # noqa: E402
from dashboard.serve import serving  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
READY = "[data-testid=stApp][data-test-script-state=notRunning]"
RUNNING = "[data-testid=stApp][data-test-script-state=running]"
STUDY_TABLE = "[data-testid=stTable]"
LIMIT_MS = 120_000
CIFAR = "CIFAR-10"  # the sidebar filter's label of the second pass


def first_paint(page, url: str) -> dict[str, float]:
    """Seconds from asking for the first page to its title, its study table and the end of its script."""
    start = time.perf_counter()
    page.goto(url)
    page.locator("h1").filter(has_text="The study").wait_for(timeout=LIMIT_MS)
    title = time.perf_counter() - start
    page.locator(STUDY_TABLE).first.wait_for(timeout=LIMIT_MS)
    table = time.perf_counter() - start
    page.wait_for_selector(READY, timeout=LIMIT_MS)
    return {"title": title, "table": table, "done": time.perf_counter() - start}


def first_view(page, title: str) -> dict[str, float]:
    """Seconds from a click on the page's sidebar link to its title and to the end of its script."""
    whole = re.compile(rf"{re.escape(title)}$")
    start = time.perf_counter()
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=whole).click()
    page.locator("h1").filter(has_text=whole).wait_for(timeout=LIMIT_MS)
    shown = time.perf_counter() - start
    page.wait_for_timeout(50)  # the click's rerun has begun: the app is marked running again
    page.wait_for_selector(READY, timeout=LIMIT_MS)
    return {"title": shown, "done": time.perf_counter() - start}


def choose_dataset(page, label: str) -> None:
    """A click on the sidebar's dataset filter, and the end of the rerun it asks for (not timed)."""
    page.get_by_test_id("stSidebar").get_by_role("radio", name=label, exact=True).click()
    with contextlib.suppress(PlaywrightTimeout):  # the rerun has begun, unless it is over already
        page.wait_for_selector(RUNNING, timeout=2_000)
    page.wait_for_selector(READY, timeout=LIMIT_MS)


def one_round(data_dir: str | None) -> dict[str, dict[str, float]]:
    """A fresh server and home, the first page, then every other page once."""
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryFile() as log:
        env = {**os.environ, "CONVNETS_HOME": home, "CONVNETS_OFFLINE": "1"}
        env.pop("CONVNETS_ZOO", None)  # the shipped zoo, as on a fresh clone
        if data_dir:
            env["CONVNETS_DATA"] = str(Path(data_dir).resolve())
        with serving(env, log) as (_, url), sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            titles = [spec.title for spec in PAGES.values()]
            times = {titles[0]: first_paint(page, url)}
            for title in titles[1:]:
                times[title] = first_view(page, title)
            choose_dataset(page, CIFAR)
            for title in titles:  # the last page too: its choice of dataset opens on the filter's when it is opened
                times[f"{CIFAR}: {title}"] = first_view(page, title)
            browser.close()
        return times


def table(rounds: list[dict[str, dict[str, float]]], data_dir: str | None) -> str:
    """Markdown: per page the worst round's title and script-done times (the first page with its table too)."""
    lines = [f"data folder: {data_dir or 'none (the shipped zoo only)'}; {len(rounds)} fresh server(s), worst shown",
             "", "| page | title | study table | script done |", "|---|---:|---:|---:|"]
    for name in rounds[0]:
        worst = {k: max(r[name][k] for r in rounds) for k in rounds[0][name]}
        shown = f"{worst['table']:.2f} s" if "table" in worst else ""
        lines.append(f"| {name} | {worst['title']:.2f} s | {shown} | {worst['done']:.2f} s |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="the data folder the pages read (default: none)")
    parser.add_argument("--rounds", type=int, default=2, help="fresh servers to time (default 2)")
    args = parser.parse_args()
    rounds = [one_round(args.data_dir) for _ in range(args.rounds)]
    print(table(rounds, args.data_dir))


if __name__ == "__main__":
    main()
