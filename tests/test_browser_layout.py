"""The result pages in Chromium at a laptop's widths, 1400 and 1000 px with the sidebar open (issue 39): no name or
figure the reader needs is cut, scrolled out of sight or broken inside a word, no legend sits in a box that
scrolls, and a click on a cell of the confusion matrix chooses it.

``st.dataframe`` draws on a canvas, so a script put in the page before Streamlit's (GRID_HOOK) records every text
the grid draws and where: a column runs from its header to the next one's, and a cell is cut where its text runs
past its column. The server reads the tiny store beside the shipped zoo (tests/ui_helpers.py), which gives two runs
of some nets on one dataset and twelve CIFAR-10 runs. Screenshots land in artifacts/screenshots/layout-*.png.
"""

import os
from pathlib import Path
from urllib.parse import urlencode

import pytest
from test_browser import CHROMIUM, READY, SHOTS, visit
from ui_helpers import built_store, copy_runs  # noqa: F401 - built_store is a fixture

from convnets.store import ZOO_DIR, RunStore
from dashboard.explaining import INPUT_PARAM
from dashboard.serve import serving
from dashboard.tables import BOARD_MAIN

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"the browser tests drive {CHROMIUM}, "
                                "which is missing (apt-get install chromium)")

WIDTHS = (1400, 1000)
PADDING = 8  # pixels between a grid column's edge and its header's text
GRID_HOOK = """
window.gridTexts = [];
const fillText = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, x, y, ...rest) {
  const grid = this.canvas.closest('[data-testid=stDataFrame]');
  if (grid) {
    const at = this.getTransform();
    window.gridTexts.push({grid: [...document.querySelectorAll('[data-testid=stDataFrame]')].indexOf(grid),
                           text: String(text), x: x + at.e, y: y + at.f, width: this.measureText(text).width,
                           align: this.textAlign, canvas: this.canvas.width});
  }
  return fillText.call(this, text, x, y, ...rest);
};
"""


@pytest.fixture(scope="module")
def server(built_store, tmp_path_factory):  # noqa: F811 - the fixture imported above
    """A dashboard on a copy of the tiny store and the shipped zoo, without data; yields its URL and its store."""
    home = copy_runs(built_store, tmp_path_factory.mktemp("layout-home"))
    env = {**os.environ, "CONVNETS_HOME": str(home), "CONVNETS_ZOO": str(ZOO_DIR), "CONVNETS_OFFLINE": "1",
           "CONVNETS_DATA": str(tmp_path_factory.mktemp("no-data"))}
    with open(home / "streamlit.log", "wb") as log, serving(env, log, start_timeout=60) as (_, url):
        yield url, RunStore(home, ZOO_DIR)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()  # a fresh server first paints the study's table, then loads PyTorch: once
        page.goto(server[0])
        page.wait_for_selector(READY, timeout=180_000)
        page.close()
        yield browser
        browser.close()


def open_at(browser, server, width: int, path: str = "", **query: str):
    """A tab ``width`` pixels wide with the grid hook, on the page at ``path`` once its script has finished."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(60_000)
    page.add_init_script(GRID_HOOK)
    page.goto(f"{server[0]}/{path}" + (f"?{urlencode(query)}" if query else ""))
    page.wait_for_selector(READY)
    return page


def settle(page) -> None:
    """Wait for the script to end and the charts and grids to draw."""
    page.wait_for_selector(READY)
    page.wait_for_timeout(1500)


def shoot(page, name: str, width: int) -> None:
    """The whole page at its width: Streamlit scrolls inside its main block, so the viewport grows to fit it."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": width, "height": max(900, height)})
    page.wait_for_timeout(800)
    page.screenshot(path=SHOTS / f"layout-{name}-{width}.png", animations="disabled")
    page.set_viewport_size({"width": width, "height": 900})


def grid_columns(page, grid: int = 0) -> tuple[list[dict], list[dict]]:
    """The columns of the page's ``grid``-th data frame as last drawn (header, start, end; those wholly in view)
    and the texts drawn in them, each with the column it belongs to. It waits for the grid's first frame: on a slow
    or busy CPU the canvas can draw after the script has finished and the charts have settled."""
    page.wait_for_function("grid => window.gridTexts.some(d => d.grid === grid)", arg=grid)
    drawn = [d for d in page.evaluate("window.gridTexts") if d["grid"] == grid]
    top = min(d["y"] for d in drawn)
    first = min((d for d in drawn if d["y"] == top), key=lambda d: d["x"])["text"]
    last_frame = max(i for i, d in enumerate(drawn) if d["y"] == top and d["text"] == first)
    texts = list({(d["text"], d["x"], d["y"]): d for d in drawn[last_frame:]}.values())
    headers = sorted((d for d in texts if d["y"] == top), key=lambda d: d["x"])
    canvas = max(d["canvas"] for d in texts)
    starts = [h["x"] - PADDING for h in headers]
    columns = [{"header": h["text"], "start": start, "end": end}
               for h, start, end in zip(headers, starts, [*starts[1:], canvas]) if end <= canvas]
    if scrolls_sideways(page, grid):  # the last column drawn runs on out of view: its end is not known
        columns = columns[:-1]
    for d in texts:
        anchor = d["x"] if d["align"] in ("start", "left") else d["x"] - d["width"] / 2 if d["align"] == "center" \
            else d["x"] - d["width"]
        d["left"], d["right"] = anchor, anchor + d["width"]
        d["column"] = next((c for c in columns if c["start"] <= d["x"] < c["end"] + 1), None)
    return columns, [d for d in texts if d["column"] is not None]


def cut_texts(page, grid: int = 0) -> list[str]:
    """The texts of the grid's columns in view that run past their column's edges."""
    _, texts = grid_columns(page, grid)
    return [f"{d['text']!r} in {d['column']['header']!r}" for d in texts
            if d["left"] < d["column"]["start"] - 0.5 or d["right"] > d["column"]["end"] + 0.5]


def scrolls_sideways(page, grid: int = 0) -> bool:
    return page.evaluate("""(i) => { const s = document.querySelectorAll('[data-testid=stDataFrame]')[i]
        .querySelector('.dvn-scroller'); return s.scrollWidth > s.clientWidth + 1; }""", grid)


def truncated(page, selector: str) -> list[str]:
    """The texts of the elements ``selector`` finds that are cut short (an ellipsis or a clipped overflow)."""
    return page.evaluate("""(sel) => [...document.querySelectorAll(sel)]
        .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)""", selector)


def broken_words(page, selector: str) -> list[str]:
    """The words of the elements ``selector`` finds that are broken across two lines."""
    return page.evaluate("""(sel) => [...document.querySelectorAll(sel)].flatMap(e => {
        const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT), broken = [];
        for (let text = walker.nextNode(); text; text = walker.nextNode()) {
            for (const word of text.data.matchAll(/\\S+/g)) {
                const range = document.createRange();
                range.setStart(text, word.index);
                range.setEnd(text, word.index + word[0].length);
                if (new Set([...range.getClientRects()].map(r => Math.round(r.top))).size > 1) broken.push(word[0]);
            }
        }
        return broken; })""", selector)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_leaderboard_fits_the_page_without_cutting_a_name(browser, server, width):
    page = open_at(browser, server, width)
    visit(page, "Leaderboard")
    settle(page)
    columns, texts = grid_columns(page)
    assert [c["header"] for c in columns] == ["Net", "Dataset", "Test %", "≈ official", "Paper/study", "Δ"]
    assert len(columns) == len(BOARD_MAIN) and not scrolls_sideways(page)
    assert not cut_texts(page)
    names = {d["text"] for d in texts if d["column"]["header"] == "Net"}
    assert {"ResNet-20 (study)", "LeNet (study) · 2 ep", "lenet5 · 5 ep · zoo", "lenet5 · 2 ep"} <= names
    assert not truncated(page, "[data-testid=stMetricValue] > div, [data-testid=stMetricLabel] p")
    # The chart's legend whole, below it: no scroll bar, inside the figure
    legends = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .filter(gd => gd.getBoundingClientRect().width > 0).map(gd => {
            const legend = gd.querySelector('.legend'), figure = gd.getBoundingClientRect();
            const box = legend.getBoundingClientRect();
            return {scroll: Number(legend.querySelector('.scrollbar').getAttribute('height')),
                    inside: box.bottom <= figure.bottom + 1 && box.right <= figure.right + 1,
                    below: box.top >= gd.querySelector('.xtitle').getBoundingClientRect().bottom}; })""")
    assert legends and all(g == {"scroll": 0, "inside": True, "below": True} for g in legends), legends
    shoot(page, "leaderboard", width)
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_inside_the_net_shows_the_layer_tables_counts_whole(browser, server, width):
    run = next(r for r in server[1].finished("mnist") if r.readonly and r.config.model == "ref_vgg_mnist")
    page = open_at(browser, server, width, "inside", **{INPUT_PARAM: "mistake", "run": run.run_id})
    page.locator("h1").filter(has_text="Inside the net").wait_for()
    page.get_by_text("Layer by layer").wait_for()
    settle(page)
    columns, _ = grid_columns(page)
    assert [c["header"] for c in columns] == ["Layer", "Type", "Output", "Params", "FLOPs"]
    assert not cut_texts(page) and not scrolls_sideways(page)
    captions = page.locator(".st-key-heatmaps [data-testid=stImageCaption]")
    assert captions.count() == 3 and not broken_words(page, ".st-key-heatmaps [data-testid=stImageCaption]")
    shoot(page, "inside", width)
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_robustness_pins_each_runs_name_and_data_uncut(browser, server, width):
    page = open_at(browser, server, width)
    visit(page, "Robustness")
    page.get_by_test_id("stMain").get_by_text("CIFAR-10", exact=True).click()
    settle(page)
    columns, texts = grid_columns(page)
    assert [c["header"] for c in columns[:2]] == ["Run", "Data"]
    assert not cut_texts(page)
    measured = [r for r in server[1].finished("cifar10") if r.robustness() is not None]
    assert len(measured) > 10  # the zoo's twelve and the store's
    assert len({d["text"] for d in texts if d["column"]["header"] == "Run"}) == 1 + len(measured)  # and the header
    shoot(page, "robustness", width)
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_training_curves_chips_show_whole_run_names(browser, server, width):
    page = open_at(browser, server, width)
    visit(page, "Training curves")
    settle(page)
    # Each chip's name neither ends in an ellipsis nor runs out of the box of chips (which scrolled sideways),
    # and each button of the axis choice lies inside the block it is in (a column clipped it)
    chips = page.evaluate("""() => [...document.querySelectorAll('[data-testid=stMultiSelect] [data-tag]')]
        .map(tag => { const name = tag.querySelector('span');
                      const box = tag.closest('[data-testid=stMultiSelectTagsContainer]');
                      return [name.textContent, name.scrollWidth <= name.clientWidth + 1
                              && tag.getBoundingClientRect().right <= box.getBoundingClientRect().right + 1]; })""")
    assert len(chips) == 3 and all(whole for _, whole in chips), chips
    buttons = page.evaluate("""() => [...document.querySelectorAll('[data-testid=stButtonGroup] button')]
        .filter(b => b.closest('[data-testid=stMain]') && /epoch|time/.test(b.textContent)).map(b => {
            const block = b.closest('[data-testid=stColumn], [data-testid=stMainBlockContainer]');
            return [b.textContent, b.getBoundingClientRect().right <= block.getBoundingClientRect().right + 1]; })""")
    assert len(buttons) == 2 and all(inside for _, inside in buttons), buttons
    shoot(page, "curves", width)
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_datasets_never_break_a_class_name_inside_a_word(browser, server, width):
    page = open_at(browser, server, width)
    visit(page, "Datasets")
    page.get_by_test_id("stMain").get_by_text("CIFAR-10", exact=True).click()
    page.get_by_text("The mean image of each class").wait_for()
    settle(page)
    lines = page.evaluate("""() => {
        const classes = new Set(['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
                                 'truck']);
        return [...document.querySelectorAll('[data-testid=stImageCaption], [data-testid=stMarkdown] strong')]
            .filter(e => classes.has(e.textContent.trim())).map(e => {
                const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT), tops = new Set();
                for (let text = walker.nextNode(); text; text = walker.nextNode()) {  // a line box per line
                    const range = document.createRange();
                    range.selectNodeContents(text);
                    [...range.getClientRects()].forEach(r => tops.add(Math.round(r.top)));
                }
                const box = e.closest('[data-testid=stMarkdown]') || e;
                return [e.textContent.trim(), tops.size,
                        e.getBoundingClientRect().right <= box.getBoundingClientRect().right + 1];
            }); }""")
    assert len(lines) == 20, lines  # each class's label and its mean image's caption
    assert all(rows == 1 and whole for _, rows, whole in lines), [line for line in lines if line[1:] != [1, True]]
    shoot(page, "datasets", width)
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_click_on_a_confusion_matrix_cell_chooses_it(browser, server, width):
    run = next(r for r in server[1].finished("cifar10") if r.readonly and r.config.model == "lenet5")
    evaluation = run.evaluation()
    classes = evaluation["classes"]
    true, predicted = classes.index("automobile"), classes.index("truck")
    page = open_at(browser, server, width, "errors", run=run.run_id)
    settle(page)
    before = page.get_by_text("test images of class").inner_text()
    assert f"of class {classes[true]} predicted as {classes[predicted]}" not in before  # not the first cell shown
    chart = page.locator(".st-key-confusion_matrix .js-plotly-plot")
    chart.scroll_into_view_if_needed()
    x, y = chart.evaluate("""(gd, cell) => { const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const box = gd.getBoundingClientRect();
        return [box.left + xa._offset + xa.l2p(cell[1]), box.top + ya._offset + ya.l2p(cell[0])]; }""",
                          [true, predicted])
    page.mouse.move(x, y)
    page.mouse.click(x + 3, y - 3)  # anywhere in the cell
    count = evaluation["confusion_matrix"][true][predicted]
    # the caption under the two select boxes, which a click sets as if they were chosen
    page.get_by_text(f"{count} test images of class {classes[true]} predicted as {classes[predicted]}").wait_for()
    settle(page)
    assert not truncated(page, "[data-testid=stMain] [data-testid=stPageLink-NavLink] p")  # "Where each model lo…"
    shoot(page, "errors", width)
    page.close()
