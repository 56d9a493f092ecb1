"""Real-browser tests: `streamlit run dashboard/app.py` driven by Chromium through Playwright.

The server reads a store trained in this process (predictions need only the store) and a copy of the synthetic data
folder that it can read without this process's patched checksums (the CIFAR-10 folder needs none, and MNIST idx
files stored unpacked are not checked): a job launched from the Train page trains on it, and the pages show its
test images.
Screenshots of every page land in artifacts/screenshots/.
"""

import gzip
import io
import os
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from ui_helpers import built_store, copy_runs  # noqa: F401 - built_store is a fixture

from convnets import data as datamod
from convnets.imaging import prepare_drawing
from dashboard.serve import ROOT, serving

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"the browser tests drive {CHROMIUM}, "
                                "which is missing (apt-get install chromium)")

SHOTS = ROOT / "artifacts" / "screenshots"
READY = "[data-testid=stApp][data-test-script-state=notRunning]"
PAGES = {"study": "The study", "leaderboard": "Leaderboard", "curves": "Training curves", "errors": "Errors",
         "compare": "Compare", "robustness": "Robustness", "draw": "Draw a digit", "photo": "Classify a photo",
         "inside": "Inside the net", "train": "Train", "datasets": "Datasets"}
HEAT_MAPS = ".st-key-heatmaps [data-testid=stImage] img"
RUN_ID = re.compile(r"lenet5-cifar10-[0-9a-f]{10}")
CANVAS_SIDE = 336  # pages/draw.py: large enough for a finger (it was 280)
PEN = 24  # pages/draw.py: STROKE_WIDTH


@pytest.fixture(scope="module")
def server(built_store, synthetic_root, tmp_path_factory):  # noqa: F811 - the fixture imported above
    """A dashboard server on a private copy of the tiny store; yields its URL and its home."""
    home = copy_runs(built_store, tmp_path_factory.mktemp("browser-home"))
    data = tmp_path_factory.mktemp("browser-data")
    (data / datamod.JPEG_DIR).symlink_to(synthetic_root[0] / datamod.JPEG_DIR)
    (data / "MNIST" / "raw").mkdir(parents=True)
    for packed in (synthetic_root[0] / "MNIST" / "raw").glob("*.gz"):
        (data / "MNIST" / "raw" / packed.stem).write_bytes(gzip.decompress(packed.read_bytes()))
    env = {**os.environ, "CONVNETS_HOME": str(home), "CONVNETS_ZOO": "", "CONVNETS_OFFLINE": "1",
           "CONVNETS_DATA": str(data), "CONVNETS_SNAPSHOT_SECONDS": "0.3"}
    with open(home / "streamlit.log", "wb") as log, serving(env, log, start_timeout=60) as (_, url):
        yield url, home


@pytest.fixture(scope="module")
def page(server):
    """One tab for the whole module: moving between pages through the sidebar, as a user does, spares each
    test a full reload of Streamlit's scripts (seconds each on a busy two-core machine)."""
    from playwright.sync_api import sync_playwright

    url, _ = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        page.set_default_timeout(30_000)
        page.goto(url)
        page.wait_for_selector(READY)
        yield page
        browser.close()


def visit(page, title: str) -> None:
    """Open a page from the sidebar's navigation and wait until its script has finished."""
    whole = re.compile(rf"{re.escape(title)}$")  # "Train", not "Training curves"; links start with an icon name
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=whole).click()
    page.locator("h1").filter(has_text=whole).wait_for()
    page.wait_for_selector(READY)


def screenshot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to fit it first."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": max(900, height)})
    page.wait_for_timeout(500)  # let the charts resize
    page.screenshot(path=SHOTS / f"{name}.png", animations="disabled")
    page.set_viewport_size({"width": 1400, "height": 900})


def test_a_pages_address_typed_by_hand_opens_it(page, server):
    """A handout's or a bookmark's address opens its page, the study's too: Streamlit serves the default page at the
    root alone, and answered /study with "Page not found". Its query goes with it."""
    for name, address in (("study", "/?note=handout"), ("leaderboard", "/leaderboard?note=handout")):
        page.goto(f"{server[0]}/{name}?note=handout")
        page.locator("h1").filter(has_text=re.compile(rf"^{PAGES[name]}$")).wait_for()
        page.wait_for_selector(READY)
        assert page.url == server[0] + address
        assert page.get_by_text("Page not found").count() == 0


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders(page, name):
    visit(page, PAGES[name])
    page.wait_for_timeout(1000)  # charts draw after the script ends
    assert page.locator("[data-testid=stException]").count() == 0
    screenshot(page, name)


def stroke(page, box: dict, points: list[tuple[float, float]]) -> float:
    """Drag the mouse through the points (canvas coordinates); returns the moment the button goes up."""
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for (xa, ya), (xb, yb) in zip(points, points[1:]):
        for i in range(1, 11):
            page.mouse.move(box["x"] + xa + (xb - xa) * i / 10, box["y"] + ya + (yb - ya) * i / 10)
    page.mouse.up()
    return time.perf_counter()


def test_drawing_a_digit_shows_every_mnist_models_prediction(page):
    visit(page, "Draw a digit")
    canvas = page.locator("canvas").last  # the canvas lives in the component's shadow root, which locators pierce
    canvas.wait_for()
    page.wait_for_timeout(500)  # once mounted, the canvas reports its empty drawing, which reruns the page...
    page.wait_for_selector(READY)  # ...so let that rerun finish before drawing
    box = canvas.bounding_box()
    assert round(box["width"]) == CANVAS_SIDE and round(box["height"]) == CANVAS_SIDE

    released = stroke(page, box, [(70, 60), (210, 60), (120, 240)])  # a 7
    page.wait_for_function("document.querySelectorAll('[data-testid=stMain] .js-plotly-plot').length >= 2")
    first = time.perf_counter() - released
    assert page.locator("[data-testid=stMetric]").count() == 2  # both MNIST models, side by side

    image = page.locator("[data-testid=stImage] img").first
    before = image.get_attribute("src")
    released = stroke(page, box, [(100, 150), (200, 150)])  # a crossbar
    page.wait_for_function("src => { const i = document.querySelector('[data-testid=stImage] img');"
                           " return i && i.getAttribute('src') !== src; }", arg=before)
    page.wait_for_selector(READY)
    second = time.perf_counter() - released
    print(f"\nmouse-up → predictions shown: first stroke {first:.2f} s, next stroke {second:.2f} s")
    screenshot(page, "draw-predictions")

    page.get_by_role("button", name=re.compile("Clear")).click()
    page.wait_for_selector("text=nothing drawn yet")


def open_canvas(page, navigate: bool = True) -> dict:
    """The Draw page's canvas, mounted and reported to the server; returns its box on the page. `navigate`: go
    there through the sidebar first (False: the page is already on its way there)."""
    if navigate:
        visit(page, "Draw a digit")
    canvas = page.locator("canvas").last
    canvas.wait_for()
    page.wait_for_timeout(500)
    page.wait_for_selector(READY)
    return canvas.bounding_box()


# What the topmost element is at a point of the canvas, asked inside the component's shadow root, where the canvas
# and anything laid over it (the package's own toolbar floats over the top-right corner) live.
TOPMOST = """([x, y]) => {
    const host = [...document.querySelectorAll('*')].find(e => e.shadowRoot && e.shadowRoot.querySelector('canvas'));
    const hit = host.shadowRoot.elementFromPoint(x, y);
    return hit ? hit.tagName.toLowerCase() + '.' + hit.className : 'nothing';
}"""


def model_input(page) -> np.ndarray:
    """The 28×28 input the models were given, as the page shows it (enlarged), in grey."""
    src = page.locator("[data-testid=stImage] img").first.get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(page.request.get(urllib.parse.urljoin(page.url, src)).body())).convert("L"))


def test_nothing_covers_the_canvas_and_a_digit_begun_in_its_top_right_corner_is_read(page):
    box = open_canvas(page)
    inset = 4
    corners = [(x, y) for x in (inset, CANVAS_SIDE - inset) for y in (inset, CANVAS_SIDE - inset)]
    hits = [page.evaluate(TOPMOST, [box["x"] + x, box["y"] + y]) for x, y in corners]
    assert all(hit.startswith("canvas.") for hit in hits), hits

    right, bottom = CANVAS_SIDE - 14, CANVAS_SIDE - 14
    stroke(page, box, [(right, 10), (right, bottom)])  # a large 1, begun in the very corner
    page.wait_for_function("document.querySelectorAll('[data-testid=stMain] .js-plotly-plot').length >= 2")
    page.wait_for_selector(READY)
    ink = model_input(page) > 0
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    assert rows[-1] - rows[0] > 3 * (cols[-1] - cols[0])  # the whole stroke: a tall, narrow bar
    assert page.get_by_text("nothing drawn").count() == 0
    screenshot(page, "draw-corner")

    page.get_by_role("button", name=re.compile("Clear")).click()
    page.wait_for_selector("text=nothing drawn yet")


def test_a_scribble_says_so_and_undo_takes_back_the_last_stroke(page):
    box = open_canvas(page)
    zigzag = [(x, 2 if i % 2 == 0 else CANVAS_SIDE - 2) for i, x in enumerate(range(4, CANVAS_SIDE, 16))]
    stroke(page, box, zigzag)
    page.wait_for_selector("text=too much ink: this looks like a scribble, not a digit")
    screenshot(page, "draw-scribble")
    page.get_by_role("button", name=re.compile("Clear")).click()
    page.wait_for_selector("text=nothing drawn yet")

    stroke(page, box, [(170, 40), (170, 290)])  # a 1...
    page.wait_for_selector("[data-testid=stImage] img")
    page.wait_for_selector(READY)
    one = model_input(page)
    stroke(page, box, [(80, 60), (260, 60)])  # ...and a bar across its top: a 7, or a T
    page.wait_for_function("src => { const i = document.querySelector('[data-testid=stImage] img');"
                           " return i && i.getAttribute('src') !== src; }", arg=page.locator(
                               "[data-testid=stImage] img").first.get_attribute("src"))
    page.wait_for_selector(READY)
    assert not np.array_equal(model_input(page), one)
    seven = page.locator("[data-testid=stImage] img").first.get_attribute("src")
    page.get_by_role("button", name=re.compile("Undo")).click()
    page.wait_for_function("src => { const i = document.querySelector('[data-testid=stImage] img');"
                           " return i && i.getAttribute('src') !== src; }", arg=seven)
    page.wait_for_selector(READY)
    assert np.array_equal(model_input(page), one)  # the bar is gone, the 1 is read again
    screenshot(page, "draw-undo")
    page.get_by_role("button", name=re.compile("Undo")).click()
    page.wait_for_selector("text=(nothing drawn)")


# Three shapes that nothing reads alike, in canvas coordinates: a bar, a 7 and a ring.
SHAPES = {
    "bar": [(168, 40), (168, 296)],
    "seven": [(70, 60), (266, 60), (130, 290)],
    "ring": [(168 + 90 * np.sin(a), 168 - 125 * np.cos(a)) for a in np.linspace(0, 2 * np.pi, 17)],
}


def expected_input(points: list[tuple[float, float]]) -> np.ndarray:
    """The stroke drawn with the canvas's pen (round ends and joints), prepared as the page prepares a drawing: the
    input a session that drew it should show, up to the canvas's smoothing of the line."""
    canvas = Image.new("L", (CANVAS_SIDE, CANVAS_SIDE))
    pen = ImageDraw.Draw(canvas)
    pen.line(points, fill=255, width=PEN, joint="curve")
    for x, y in (points[0], points[-1]):
        pen.ellipse((x - PEN / 2, y - PEN / 2, x + PEN / 2, y + PEN / 2), fill=255)
    return prepare_drawing(np.asarray(canvas), on_black=True).image


def strokes_at_once(pages: list, boxes: list[dict], shapes: list[list[tuple[float, float]]]) -> None:
    """Every page presses, moves a step and releases in turn, so that the strokes' updates reach the server
    within moments of each other and their reruns overlap there."""
    paths = [[(xa + (xb - xa) * i / 10, ya + (yb - ya) * i / 10) for (xa, ya), (xb, yb) in zip(s, s[1:])
              for i in range(1, 11)] for s in shapes]
    for page, box, shape in zip(pages, boxes, shapes):
        page.mouse.move(box["x"] + shape[0][0], box["y"] + shape[0][1])
        page.mouse.down()
    for step in range(max(map(len, paths))):
        for page, box, path in zip(pages, boxes, paths):
            if step < len(path):
                page.mouse.move(box["x"] + path[step][0], box["y"] + path[step][1])
    for page in pages:
        page.mouse.up()


def test_sessions_drawing_at_once_each_see_their_own_drawing_read(server, page):
    url, _ = server
    contexts = [page.context.browser.new_context(viewport={"width": 1400, "height": 900}) for _ in SHAPES]
    try:
        sessions = [context.new_page() for context in contexts]
        for session in sessions:
            session.set_default_timeout(60_000)
            session.goto(f"{url}/draw", wait_until="commit")  # all three load at once
        boxes = [open_canvas(session, navigate=False) for session in sessions]
        strokes_at_once(sessions, boxes, list(SHAPES.values()))
        for session in sessions:
            session.wait_for_selector("[data-testid=stMain] [data-testid=stImage] img")
            session.wait_for_selector(READY)
            assert session.locator("[data-testid=stException]").count() == 0
        seen = [model_input(session)[2::4, 2::4].astype(float) for session in sessions]  # one pixel per block
        expected = [expected_input(shape).astype(float) for shape in SHAPES.values()]
        for name, image, session in zip(SHAPES, seen, sessions):
            likeness = {other: np.corrcoef(image.ravel(), e.ravel())[0, 1] for other, e in zip(SHAPES, expected)}
            assert max(likeness, key=likeness.get) == name and likeness[name] > 0.9, (name, likeness)
            screenshot(session, f"draw-session-{name}")
    finally:
        for context in contexts:
            context.close()


def test_inside_the_net_from_the_draw_page_shows_a_heat_map_for_every_mnist_model(page):
    box = open_canvas(page)
    stroke(page, box, [(70, 60), (210, 60), (120, 240)])  # a 7
    link = page.get_by_role("link", name=re.compile("See where each model looks"))
    link.wait_for()
    page.wait_for_selector(READY)
    link.click()
    page.locator("h1").filter(has_text="Inside the net").wait_for()
    page.wait_for_selector(READY)
    page.wait_for_function(f"document.querySelectorAll('{HEAT_MAPS}').length >= 2")
    assert page.locator(HEAT_MAPS).count() == 2  # both MNIST models of the store, side by side
    captions = page.locator(".st-key-heatmaps [data-testid=stImageCaption]").all_inner_texts()
    assert sorted(c.split(" · ")[0] for c in captions) == ["LeNet (study)", "lenet5"]
    assert page.locator("[data-testid=stImageCaption]").first.inner_text().startswith("your drawing")
    assert page.locator("[data-testid=stException]").count() == 0
    page.wait_for_timeout(1000)  # the probability charts draw after the script ends
    screenshot(page, "inside-drawing")


def test_uploading_a_photo_shows_the_top_three_classes(page):
    visit(page, "Classify a photo")
    pixels = np.zeros((96, 128, 3), np.uint8)
    pixels[20:60, 30:90] = (40, 180, 220)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    page.locator("input[type=file]").set_input_files(
        files=[{"name": "photo.png", "mimeType": "image/png", "buffer": buffer.getvalue()}])
    page.wait_for_selector("[data-testid=stProgress]")
    page.wait_for_selector(READY)
    bars = page.locator("[data-testid=stProgress]")
    assert bars.count() == 3
    assert re.search(r"\d+\.\d%", bars.first.inner_text())
    screenshot(page, "photo-predictions")


def set_data_folder(page, value: str) -> None:
    field = page.get_by_test_id("stSidebar").get_by_role("textbox", name="Data folder")
    field.fill(value)
    field.press("Enter")
    page.wait_for_timeout(300)
    page.wait_for_selector(READY)


def test_the_train_page_refuses_a_missing_data_folder_and_the_folder_survives_a_reload(server, page, tmp_path):
    from playwright.sync_api import expect

    _, home = server
    field = page.get_by_test_id("stSidebar").get_by_role("textbox", name="Data folder")
    visit(page, "Train")
    before = field.input_value()
    missing = tmp_path / "typo"
    try:
        set_data_folder(page, str(missing))
        page.get_by_text(f"the data folder {missing} does not exist").wait_for()
        assert page.locator("[data-testid=stFormSubmitButton] button").is_disabled()
        screenshot(page, "train-missing-folder")
        page.reload()
        page.wait_for_selector(READY)
        # remembered on disk, not only in the closed session; expect retries, since the reloaded page can be
        # idle for a moment before its first run fills the sidebar (an empty field failed one CI run)
        expect(field).to_have_value(str(missing))
    finally:
        set_data_folder(page, before)
    assert page.locator("[data-testid=stFormSubmitButton] button").is_enabled()
    assert (home / "settings.json").read_text().count(before) == 1


def test_comparing_two_runs_shows_their_table_test_and_disagreements(server, page):
    from convnets.store import RunStore

    _, home = server
    store = RunStore(home, zoo="")
    runs = sorted(store.finished("mnist"), key=lambda r: r.config.model)  # lenet5, ref_lenet_mnist
    for run, wrong in zip(runs, (range(10, 14), range(0, 9))):  # both get every synthetic digit right: make them differ
        p = run.predictions()
        p.predicted[list(wrong)] = (p.labels[list(wrong)] + 3) % 10
        run.save_predictions(p)
    visit(page, "Compare")
    main = page.get_by_test_id("stMain")
    main.get_by_text("McNemar p").first.wait_for()
    assert page.locator("[data-testid=stException]").count() == 0
    cards = main.locator("[data-testid=stMetric]")
    assert cards.count() == 4
    assert re.search(r"\d+\.\d\d%", cards.nth(0).inner_text()) and "points" in cards.nth(2).inner_text()
    assert main.get_by_text("On the 200 test images of MNIST (official), they disagree on 13:").count() == 1
    assert main.get_by_role("tab", name=re.compile(r"Only A right \(\d+\)")).count() == 1
    page.wait_for_timeout(1000)  # the charts and the images draw after the script ends
    first_tab = main.get_by_role("tabpanel").first
    assert first_tab.locator("[data-testid=stImage] img").count() in (4, 9)  # the test images only A gets right
    screenshot(page, "compare-runs")
    main.get_by_role("tab", name=re.compile(r"Only B right")).click()
    page.wait_for_timeout(500)
    main.get_by_text("One cell of the confusion matrix, both runs").scroll_into_view_if_needed()
    screenshot(page, "compare-only-b")


def train_on(page, dataset: str) -> None:
    """Choose the Train page's dataset (a select box: the registry's datasets and "Your folder…")."""
    page.get_by_test_id("stMain").get_by_test_id("stSelectbox").first.click()
    page.get_by_role("option", name=dataset, exact=True).click()
    page.wait_for_selector(READY)


def test_a_job_launched_from_the_train_page_reaches_the_leaderboard(server, page):
    _, home = server
    visit(page, "Train")
    main = page.get_by_test_id("stMain")
    train_on(page, "CIFAR-10")
    main.get_by_text("Data: JPEG copy CIFAR-10").wait_for()  # the rerun for CIFAR-10 has drawn the page...
    page.wait_for_selector(READY)  # ...and finished, so the MNIST form's inputs are gone
    main.get_by_label("Epochs").fill("1")
    main.get_by_label("Batch size").fill("100")
    main.locator("[data-testid=stFormSubmitButton] button").click()

    job_caption = main.get_by_text(RUN_ID)
    job_caption.wait_for()
    run_id = RUN_ID.search(job_caption.inner_text()).group()
    try:
        main.get_by_text("finished", exact=True).wait_for(timeout=120_000)
    finally:
        screenshot(page, "train-job")
    assert (home / "runs" / run_id / "model.safetensors").is_file()

    visit(page, "Leaderboard")
    page.get_by_text("4 finished runs").wait_for()
    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile("Download CSV")).click()
    assert run_id in Path(download.value.path()).read_text()


def test_a_running_jobs_live_view_changes_as_it_trains(server, page):
    """The Train page's card of a running job shows its newest snapshot, and the snapshot moves on while it trains."""
    visit(page, "Train")
    main = page.get_by_test_id("stMain")
    train_on(page, "CIFAR-10")
    main.get_by_label("Epochs").first.fill("30")
    main.get_by_label("Batch size").first.fill("50")
    main.locator("[data-testid=stFormSubmitButton] button").click()
    moment = main.get_by_text(re.compile(r"^Step [0-9,]+ · epoch")).first
    moment.wait_for(timeout=120_000)
    first = moment.inner_text()
    page.wait_for_function("first => [...document.querySelectorAll('[data-testid=stMain] "
                           "[data-testid=stCaptionContainer]')].some(e => e.innerText.startsWith('Step ') "
                           "&& e.innerText !== first)", arg=first, timeout=120_000)
    screenshot(page, "train-live-view")
    main.get_by_text("finished", exact=True).first.wait_for(timeout=300_000)

