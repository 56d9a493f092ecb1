"""Every dashboard page under Streamlit's AppTest, with an empty store and with a store of real tiny runs."""

import io
import json
import math
import shutil
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from ui_helpers import FAILED_ERROR, built_store, copy_runs, tiny_config  # noqa: F401 - built_store is a fixture

from convnets import corruptions, zoo
from convnets import data as datamod
from convnets.calibration import reliability
from convnets.compare import compare
from convnets.config import RunConfig
from convnets.data import default_data_dir
from convnets.jobs import JobManager
from convnets.models import default_recipe, get_model, net_name
from convnets.reporting import short_id
from convnets.schema import ACTIVE
from convnets.store import RunStore
from convnets.train import train_run
from dashboard import common, figures, tables
from dashboard.tables import CORRUPTED, ECE, FLIPS, NET, OFFICIAL

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
RESULT_PAGES = ["leaderboard", "curves", "errors", "compare", "robustness", "draw", "photo", "inside"]


def open_page(name: str, query: dict[str, str] | None = None, **state) -> AppTest:
    """The app opened on one page, with the given query parameters and session state (the sidebar's choices
    among them)."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.query_params.update(query or {})
    at.switch_page(f"../pages/{name}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    """Everything a reader sees as text on the page, in one string to search."""
    parts = [e.value for kind in ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


@pytest.fixture
def store(built_store, home) -> RunStore:  # noqa: F811 - the fixture imported above
    copy_runs(built_store, home)
    return RunStore()


def summary_of(store: RunStore, model: str, dataset: str) -> dict:
    return next(r.summary() for r in store.finished(dataset) if r.config.model == model)


# --- an empty store ------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", RESULT_PAGES)
def test_an_empty_store_says_what_to_do_and_links_to_train(page):
    at = open_page(page)
    assert at.info and ("No finished" in at.info[0].value or "No run" in at.info[0].value)
    assert "Train a model" in [link.value for link in at.page_link]


def test_the_train_page_works_on_an_empty_store():
    at = open_page("train")
    assert at.selectbox(key="train_dataset").options[-1] == "Your folder…"
    assert at.selectbox[1].value == "lenet5"
    assert at.number_input[0].value == get_model("lenet5").recipes["mnist"].epochs  # the recipe's default
    assert "No jobs yet." in texts(at)


# --- a store with runs ----------------------------------------------------------------------------------


def test_leaderboard_shows_every_finished_run_beside_the_published_figures(store):
    at = open_page("leaderboard")
    board = at.dataframe[0].value
    cifar = summary_of(store, "lenet5", "cifar10")
    mnist = summary_of(store, "lenet5", "mnist")
    assert len(board) == 3
    row = board[board["Run"] == cifar["run_id"]].iloc[0]
    assert row["Data"] == "JPEG copy" and not row[FLIPS]  # evaluated on the test images alone
    assert row["Test acc. %"] == pytest.approx(100 * cifar["test_accuracy"], abs=0.01)
    assert row["≈ official %"] == pytest.approx(100 * cifar["test_accuracy"] + 3.3, abs=0.01)
    row = board[board["Run"] == mnist["run_id"]].iloc[0]
    assert row["Paper %"] == pytest.approx(99.05)
    assert row["Δ paper"] == pytest.approx(100 * mnist["test_accuracy"] - 99.05, abs=0.01)
    study = summary_of(store, "ref_lenet_mnist", "mnist")  # the study's figures are named for it, not "reference"
    row = board[board["Run"] == study["run_id"]].iloc[0]
    assert row["Study %"] == pytest.approx(98.6) and not any("eference" in c for c in board.columns)
    assert row["Δ study"] == pytest.approx(100 * study["test_accuracy"] - 98.6, abs=0.01)
    cards = {m.label: m.value for m in at.metric}
    assert cards["Best on CIFAR-10"] == f"{cifar['test_accuracy']:.2%}"
    assert f"**lenet5** · JPEG copy · ≈ {100 * cifar['test_accuracy'] + 3.3:.2f}% official" in texts(at)
    assert "· official data" in texts(at)  # the MNIST card
    assert at.download_button[0].label == "Download CSV"
    stragglers = at.table[0].value  # a static table: an error is shown whole, not cut at a column's width
    assert list(stragglers["State"]) == ["failed"] and stragglers["Error"][0] == FAILED_ERROR


def test_leaderboard_names_the_zoo_entries_not_trained_and_how_to_train_them(store, monkeypatch):
    monkeypatch.setattr(zoo, "too_big", lambda entry, zoo_dir=None: entry.model == "vgg16")
    shown = texts(open_page("leaderboard"))
    [line] = [t for t in shown.splitlines() if t.startswith("Not trained yet")]
    assert "resnet56" in line and "ref_vgg_mnist" in line and "vgg16" not in line.replace("ref_vgg", "")
    assert "`python -m convnets zoo --only " in line
    assert ("vgg16 (cifar10) is too big for the shipped zoo's 32 MiB and not in your store: `python -m convnets "
            "train --model vgg16 --dataset cifar10 --epochs 40 --data-dir DIR` trains it there") in shown


def test_accuracy_charts_leave_room_beyond_the_extreme_points():
    board = pd.DataFrame({"Model": ["a", "b", "c"], "Data": ["JPEG copy", "JPEG copy", "official"],
                          "Dataset": ["cifar10", "cifar10", "mnist"], "Run": ["r1", "r2", "r3"],
                          "Test acc. %": [60.0, 80.0, 99.0], OFFICIAL: [63.3, 83.3, 99.0], "Epochs": [1, 2, 3],
                          "Params": [62_000, 2_168_362, 870_000], "Train s": [10.0, 900.0, 50.0],
                          "Family": ["LeNet", "LeNet", "VGG"], "Kind": ["paper net", "study net", "study net"],
                          "Device": ["cpu (2 threads)", "cpu (2 threads)", "cuda (NVIDIA H200)"]})
    by_size = figures.accuracy_scatter(board, "Params", True, "parameters")
    low, high = by_size.layout.xaxis.range
    assert low < math.log10(62_000) - 0.1 and high > math.log10(2_168_362) + 0.1
    by_time = figures.accuracy_scatter(board, "Train s", False, "seconds")
    assert by_time.layout.xaxis.range[0] == 0 and by_time.layout.xaxis.range[1] > 900 * 1.05


def test_accuracy_charts_pair_each_kind_with_its_published_shape_and_keep_devices_apart():
    board = pd.DataFrame({"Model": ["resnet20", "ref_vgg", "resnet9", "ref_resnet20"], "Data": ["JPEG copy"] * 4,
                          "Dataset": ["cifar10"] * 4, "Run": ["r1", "r2", "r3", "r4"],
                          "Test acc. %": [88.0, 85.0, 90.5, 88.4], OFFICIAL: [91.3, 88.3, 93.8, 91.7],
                          "Epochs": [50, 50, 24, 50], "Params": [269_722, 304_810, 6_573_120, 272_474],
                          "Train s": [5760.0, 78.0, 10.0, 2000.0], "Family": ["ResNet", "VGG", "ResNet", "ResNet"],
                          "Kind": ["paper net", "study net", "modern net", "study net"],
                          "Device": ["cpu (2 threads), fp32", "cuda (NVIDIA H200), bf16", "cuda (NVIDIA H200), bf16",
                                     "cpu (2 threads), bf16"]})
    published = tables.published_points(board)
    assert set(published["Source"]) == {"paper", "study"}

    def points(fig):  # the traces of points, named "family, marker"; the legend's entries name one of them
        return [t for t in fig.data if ", " in t.name]

    def shapes(fig):  # kind of point -> marker symbol
        return {t.name.split(", ", 1)[1]: t.marker.symbol for t in points(fig)}

    by_size = figures.accuracy_scatter(board, "Params", True, "parameters", published=published)
    # Sorting the kinds would give "modern net" the circle: each kind keeps its published figure's shape instead.
    assert shapes(by_size)["paper net"] == "circle" and shapes(by_size)["paper's figure"] == "circle-open"
    assert shapes(by_size)["study net"] == "diamond" and shapes(by_size)["study's figure"] == "diamond-open"
    by_time = figures.accuracy_scatter(board, "Train s", True, "seconds", published=published, by_device=True)
    assert shapes(by_time) == {k: shapes(by_size)[k] for k in shapes(by_time)}  # the same story in both charts
    # One row per device and precision, titled across its top: the GPUs, the study's beside ours, then the CPUs.
    titles = sorted(by_time.layout.annotations, key=lambda a: -a.y)
    assert [a.text for a in titles] == ["cuda (NVIDIA H200), bf16", "the study's GPU (Keras)",
                                        "cpu (2 threads), bf16", "cpu (2 threads), fp32"]
    assert {a.textangle for a in titles} == {0}
    for trace in points(by_time):  # every point lies in its device's row (the hover's Device), within its scale
        axis = by_time.layout["yaxis" + trace.yaxis[1:]]
        title = next(a for a in titles if axis.domain[0] <= a.y <= axis.domain[1] + 0.01)
        assert {device for _, _, device, *_ in trace.customdata} == {title.text}
        low, high = axis.range
        assert all(low < y < high for y in trace.y)


def test_leaderboard_filters_by_the_sidebar_dataset(store):
    at = open_page("leaderboard", dataset_filter="mnist")
    assert set(at.dataframe[0].value["Dataset"]) == {"mnist"}
    # the zoo's MNIST entries without a finished run are named (the store has lenet5 and ref_lenet_mnist)
    assert "nor in your store: ref_vgg_mnist. `python -m convnets zoo --only ref_vgg_mnist --data-dir" in texts(at)
    assert len(at.dataframe) == 1 and not at.table  # the failed run is a CIFAR-10 one


def test_training_curves_overlay_the_chosen_runs(store):
    at = open_page("curves")
    assert len(at.multiselect[0].value) == 3
    cifar = summary_of(store, "lenet5", "cifar10")
    at = open_page("curves")
    at.query_params["run"] = cifar["run_id"]
    at.run()
    assert at.multiselect[0].value == [cifar["run_id"]]
    assert cifar["device"] not in at.get("plotly_chart")[0].proto.spec
    at.button_group(key="curve_x").set_value("wall_seconds").run()
    assert not at.exception
    names = {trace["name"] for trace in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    label = f"{common.run_label(cifar)} · {cifar['device']}"  # a time names the device it was taken on
    assert names == {f"{label} · test", f"{label} · train"}


def test_errors_page_shows_the_confusion_matrix_and_the_mistakes(store):
    cifar = summary_of(store, "lenet5", "cifar10")
    at = open_page("errors", dataset_filter="cifar10")
    assert at.selectbox[0].value == cifar["run_id"]
    assert f"Test accuracy {cifar['test_accuracy']:.2%}" in texts(at)
    assert "Most confident mistakes" in texts(at)
    _, mistakes = store.require(cifar["run_id"]).mistakes()
    gallery = at.image[-1].captions
    assert len(gallery) == len(mistakes) > 0
    first, classes = mistakes[0], store.require(cifar["run_id"]).evaluation()["classes"]
    assert gallery[0] == f"{classes[first['true']]} → **{classes[first['predicted']]}** ({first['confidence']:.0%})"
    at.toggle[0].set_value(True).run()
    assert not at.exception


def test_draw_page_waits_for_a_drawing(store):
    at = open_page("draw")
    assert "nothing drawn yet" in at.info[0].value
    assert at.button[0].label == "Clear"
    at.button[0].click().run()
    assert not at.exception and at.session_state["canvas_generation"] == 1


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_photo_page_classifies_an_upload_and_survives_a_bad_file(store):
    at = open_page("photo")
    at.file_uploader[0].set_value(("red.png", _png(np.full((64, 48, 3), (200, 30, 30), np.uint8)), "image/png"))
    at.run()
    assert not at.exception and not at.error
    assert [m.value for m in at.metric]  # one card per CIFAR-10 model
    assert len(at.progress) == 3  # its top three classes
    at.file_uploader[0].set_value(("broken.png", b"not an image at all", "image/png")).run()
    assert not at.exception
    assert "not a PNG, JPEG, WebP, GIF, BMP or TIFF image" in at.error[0].value


@pytest.mark.parametrize("with_data", [True, False], ids=["test split", "stored mistakes"])
def test_photo_page_offers_a_random_cifar_test_image(store, data_dir, tmp_path, with_data):
    at = open_page("photo", data_dir=str(data_dir if with_data else tmp_path / "nothing"))
    at.button[0].click().run()
    assert not at.exception
    caption = at.session_state["photo_sample"][1]
    assert caption.startswith("test image" if with_data else "a stored test image")
    assert len(at.progress) == 3


def test_train_page_finds_a_finished_configuration_instead_of_retraining(store, data_dir):
    cifar = summary_of(store, "lenet5", "cifar10")
    at = open_page("train", data_dir=str(data_dir))
    fill_cifar_form(at, epochs=2, batch_size=64)
    at.button[0].click().run()
    assert not at.exception
    assert cifar["run_id"] in at.success[0].value
    assert {"Errors", "Training curves", "Leaderboard"} <= {link.value for link in at.page_link}
    assert JobManager().jobs() == []


def fill_cifar_form(at: AppTest, epochs: int, batch_size: int) -> None:
    """The Train form for LeNet-5 on the synthetic CIFAR-10 folder, on the CPU, with these epochs and batch size."""
    at.selectbox(key="train_dataset").set_value("cifar10").run()
    at.number_input[0].set_value(epochs)
    at.number_input[1].set_value(batch_size)
    at.selectbox[2].set_value("cpu")


def submit_cifar_job(at: AppTest, epochs: int, batch_size: int) -> str:
    """Fill the Train form for LeNet-5 on the synthetic CIFAR-10 folder and submit it; returns the job id."""
    fill_cifar_form(at, epochs, batch_size)
    at.button[0].click().run()
    assert not at.exception
    [job] = JobManager().jobs()
    return job.job_id


def wait_for(job_id: str, states: tuple[str, ...], timeout: float = 90) -> None:
    manager = JobManager()
    deadline = time.time() + timeout
    while manager.get(job_id).state not in states:
        assert time.time() < deadline, f"job stayed {manager.get(job_id).state}: {manager.log_tail(job_id)}"
        time.sleep(0.3)


@pytest.fixture
def jobs():
    """The test's job manager; whatever the test leaves running is stopped, so no trainer outlives it."""
    manager = JobManager()
    yield manager
    for job in manager.jobs():
        if job.state in ACTIVE:
            manager.cancel(job.job_id)
            wait_for(job.job_id, ("cancelled", "failed", "interrupted"))


def test_train_page_submits_the_whole_recipe_and_shows_the_log(data_dir, jobs):
    at = open_page("train", data_dir=str(data_dir))
    fill_cifar_form(at, epochs=30, batch_size=8)
    at.selectbox(key="optimizer-cifar10-lenet5").set_value("adam")
    at.selectbox(key="schedule-cifar10-lenet5").set_value("cosine")
    at.number_input(key="wd-cifar10-lenet5").set_value(0.0)
    at.number_input(key="ls-cifar10-lenet5").set_value(0.2)
    at.selectbox(key="augment-cifar10-lenet5").set_value("none")
    at.checkbox(key="tta-cifar10-lenet5").check()
    at.number_input(key="ema-cifar10-lenet5").set_value(0.99)
    at.number_input(key="normlr-cifar10-lenet5").set_value(4.0)
    at.selectbox(key="normalize-cifar10-lenet5").set_value("zca")
    at.button[0].click().run()  # test-time flips average each image with its mirror: unmirrored training is refused
    assert "tta averages each image with its mirror" in at.error[0].value and jobs.jobs() == []
    at.selectbox(key="augment-cifar10-lenet5").set_value("flip")
    at.button[0].click().run()
    assert not at.exception
    [job] = jobs.jobs()
    recipe = job.config.recipe
    assert (recipe.optimizer, recipe.schedule, recipe.weight_decay, recipe.label_smoothing, recipe.augment,
            recipe.tta, recipe.ema, recipe.norm_lr, recipe.normalize) == ("adam", "cosine", 0.0, 0.2, "flip", True,
                                                                          0.99, 4.0, "zca")
    # The job trains exactly the configuration the form made: the one the page built is the one the trainer read.
    default = default_recipe("lenet5", "cifar10")
    expected = RunConfig("lenet5", "cifar10", default.replace(
        epochs=30, batch_size=8, optimizer="adam", schedule="cosine", weight_decay=0.0, label_smoothing=0.2,
        augment="flip", tta=True, ema=0.99, norm_lr=4.0, normalize="zca"), seed=0, data_copy="jpeg")
    assert job.config == expected and job.job_id == expected.run_id
    assert RunConfig.read(jobs.dir / f"{job.job_id}.config.json") == expected
    wait_for(job.job_id, ("running",))
    assert RunStore().get(job.job_id).config == expected
    at.run()
    assert any(e.label == "Log" for e in at.expander)
    [log] = [c.value for c in at.code]  # the trainer's output so far (it grows), or the placeholder
    assert log == "(nothing logged yet)" or log.splitlines()[0] in jobs.log_tail(job.job_id, lines=1000)


def test_train_page_launches_cancels_and_resumes_a_background_job(data_dir, jobs):
    at = open_page("train", data_dir=str(data_dir))
    job_id = submit_cifar_job(at, epochs=30, batch_size=8)  # long enough to be caught running
    job = jobs.get(job_id)
    assert job.config.model == "lenet5" and job.config.recipe.epochs == 30 and job.config.data_copy == "jpeg"
    assert "lenet5" in texts(at) and job_id in texts(at)

    wait_for(job_id, ("running",))
    at.run()
    assert at.progress  # the live part: progress bar (and the curve once an epoch is done)
    at.button(key=f"cancel-{job_id}").click().run()
    wait_for(job_id, ("cancelled",))
    at.run()
    assert "cancelled by the user" in texts(at)

    stopped = jobs.get(job_id).pid
    at.button(key=f"resume-{job_id}").click().run()
    assert jobs.get(job_id).pid != stopped  # a new trainer, which resumes from the last completed epoch
    keys = [b.key for b in at.button]
    assert f"cancel-{job_id}" in keys and f"resume-{job_id}" not in keys  # shown as starting, not as stopped
    wait_for(job_id, ("running",))
    at.run()
    at.button(key=f"cancel-{job_id}").click().run()
    wait_for(job_id, ("cancelled",))
    at.run()
    at.button(key=f"forget-{job_id}").click().run()
    assert jobs.jobs() == [] and "No jobs yet." in texts(at)


def test_a_malformed_job_file_is_a_clear_error_on_the_train_page(home):
    (home / "jobs").mkdir(parents=True)
    (home / "jobs" / "lenet5-cifar10-0123456789.json").write_text('{"config": {"model": "lenet5"}, "created": 1}')
    at = open_page("train")
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert "lenet5-cifar10-0123456789.json is malformed" in error and "untouched" in error
    at.button(key="forget-lenet5-cifar10-0123456789").click().run()
    assert not at.exception and not at.error and "No jobs yet." in texts(at)


def test_a_job_that_cannot_start_is_an_error_on_the_page_never_an_exit(data_dir, monkeypatch):
    """What used to reach a CLI parser inside Streamlit (and could raise SystemExit) is checked as a RunConfig."""
    at = open_page("train", data_dir=str(data_dir))
    at.selectbox(key="train_dataset").set_value("cifar10").run()
    at.number_input(key="ls-cifar10-lenet5").set_value(0.5)
    at.number_input(key="wd-cifar10-lenet5").set_value(0.5)  # out of range: at most 0.1
    at.button[0].click().run()
    assert not at.exception
    assert any("weight-decay 0.5 is out of range" in e.value for e in at.error)
    assert JobManager().jobs() == []


def test_reproduce_the_study_queues_the_five_nets_on_the_chosen_seed(data_dir, monkeypatch):
    from types import SimpleNamespace

    from convnets import jobs as jobsmod

    launched = []
    monkeypatch.setattr(jobsmod.subprocess, "Popen", lambda argv, **_: launched.append(argv) or SimpleNamespace(pid=0))
    at = open_page("train", data_dir=str(data_dir))
    at.number_input(key="study_seed").set_value(4)
    [button] = [b for b in at.button if b.label == "Reproduce the study"]
    button.click().run()
    assert not at.exception and len(launched) == 5
    submitted = {j.config for j in JobManager().jobs()}
    assert submitted == set(zoo.study_configs("jpeg", seed=4))
    [study] = [t.value for t in at.table if "Study %" in t.value.columns]
    assert list(study["Model"]) == ["LeNet", "VGG-like", "ALL-CNN", "ResNet-20", "WRN-14-2"]
    assert list(study["Study %"]) == [79.8, 88.1, 90.3, 91.0, 92.2]
    [note] = [c.value for c in at.caption if "Zoo % and Ours %" in c.value]
    # The two study nets whose pinned recipes average each test image with its mirror.
    assert "JPEG copy" in note and "; ALL-CNN and WRN-14-2 average each test image with its mirror. **Study %**" in note
    assert "ours in official-data terms (the copy's measured cost of 3.3 points added back)" in note


# --- runs of one model, runs at chance level ---------------------------------------------------------


def clone_run(store: RunStore, run_id: str, digits: str, accuracy: float) -> str:
    """A second run of the same model (a copy under another id), its test accuracy set to ``accuracy``."""
    source = store.require(run_id).path
    clone = source.with_name(f"{run_id.rsplit('-', 1)[0]}-{digits * 10}")
    shutil.copytree(source, clone)
    evaluation = json.loads((clone / "evaluation.json").read_text())
    (clone / "evaluation.json").write_text(json.dumps({**evaluation, "test_accuracy": accuracy}))
    return clone.name


def card_titles(at: AppTest) -> list[str]:
    return [m.value.strip("*").replace("\u2011", "-") for m in at.markdown if m.value.startswith("**lenet5 · ")]


def test_photo_cards_name_each_run_and_show_each_models_best_unless_asked(store):
    cifar = summary_of(store, "lenet5", "cifar10")
    worse = clone_run(store, cifar["run_id"], "1", cifar["test_accuracy"] / 2)
    chance = clone_run(store, cifar["run_id"], "2", 0.1)
    at = open_page("photo")
    at.file_uploader[0].set_value(("red.png", _png(np.full((64, 48, 3), (200, 30, 30), np.uint8)), "image/png"))
    at.run()
    limit = tomllib.loads((APP.parent.parent / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    assert not at.exception and f"Up to {limit} MB and 40 megapixels: PNG, JPEG, WebP, GIF, BMP or TIFF" in texts(at)
    def title(run_id: str) -> str:  # the test store trains at batch 64, which the name says
        return f"lenet5 · 2 ep · batch-size 64 · {short_id(run_id)}"

    assert card_titles(at) == [title(cifar["run_id"])]  # the best of the three runs

    at.toggle(key="every_run").set_value(True).run()
    assert sorted(card_titles(at)) == sorted(title(i) for i in (cifar["run_id"], worse))
    assert at.toggle(key="chance_runs").label == "Runs at chance level (1)"
    at.toggle(key="chance_runs").set_value(True).run()
    assert len(set(card_titles(at))) == 3 and title(chance) in card_titles(at)


def test_a_run_at_chance_is_marked_on_the_leaderboard_and_left_out_of_the_best_cards(store):
    cifar = summary_of(store, "lenet5", "cifar10")
    evaluation = store.require(cifar["run_id"]).path / "evaluation.json"
    evaluation.write_text(json.dumps({**json.loads(evaluation.read_text()), "test_accuracy": 0.105}))
    at = open_page("leaderboard")
    board = at.dataframe[0].value
    assert dict(zip(board["Run"], board["At chance"])) == {
        cifar["run_id"]: True, **{s.run_id: False for s in store.finished("mnist")}}
    assert "3 finished runs · 1 at chance level" in texts(at)
    assert [m.label for m in at.metric] == ["Best on MNIST"]
    at.toggle(key="count_chance").set_value(True).run()
    assert {m.label: m.value for m in at.metric}["Best on CIFAR-10"] == "10.50%"


def test_draw_page_keeps_its_buttons_outside_the_canvas(store):
    at = open_page("draw")
    assert [b.label for b in at.button] == ["Clear", "Undo"]
    assert at.button[1].disabled  # nothing to undo yet


# --- the data folder --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["file", "missing", "empty, offline"])
def test_a_data_folder_that_cannot_serve_a_job_is_said_so_and_launches_nothing(tmp_path, case):
    folder = {"file": tmp_path / "notes.txt", "missing": tmp_path / "typo", "empty, offline": tmp_path / "empty"}[case]
    expected = {"file": f"the data folder {folder} is a file, not a folder",
                "missing": f"the data folder {folder} does not exist",
                "empty, offline": "downloads are off (CONVNETS_OFFLINE)"}[case]
    if case == "file":
        folder.write_text("not a folder")
    elif case == "empty, offline":
        folder.mkdir()
    at = open_page("train", data_dir=str(folder))
    assert any(expected in w.value for w in at.warning) and "will download" not in texts(at)
    submit = at.button[0]
    assert submit.label == "Train" and submit.disabled  # AppTest, like a browser, cannot click it
    assert JobManager().jobs() == []


def test_a_relative_data_folder_is_taken_from_the_home_folder(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "datasets").symlink_to(data_dir)
    at = open_page("train", data_dir="datasets")
    at.selectbox(key="train_dataset").set_value("cifar10").run()
    assert f"= {tmp_path / 'datasets'}" in texts(at)  # the sidebar says what the path stands for
    assert f"Data: JPEG copy CIFAR-10 from {tmp_path / 'datasets' / 'cifar10-jpeg'}" in texts(at)
    assert "relative path is taken from your home folder" in at.text_input(key="data_dir").help
    assert open_page("train", data_dir="~/datasets").button[0].disabled is False


def test_the_data_folder_survives_a_reload(home, data_dir):
    at = open_page("train")
    at.text_input(key="data_dir").set_value(str(data_dir)).run()
    assert json.loads((home / "settings.json").read_text()) == {"data_dir": str(data_dir)}
    assert [p.name for p in home.iterdir() if p.name.startswith(".settings")] == []  # written by rename
    again = open_page("train")  # a reload: a new session, with an empty session state
    assert again.text_input(key="data_dir").value == str(data_dir)
    (home / "settings.json").write_text('{"data_dir": ')  # torn by hand: the default, and no error
    assert open_page("train").text_input(key="data_dir").value == str(default_data_dir())


# --- comparing runs, calibration, robustness, seeds ---------------------------------------------------------


def mnist_pair(store: RunStore) -> tuple[dict, dict]:
    return summary_of(store, "lenet5", "mnist"), summary_of(store, "ref_lenet_mnist", "mnist")


def test_compare_page_shows_the_table_the_test_and_the_answers_without_the_data(store):
    at = open_page("compare")  # CIFAR-10 has one finished run here: MNIST is the only dataset to compare
    ids = at.selectbox(key="compare_a").options
    assert len(ids) == 2 and "compare_dataset" not in [b.key for b in at.button_group]  # no dataset to choose
    a, b = (store.require(at.selectbox(key=k).value) for k in ("compare_a", "compare_b"))
    result = compare(a.predictions(), b.predictions())
    cards = {m.label: m.value for m in at.metric}
    assert cards[f"A · {net_name(a.config.model)}"] == f"{result['accuracy_a']:.2%}"
    assert cards[f"B · {net_name(b.config.model)}"] == f"{result['accuracy_b']:.2%}"
    assert cards["McNemar p"] == f"{result['mcnemar_p']:.2g}"
    table = at.dataframe[0].value
    assert table.loc["A right", "B wrong"] == result["table"]["only_a"]
    assert table.loc["A wrong", "B right"] == result["table"]["only_b"]
    assert int(table.to_numpy().sum()) == 200
    assert "not in the data folder" in texts(at)  # so the galleries list answers without images
    assert not at.image
    assert [t.label for t in at.tabs] == [f"Only A right ({result['table']['only_a']})",
                                          f"Only B right ({result['table']['only_b']})"]
    assert len(at.get("plotly_chart")) == 1  # the two reliability diagrams, in one chart

    at.selectbox(key="compare_b").set_value(at.selectbox(key="compare_a").value).run()
    assert "Pick two different runs." in texts(at)


def test_reliability_markers_grow_with_the_images_in_their_bin():
    confidence = np.r_[np.full(3, 0.35), np.full(300, 0.75), np.full(3000, 0.97)]
    correct = np.r_[[True, False, False], np.arange(300) % 4 != 0, np.arange(3000) % 50 != 0]
    fig = figures.reliability([("run", reliability(confidence, correct))])
    points = fig.data[1]  # after the diagonal
    assert [round(a, 2) for a in points.y] == [0.33, 0.75, 0.98]
    small, middle, large = points.marker.size
    assert small < middle < large == 14.0
    assert middle == pytest.approx(4 + 10 * math.log(301) / math.log(3001))


def disagree(run, wrong: range) -> None:
    """The tiny MNIST runs get every synthetic test image right: give one of them some mistakes to show."""
    p = run.predictions()
    p.predicted[list(wrong)] = (p.labels[list(wrong)] + 1) % 10
    p.confidence[list(wrong)] = np.linspace(0.9, 0.5, len(wrong))
    run.save_predictions(p)


def test_compare_page_galleries_show_the_test_images_with_both_answers(store, data_dir):
    at = open_page("compare", data_dir=str(data_dir))
    a, b = (store.require(at.selectbox(key=k).value) for k in ("compare_a", "compare_b"))
    disagree(b, range(0, 7))
    disagree(a, range(10, 15))
    at.run()
    pa, pb = a.predictions(), b.predictions()
    result = compare(pa, pb)
    assert result["table"] == {"both_right": 188, "only_a": 7, "only_b": 5, "both_wrong": 0}
    assert not at.exception and "not in the data folder" not in texts(at)
    galleries = [image.captions for image in at.image]
    only_a, only_b = galleries[0], galleries[1]
    assert len(only_a) == 7 and len(only_b) == 5
    labels = list(datamod.get_dataset("mnist").classes)
    true, wrong = labels[pa.labels[0]], labels[(pa.labels[0] + 1) % 10]
    # B's most confident mistake first, with A's own confidence
    assert only_a[0] == f"{true} · A: {true} {float(pa.confidence[0]):.0%} · B: {wrong} 90%"
    # the confusion cell, side by side: pick one that A has images in
    cell = next((t, p) for t in range(10) for p in range(10)
                if t != p and ((pa.labels == t) & (pa.predicted == p)).any())
    at.selectbox(key="compare_true").set_value(cell[0])
    at.selectbox(key="compare_predicted").set_value(cell[1]).run()
    counts = [int(((p.labels == cell[0]) & (p.predicted == cell[1])).sum()) for p in (pa, pb)]
    shown = "\n".join(m.value for m in at.markdown)
    assert f"**A · {net_name(a.config.model)}**: {counts[0]} image" in shown
    assert f"**B · {net_name(b.config.model)}**: {counts[1]} image" in shown


def test_compare_page_computes_the_predictions_a_run_lacks(store, data_dir):
    a, _ = mnist_pair(store)
    (store.require(a["run_id"]).path / "predictions.npz").unlink()
    at = open_page("compare", data_dir=str(data_dir / "missing"))
    assert "was trained before per-image predictions were kept" in texts(at) and not at.metric
    at.button(key=f"predict-{a['run_id']}").click().run()
    assert "needs its test split" in at.error[0].value  # the data is not where the sidebar says
    at.session_state["data_dir"] = str(data_dir)
    at.run()
    at.button(key=f"predict-{a['run_id']}").click().run()
    at.run()
    assert not at.exception and store.require(a["run_id"]).predictions() is not None
    assert at.metric and at.dataframe


def test_errors_page_shows_the_images_of_a_chosen_cell_and_the_calibration(store, data_dir):
    cifar = summary_of(store, "lenet5", "cifar10")
    run = store.require(cifar["run_id"])
    predictions = run.predictions()
    at = open_page("errors", dataset_filter="cifar10", data_dir=str(data_dir))
    true, predicted = next((t, p) for t in range(10) for p in range(10)
                           if t != p and ((predictions.labels == t) & (predictions.predicted == p)).sum() >= 2)
    at.selectbox(key="cell_true").set_value(true)
    at.selectbox(key="cell_predicted").set_value(predicted).run()
    count = int(((predictions.labels == true) & (predictions.predicted == predicted)).sum())
    classes = list(datamod.get_dataset("cifar10").classes)
    assert f"{count} test images of class {classes[true]} predicted as {classes[predicted]}" in texts(at)
    cell_gallery = at.image[0].captions
    assert len(cell_gallery) == count and cell_gallery[0].startswith("#")
    assert {m.label: m.value for m in at.metric}["Expected calibration error"] == f"{run.calibration()['ece']:.2%}"
    assert len(at.image[-1].captions) == len(run.mistakes()[1])  # the mistakes gallery stays last


def test_leaderboard_has_the_calibration_and_corruption_columns_and_groups_seeds(store, data_dir):
    at = open_page("leaderboard")
    board = at.dataframe[0].value
    for summary in (s for s in (r.summary() for r in store.finished())):
        row = board[board["Run"] == summary["run_id"]].iloc[0]
        assert row[ECE] == pytest.approx(100 * summary["calibration_error"], abs=0.01)
        assert row[CORRUPTED] == pytest.approx(100 * summary["corruption_accuracy"], abs=0.01)
    assert "No recipe has finished with more than one seed yet" in texts(at)

    seed0 = summary_of(store, "lenet5", "mnist")
    config = tiny_config("lenet5", "mnist", data_dir)
    second, _ = train_run(RunConfig(config.model, config.dataset, config.recipe, seed=1, data_copy=config.data_copy),
                          data_dir=str(data_dir), device="cpu")
    at = open_page("leaderboard")
    [groups] = [d.value for d in at.dataframe if "± std" in d.value.columns]
    assert len(groups) == 1
    row = groups.iloc[0]
    accuracies = np.array([100 * seed0["test_accuracy"], 100 * second.summary()["test_accuracy"]])
    assert row["n"] == 2 and row["Seeds"] == "0, 1" and row["Model"] == "lenet5"
    assert row["Epochs"] == 2 and row["Batch"] == 64 and pd.isna(row[tables.OTHER_RECIPE])
    assert row["Test acc. %"] == pytest.approx(accuracies.mean(), abs=0.01)
    assert row["± std"] == pytest.approx(accuracies.std(ddof=1), abs=0.01)
    assert len(at.dataframe[0].value) == 4  # the runs themselves stay listed one by one

    # the curves page draws the pair as their mean with a band, or as two runs
    at = open_page("curves")
    at.multiselect[0].set_value([seed0["run_id"], second.run_id]).run()
    assert at.toggle(key="curve_seeds").value
    chart = at.get("plotly_chart")[0].proto.spec
    assert "mean of 2 seeds" in chart and '"fill":"toself"' in chart.replace(" ", "")
    at.toggle(key="curve_seeds").set_value(False).run()
    chart = at.get("plotly_chart")[0].proto.spec
    assert "mean of 2 seeds" not in chart and "toself" not in chart


def test_robustness_page_charts_every_measured_run_and_measures_the_others(store, data_dir):
    at = open_page("robustness", dataset_filter="mnist")
    assert [b.value for b in at.button_group if b.key == "robustness_corruption"] == ["all (mean)"]
    table = at.dataframe[0].value
    assert len(table) == 2 and {"rotation", "translation", CORRUPTED, "Clean %"} <= set(table.columns)
    for _, row in table.iterrows():
        stored = store.require(row["Run"]).robustness()
        assert row[CORRUPTED] == pytest.approx(100 * stored["mean_accuracy"], abs=0.01)
    columns = [NET, "Data", "Clean %", CORRUPTED]  # as wide as a laptop's page: the mean, then one corruption
    assert list(at.dataframe[0].proto.column_order) == columns
    at.button_group(key="robustness_corruption").set_value("rotation").run()
    assert not at.exception and "rotation" in at.get("plotly_chart")[0].proto.spec
    assert list(at.dataframe[0].proto.column_order) == [*columns, "rotation"]
    at.toggle(key="robustness_every_column").set_value(True).run()
    assert list(at.dataframe[0].proto.column_order)[4:] == corruptions.names("mnist")

    cifar = summary_of(store, "lenet5", "cifar10")
    (store.require(cifar["run_id"]).path / "robustness.json").unlink()
    at = open_page("robustness", dataset_filter="cifar10", data_dir=str(data_dir))
    assert "Not measured yet" in texts(at) and not at.dataframe
    at.button[0].click().run()
    assert not at.exception and at.dataframe[0].value["Run"].tolist() == [cifar["run_id"]]


def test_train_page_queues_several_seeds_as_separate_jobs(data_dir, jobs):
    at = open_page("train", data_dir=str(data_dir))
    fill_cifar_form(at, epochs=30, batch_size=8)
    at.number_input(key="seeds-cifar10-lenet5").set_value(2)
    at.text_input(key="sweep-lr-cifar10-lenet5").set_value("0.01, 0.02")
    at.text_input(key="sweep-epochs-cifar10-lenet5").set_value("30 40")
    at.number_input(key="seeds-cifar10-lenet5").set_value(5)
    at.button[0].click().run()
    assert "that is 20 runs; a sweep queues at most 16" in at.error[0].value and jobs.jobs() == []
    at.text_input(key="sweep-epochs-cifar10-lenet5").set_value("3x")
    at.button[0].click().run()
    assert "epochs: '3x' is not a list of whole numbers" in at.error[0].value and jobs.jobs() == []

    at.text_input(key="sweep-lr-cifar10-lenet5").set_value("")
    at.text_input(key="sweep-epochs-cifar10-lenet5").set_value("")
    at.number_input(key="seeds-cifar10-lenet5").set_value(2)
    at.button[0].click().run()
    assert not at.exception and "Queued 2 jobs." in at.success[0].value
    queued = jobs.jobs()
    assert sorted(j.config.seed for j in queued) == [0, 1]
    assert len({j.config.group_id for j in queued}) == 1 and all(j.config.recipe.epochs == 30 for j in queued)
