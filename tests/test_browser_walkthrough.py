"""A newcomer's first ten minutes, as issue 39 walked them, repeated in Chromium in one pass: a fresh server on an
empty home with the shipped zoo and a data folder, every page at 1400 and at 1000 px, and each problem that walk
found looked for again. The pages' layout is measured in detail by tests/test_browser_layout.py, the first paint's
time by bench/first_view.py; here the walk itself must find none of the problems:

- the first page is the study, its title and table there before anything else is asked for;
- no page says "Reference %", "Δ reference" or names a row ``ref_*``; the study's rows come first;
- the Train page's "Reproduce the study" table gives the zoo's figure for each of the five nets, and no caption says
  "the official of";
- a job cancelled while it waits to start is "cancelled before it started", with Resume, not failed;
- a job's Log shows what it logged; the model just trained answers on Draw a digit;
- a click on a cell of the confusion matrix chooses it;
- a text file named .png is refused in words a user knows (no "Pillow"), and the uploader takes TIFF;
- no grid scrolls sideways or cuts a name, no static table is wider than its block, no button's label ends in an
  ellipsis; no class name breaks inside a word;
- no page shows an exception. Screenshots: artifacts/screenshots/walkthrough-<page>-<width>.png.
"""

import gzip
import os
import re

import pytest
from test_browser import CHROMIUM, PAGES, READY, SHOTS, stroke, train_on, visit
from test_browser_layout import GRID_HOOK, broken_words, cut_texts, scrolls_sideways

from convnets import data as datamod
from dashboard.serve import serving

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"the browser tests drive {CHROMIUM}, "
                                "which is missing (apt-get install chromium)")

WIDTHS = (1400, 1000)
MAIN = "[data-testid=stMain]"
CARD = "[class*=st-key-job_card_]"
WORDS_OF_THE_OLD_PAGES = ("Reference %", "Δ reference", "ref_", "the official of")


@pytest.fixture(scope="module")
def fresh_server(synthetic_root, tmp_path_factory):
    """A fresh clone's server: an empty home, the zoo it ships, and a data folder of small synthetic datasets."""
    data = tmp_path_factory.mktemp("walk-data")
    (data / datamod.JPEG_DIR).symlink_to(synthetic_root[0] / datamod.JPEG_DIR)
    (data / "MNIST" / "raw").mkdir(parents=True)
    for packed in (synthetic_root[0] / "MNIST" / "raw").glob("*.gz"):  # unpacked idx files: no checksum to patch
        (data / "MNIST" / "raw" / packed.stem).write_bytes(gzip.decompress(packed.read_bytes()))
    home = tmp_path_factory.mktemp("walk-home")
    env = {**os.environ, "CONVNETS_HOME": str(home), "CONVNETS_OFFLINE": "1", "CONVNETS_DATA": str(data)}
    env.pop("CONVNETS_ZOO", None)
    with open(home / "streamlit.log", "wb") as log, serving(env, log, start_timeout=60) as (_, url):
        yield url


def go(page, title: str) -> None:
    """Open a page from the sidebar; then its grids alone are drawn again (a pixel narrower, then as wide), so that
    the texts recorded are this page's, not the last one's fading out."""
    visit(page, title)
    page.wait_for_timeout(1000)
    page.evaluate("window.gridTexts = []")
    for width in (WIDTHS[0] - 1, WIDTHS[0]):
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(400)


# The labels of the main block's buttons that end in an ellipsis ("Random C…"): wider than their button.
CUT_LABELS = f"""[...document.querySelectorAll('{MAIN} button .stMarkdownEllipsis')]
    .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)"""

# The static tables (st.table) wider than the block they are in: their last columns are cut off.
WIDE_TABLES = f"""[...document.querySelectorAll('{MAIN} [data-testid=stTable]')].filter(box => {{
    const table = box.querySelector('table');
    return table && table.getBoundingClientRect().right > box.getBoundingClientRect().right + 1;
}}).map(box => box.innerText.slice(0, 40))"""


def texts(page) -> str:
    """What the page says: its main block's text and every text its data grids drew on their canvases."""
    drawn = " ".join(d["text"] for d in page.evaluate("window.gridTexts"))
    return page.locator(MAIN).inner_text() + " " + drawn


def look(page, name: str) -> None:
    """The page at each width: no exception, no old word, no grid cut or scrolled sideways, no static table or
    button label cut;
    a screenshot."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(1500)  # charts and grids redraw at the new width
        page.wait_for_selector(READY)
        assert page.locator("[data-testid=stException]").count() == 0, name
        said = texts(page)
        assert not [w for w in WORDS_OF_THE_OLD_PAGES if w in said], (name, width)
        for grid in range(page.locator("[data-testid=stDataFrame]").count()):
            if page.locator("[data-testid=stDataFrame]").nth(grid).is_visible():
                assert not scrolls_sideways(page, grid), (name, width, grid)
                assert not cut_texts(page, grid), (name, width, grid)
        assert not page.evaluate(CUT_LABELS), (name, width)
        assert not page.evaluate(WIDE_TABLES), (name, width)
        height = page.evaluate(f"document.querySelector('{MAIN}').scrollHeight")
        page.set_viewport_size({"width": width, "height": max(900, height)})
        page.wait_for_timeout(800)
        page.screenshot(path=SHOTS / f"walkthrough-{name}-{width}.png", animations="disabled")
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def card_of(page, words: str):
    """The Train page's job card that says ``words`` (its state, its number of epochs)."""
    return page.locator(MAIN).locator(CARD).filter(has_text=re.compile(rf"\b{words}\b")).last


def launch(page, epochs: int, seed: int) -> None:
    """Queue LeNet-5 on the data folder's MNIST from the Train page's form."""
    main = page.locator(MAIN)
    train_on(page, "MNIST")
    main.get_by_test_id("stSelectbox").nth(1).click()
    page.get_by_role("option", name=re.compile(r"^lenet5 — ")).click()
    page.wait_for_selector(READY)
    form = main.get_by_test_id("stForm")
    form.get_by_label("Epochs", exact=True).fill(str(epochs))
    form.get_by_label("Batch size", exact=True).fill("100")
    form.get_by_label("Seed", exact=True).fill(str(seed))
    form.locator("[data-testid=stFormSubmitButton] button").click()
    card_of(page, f"{epochs} epochs").wait_for()


def zoo_figures(page) -> int:
    """How many figures the Zoo % column of the study's table shows (a dash where the zoo has none)."""
    for table in page.locator("[data-testid=stTable]").all():
        headers = [h.strip() for h in table.locator("thead th").all_inner_texts()]
        if "Zoo %" in headers:
            column = headers.index("Zoo %")
            cells = [row.locator("th, td").nth(column).inner_text().strip()
                     for row in table.locator("tbody tr").all()]
            return sum(bool(re.fullmatch(r"\d+\.\d\d", cell)) for cell in cells)
    raise AssertionError("no table with a Zoo % column")


def test_a_newcomers_walkthrough_finds_none_of_the_problems_reported(fresh_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": WIDTHS[0], "height": 900})
        page.set_default_timeout(60_000)
        page.add_init_script(GRID_HOOK)
        page.goto(fresh_server)
        page.locator("h1").filter(has_text="The study").wait_for(timeout=120_000)  # the first page is the study's
        page.locator("[data-testid=stTable]").first.wait_for()
        page.wait_for_selector(READY, timeout=180_000)  # ...then PyTorch and the models load, once
        assert "ResNet-20" in page.locator(MAIN).inner_text()
        look(page, "study")

        go(page, "Leaderboard")
        names = [d["text"] for d in page.evaluate("window.gridTexts") if d["text"].endswith("(study)")]
        assert names, "the study's rows are named as the study's"
        look(page, "leaderboard")

        go(page, "Train")
        assert zoo_figures(page) == 5, "the zoo's figure for each of the study's five nets"
        launch(page, epochs=200, seed=0)  # trains; the next waits its turn, and is cancelled before it starts
        launch(page, epochs=3, seed=1)
        card_of(page, "3 epochs").get_by_role("button", name=re.compile("Cancel")).click()
        cancelled = card_of(page, "3 epochs")
        cancelled.get_by_text("cancelled before it started").wait_for()
        assert cancelled.get_by_role("button", name=re.compile("Resume")).count() == 1
        assert page.get_by_text("the job ended early").count() == 0
        running = card_of(page, "200 epochs")
        running.get_by_text(re.compile(r"\brunning\b")).wait_for(timeout=120_000)
        running.get_by_text("Log", exact=True).click()  # what it has logged so far, while it trains
        running.get_by_text(re.compile(r"epoch \d+/200")).first.wait_for(timeout=120_000)
        running.get_by_text("finished", exact=True).wait_for(timeout=300_000)
        look(page, "train")

        go(page, "Draw a digit")
        canvas = page.locator("canvas").last
        canvas.wait_for()
        page.wait_for_timeout(500)
        page.wait_for_selector(READY)
        stroke(page, canvas.bounding_box(), [(70, 60), (210, 60), (120, 240)])  # a 7
        # the model just trained, named by what its recipe changed (the batch; its hyphen unbroken)
        trained = r"^lenet5 · 200 ep · batch\u2011size 100 · [0-9a-f]{6}$"
        page.get_by_text(re.compile(trained)).first.wait_for()
        look(page, "draw")

        go(page, "Errors")
        chart = page.locator(".st-key-confusion_matrix .js-plotly-plot")
        before = page.get_by_text(re.compile("test images? of class")).inner_text()
        x, y = chart.evaluate("""gd => { const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const box = gd.getBoundingClientRect();
            return [box.left + xa._offset + xa.l2p(0), box.top + ya._offset + ya.l2p(0)]; }""")
        page.mouse.move(x, y)
        page.mouse.click(x, y)  # the top-left cell: the first class, right
        page.wait_for_function("before => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]"
                               ".some(e => /test images? of class/.test(e.innerText) && e.innerText !== before)",
                               arg=before)
        look(page, "errors")

        go(page, "Classify a photo")
        upload = page.locator("input[type=file]")
        assert ".tiff" in (upload.get_attribute("accept") or "")
        upload.set_input_files(files=[{"name": "notes.png", "mimeType": "image/png",
                                       "buffer": b"a shopping list, not a photo\n"}])
        refusal = page.get_by_text(re.compile("not a PNG, JPEG, WebP, GIF, BMP or TIFF image"))
        refusal.wait_for()
        assert "Pillow" not in page.locator(MAIN).inner_text()
        look(page, "photo")

        go(page, "Datasets")
        page.get_by_test_id("stMain").get_by_role("radio", name="CIFAR-10", exact=True).click()
        page.get_by_text("automobile").first.wait_for()
        page.wait_for_selector(READY)
        assert not broken_words(page, f"{MAIN} [data-testid=stImageCaption], {MAIN} [data-testid=stMarkdown]")
        look(page, "datasets")

        for name in ("curves", "compare", "robustness", "inside"):
            go(page, PAGES[name])
            look(page, name)
        browser.close()
