"""The offline report: one self-contained HTML file, on a tiny store and on the shipped zoo, opened by Chromium from
disk with the network off."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from ui_helpers import built_store, copy_runs  # noqa: F401 - built_store is a fixture

from convnets.cli import main
from convnets.store import ZOO_DIR, RunStore
from dashboard.report import write_report

CHROMIUM = "/usr/bin/chromium"
PLOTLY_BANNER = "* plotly.js v"  # the first line of plotly's bundle
MAX_BYTES = 10 * 2**20
pytestmark = pytest.mark.usefixtures("one_thread")


class Links(HTMLParser):
    """Every src and href attribute of the document's elements (script bodies are not markup)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.found += [value or "" for name, value in attrs if name in ("src", "href")]


def links(markup: str) -> list[str]:
    parser = Links()
    parser.feed(markup)
    return parser.found


def assert_self_contained(markup: str) -> None:
    assert markup.count(PLOTLY_BANNER) == 1  # inlined once, for every chart
    remote = [link for link in links(markup) if re.match(r"\s*(https?:)?//", link, re.I)]
    assert not remote, remote[:5]


@pytest.fixture
def store(built_store, home) -> RunStore:  # noqa: F811 - the fixture imported above
    copy_runs(built_store, home)
    return RunStore()


@pytest.fixture(scope="module")
def zoo_report(tmp_path_factory) -> tuple[Path, dict]:
    """The report of the whole shipped zoo, without its data (as on a fresh machine)."""
    path = tmp_path_factory.mktemp("zoo-report") / "report.html"
    store = RunStore(tmp_path_factory.mktemp("empty-home"), zoo=ZOO_DIR)
    return path, write_report(path, store=store, data_dir=str(tmp_path_factory.mktemp("no-data")))


def test_a_tiny_store_reports_every_section_with_image_galleries(store, data_dir, tmp_path):
    a, b = store.finished("mnist")
    p = b.predictions()  # the tiny runs get every synthetic digit right: B now misses five of them
    p.predicted[:5] = (p.labels[:5] + 1) % 10
    b.save_predictions(p)
    result = write_report(tmp_path / "r.html", run_ids=[a.run_id, b.run_id], data_dir=str(data_dir))
    markup = (tmp_path / "r.html").read_text()
    assert result["runs"] == 2 and result["datasets"] == ["mnist"] and result["bytes"] == len(markup.encode())
    assert_self_contained(markup)
    # the leaderboard's 2, the curves, 2 confusion matrices, calibration and robustness (measured after training)
    assert markup.count('class="plotly-graph-div"') == result["charts"] == 7
    for words in ("Leaderboard", "Training curves", "Confusion matrices", "McNemar", "Only A right", "Calibration",
                  "Corrupted %"):
        assert words in markup, words
    assert "Only A right (5)" in markup and "Only B right (0)" in markup
    assert any(link.startswith("data:image/png;base64,") for link in links(markup))  # the galleries, from the data


def test_without_the_data_the_galleries_are_tables(store, tmp_path):
    result = write_report(tmp_path / "r.html", dataset="mnist")
    markup = (tmp_path / "r.html").read_text()
    assert result["runs"] == 2 and "listed without their images" in markup
    assert not any(link.startswith("data:image") for link in links(markup))


def test_cli_report_json_and_its_errors(store, capsys, tmp_path):
    code = main(["report", "--dataset", "cifar10", "--out", str(tmp_path / "c.html"), "--json"])
    out, _ = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and result["runs"] == 1 and (tmp_path / "c.html").is_file()
    failed = next(r for r in store.runs() if not r.finished)
    for argv, message in ((["--runs", failed.run_id], "not finished"), (["--runs", "nope"], "not a run id"),
                          (["--dataset", "mnist", "--runs", failed.run_id.replace("vgg16", "lenet5")], "no run")):
        code = main(["report", *argv, "--out", str(tmp_path / "x.html")])
        _, err = capsys.readouterr()
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_the_leaderboard_offers_the_report_and_the_errors_page_the_export(store):
    app = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
    for page, label in (("leaderboard", "Download the report (HTML)"), ("errors", "Download the safetensors export")):
        at = AppTest.from_file(str(app), default_timeout=60)
        at.switch_page(f"../pages/{page}.py").run()
        assert not at.exception and label in [b.label for b in at.download_button], page


def test_the_shipped_zoo_fits_one_small_self_contained_file(zoo_report):
    path, result = zoo_report
    assert result["runs"] == len(RunStore(zoo=ZOO_DIR).finished()) >= 15
    assert result["bytes"] < MAX_BYTES
    assert_self_contained(path.read_text())


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs {CHROMIUM} (apt-get install chromium)")
def test_chromium_renders_every_chart_from_disk_with_the_network_off(zoo_report):
    from playwright.sync_api import sync_playwright

    path, result = zoo_report
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        context = browser.new_context(offline=True)
        page = context.new_page()
        requests, errors = [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri(), wait_until="load")
        charts = page.locator(".plotly-graph-div")
        page.wait_for_function(f"document.querySelectorAll('.plotly-graph-div .main-svg').length >= "
                               f"{result['charts']}", timeout=60_000)
        drawn = [charts.nth(i).evaluate("d => d.querySelectorAll('.trace, .hm image').length")  # lines, bars,
                 for i in range(charts.count())]  # markers; a heatmap is one image
        browser.close()
    assert not errors, errors
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert len(drawn) == result["charts"] and all(n > 0 for n in drawn), drawn
