"""The shared mode in a real browser (Chromium through Playwright, as tests/test_browser.py): a viewer reaches no
training control, and the server refuses the trainer's own click replayed on a viewer's connection; a wrong password
is refused and slowed; a data folder outside the roots is refused with one message."""

import os
import time

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from test_browser import CHROMIUM, READY, screenshot, visit
from test_sharing import FAST

from convnets import sharing
from dashboard.serve import serving

PASSWORD = "correct horse"
DAMAGED = "lenet5-cifar10-0123456789"  # a job whose card the trainer may remove; nothing trains
STREAM = "**/_stcore/stream"  # Streamlit's websocket


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A shared dashboard on an empty store with one job card; yields its URL, its home and its data root."""
    base = tmp_path_factory.mktemp("shared")
    home, root = base / "home", base / "data"
    (home / "jobs").mkdir(parents=True)
    root.mkdir()
    env = {**os.environ, "CONVNETS_HOME": str(home), "CONVNETS_ZOO": "", "CONVNETS_OFFLINE": "1",
           "CONVNETS_DATA": str(root), "CONVNETS_SHARED": "1", "CONVNETS_DATA_ROOTS": str(root),
           "CONVNETS_TRAINER_PASSWORD_HASH": sharing.hash_password(PASSWORD, FAST)}
    with open(base / "streamlit.log", "wb") as log, serving(env, log, start_timeout=60) as (_, url):
        yield url, home, root


class Tap:
    """A page's websocket to the server, routed through the test: it can hold back what the page sends (kept in
    ``held``) and send the server a message as if the page had."""

    def __init__(self, page):
        self.server, self.holding, self.held = None, False, []
        page.route_web_socket(STREAM, self._route)

    def _route(self, ws) -> None:
        self.server = ws.connect_to_server()
        ws.on_message(self._from_page)

    def _from_page(self, message) -> None:
        if self.holding:
            self.held.append(message)
        else:
            self.server.send(message)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()


def open_tab(browser, url: str):
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.set_default_timeout(30_000)
    tap = Tap(page)
    page.goto(url)
    page.wait_for_selector(READY)
    return page, tap


def sign_in(page, password: str) -> float:
    """Type the password into the sidebar's sign-in and send it; returns the seconds until the page answered."""
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_role("textbox", name="Trainer password").fill(password)
    start = time.perf_counter()
    sidebar.get_by_role("button", name="Sign in").click()
    sidebar.get_by_text("Signed in as the trainer" if password == PASSWORD else "Wrong password: refused.").wait_for()
    answered = time.perf_counter() - start
    page.wait_for_selector(READY)
    return answered


def test_a_viewer_reaches_no_training_control_and_a_replayed_click_changes_nothing(server, browser):
    url, home, root = server
    (home / "jobs" / f"{DAMAGED}.json").write_text('{"config": {"model": "lenet5"}, "created": 1}')
    viewer, viewer_tap = open_tab(browser, url)
    visit(viewer, "Train")
    main = viewer.get_by_test_id("stMain")
    main.get_by_text("need the trainer's sign-in").wait_for()
    assert main.get_by_text(f"{DAMAGED}.json is malformed").count() == 1  # the job's card...
    assert main.get_by_role("button").count() == 0  # ...with no Remove, and no Train form or study button
    assert viewer.get_by_role("textbox", name="Data folder").count() == 0
    assert viewer.get_by_test_id("stSidebar").get_by_text(f"Data folder: {root}").count() == 1
    screenshot(viewer, "shared-viewer-train")

    trainer, trainer_tap = open_tab(browser, url)
    sign_in(trainer, PASSWORD)
    visit(trainer, "Train")
    remove = trainer.get_by_role("button", name="Remove")
    remove.wait_for()
    trainer_tap.holding = True  # the trainer's click is held back: the test replays it
    remove.click()
    trainer.wait_for_timeout(500)
    trainer_tap.holding = False
    clicks = [m for m in trainer_tap.held if BackMsg.FromString(m).WhichOneof("type") == "rerun_script"]
    triggers = [w.id for m in clicks for w in BackMsg.FromString(m).rerun_script.widget_states.widgets
                if w.WhichOneof("value") == "trigger_value" and w.trigger_value]
    assert any(t.endswith(f"forget-{DAMAGED}") for t in triggers), triggers

    for message in clicks:  # the trainer's widget event, crafted into the viewer's session
        viewer_tap.server.send(message)
    viewer.wait_for_timeout(1500)
    viewer.wait_for_selector(READY)
    assert (home / "jobs" / f"{DAMAGED}.json").exists()
    assert viewer.locator("[data-testid=stException]").count() == 0 and main.get_by_role("button").count() == 0

    for message in clicks:  # the same event from the trainer's session does remove the job
        trainer_tap.server.send(message)
    trainer.get_by_text("No jobs yet.").wait_for()
    assert not (home / "jobs" / f"{DAMAGED}.json").exists()


def test_a_wrong_password_is_refused_and_slowed(server, browser):
    url, _, _ = server
    page, _ = open_tab(browser, url)
    wrong = sign_in(page, "correct horsf")
    screenshot(page, "shared-wrong-password")
    right = sign_in(page, PASSWORD)
    print(f"\nwrong password answered in {wrong:.2f} s, the right one in {right:.2f} s")
    assert wrong >= sharing.WRONG_PASSWORD_DELAY
    visit(page, "Train")
    assert page.locator("[data-testid=stFormSubmitButton] button").count() == 1  # the trainer's Train form


def test_a_data_folder_outside_the_roots_is_refused_with_one_message(server, browser, tmp_path):
    url, _, root = server
    page, _ = open_tab(browser, url)
    sign_in(page, PASSWORD)
    field = page.get_by_test_id("stSidebar").get_by_role("textbox", name="Data folder")
    outside = tmp_path / "elsewhere"
    field.fill(str(outside))
    field.press("Enter")
    sidebar_errors = page.get_by_test_id("stSidebar").get_by_test_id("stAlertContentError")
    sidebar_errors.first.wait_for()
    page.wait_for_selector(READY)
    [refused] = [text.splitlines()[-1] for text in sidebar_errors.all_inner_texts()]  # after the icon's name
    assert refused == (f"this shared dashboard reads data only inside {root.resolve()}: {outside} is refused (it is "
                       "outside them)")
    assert field.input_value() == str(root.resolve())
    screenshot(page, "shared-folder-refused")
