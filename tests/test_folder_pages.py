"""Every page on a user's own image folder (issue 37): the Train page's folder check, then the result pages, Draw
and Photo on the folder's runs, with the folder's class names."""

import io
import shutil

import numpy as np
import pytest
from PIL import Image
from test_folders import write_folder
from test_pages import RESULT_PAGES, open_page, texts

from convnets import folders
from convnets.config import RunConfig
from convnets.datasets import records_dir
from convnets.models import default_recipe
from convnets.store import RunStore
from convnets.train import train_run
from dashboard import tables

CLASSES = ["cat", "dog", "owl"]


@pytest.fixture(scope="module")
def folder_store(tmp_path_factory):
    """A store with two runs on a colour folder and one on a greyscale folder, trained once for the module."""
    base = tmp_path_factory.mktemp("folder-store")
    home = base / "home"
    mp = pytest.MonkeyPatch()
    mp.setenv("CONVNETS_HOME", str(home))
    names = {}
    for kind, grey in (("colour", False), ("grey", True)):
        spec = folders.register(write_folder(base / f"{kind}-pets", per_class=20, grey=grey))
        names[kind] = spec.name
        for model in ("lenet5", "ref_lenet") if kind == "colour" else ("lenet5",):
            recipe = default_recipe(model, spec.name).replace(epochs=2, batch_size=16, lr=0.01)
            train_run(RunConfig(model, spec.name, recipe, data_copy="folder"), device="cpu")
    mp.undo()
    return home, names


@pytest.fixture
def on_folders(folder_store, home):
    built, names = folder_store
    shutil.copytree(built / "runs", home / "runs")
    shutil.copytree(records_dir(built), records_dir(home))
    return names


@pytest.mark.parametrize("page", RESULT_PAGES)
def test_every_result_page_works_on_a_folders_runs(on_folders, page):
    at = open_page(page, dataset_filter=on_folders["colour"])
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = texts(at) + " ".join(str(w.options) for w in [*at.button_group, *at.selectbox])
    assert "pets (your folder)" in shown


def test_the_leaderboard_has_no_study_figures_for_a_folder(on_folders):
    at = open_page("leaderboard", dataset_filter=on_folders["colour"])
    table = at.dataframe[0].value
    assert set(table["Model"]) >= {"lenet5", "ref_lenet"} and not at.exception
    assert not set(tables.PUBLISHED) & set(table.columns) and "your folder" in texts(at)
    assert set(tables.PUBLISHED) <= set(open_page("leaderboard").dataframe[0].value.columns)  # all datasets: kept


def test_photo_answers_with_the_folders_classes_and_draw_with_the_grey_folders(on_folders):
    at = open_page("photo", photo_dataset=on_folders["colour"])
    buffer = io.BytesIO()
    Image.fromarray(np.full((50, 40, 3), (200, 30, 30), np.uint8)).save(buffer, "PNG")
    at.file_uploader[0].set_value(("red.png", buffer.getvalue(), "image/png")).run()
    assert not at.exception and "know 3 classes: cat, dog, owl" in texts(at)
    assert at.progress and len(at.progress) % 3 == 0 and {p.text.split(" · ")[0] for p in at.progress} <= set(CLASSES)
    at = open_page("draw")  # the one greyscale dataset with runs: no choice to make
    assert "grey-pets (your folder)'s classes: cat, dog, owl: draw one." in texts(at) and not at.exception


def test_the_train_page_checks_a_folder_and_trains_on_it(tmp_path, home):
    good = write_folder(tmp_path / "shapes", per_class=10)
    Image.new("L", (30, 30), 90).save(good / "owl" / "grey.png")
    (good / "dog" / "readme.txt").write_text("not an image")
    at = open_page("train")
    at.selectbox(key="train_dataset").set_value("your-folder").run()
    assert "Check the folder to train on it." in texts(at)
    at.text_input(key="folder_path").set_value(str(good)).run()
    at.button[0].click().run()
    assert not at.exception and "3 classes, 25 training and 6 test images" in at.success[0].value
    assert "1 greyscale image(s) converted to RGB" in texts(at) and "1 unreadable file(s) skipped" in texts(at)
    assert at.dataframe[0].value["Class"].tolist() == CLASSES
    assert at.selectbox[1].value == "lenet5"  # the models that take the folder's 32x32 RGB images
    assert len(list(records_dir(home).glob("folder-*.json"))) == 1

    bad = write_folder(tmp_path / "single", classes=["cat"])
    at.text_input(key="folder_path").set_value(str(bad)).run()
    at.button[0].click().run()
    assert "has one class (cat)" in at.error[0].value and len(list(records_dir(home).glob("*.json"))) == 1
    assert RunStore().runs() == []
