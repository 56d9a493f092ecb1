"""What the result pages name and how they lay it out (issue 39), under Streamlit's AppTest on the tiny store beside
the shipped zoo: the Leaderboard's study names, grouping, distinct rows and narrow first view; the Robustness
page's run looks and pinned names; the clickable confusion matrix. tests/test_browser_layout.py checks the same
pages in Chromium at a laptop's widths."""

import dataclasses
import json

import numpy as np
import pytest
from streamlit.proto.PlotlyChart_pb2 import PlotlyChart
from test_pages import open_page, store  # noqa: F401 - store is a fixture
from ui_helpers import built_store  # noqa: F401 - a fixture, which store needs

from convnets.models import default_recipe
from convnets.reporting import run_name, short_id
from convnets.store import ZOO_DIR
from convnets.study import STUDY_NETS
from dashboard import common, figures, tables
from dashboard.tables import GAP, KIND_ORDER, NET, THEIRS


@pytest.fixture
def with_zoo(store, monkeypatch):  # noqa: F811 - the fixture imported above
    """The tiny store's runs beside the shipped zoo's: two runs of some nets on one dataset, and all five study
    nets among the papers' on CIFAR-10."""
    monkeypatch.setenv("CONVNETS_ZOO", str(ZOO_DIR))
    return store


def columns(at, index: int = 0) -> dict:
    """A data frame's column configuration, as the page set it."""
    return json.loads(at.dataframe[index].proto.columns)


def test_the_leaderboard_names_the_study_nets_groups_them_first_and_tells_every_row_apart(with_zoo):
    at = open_page("leaderboard")
    board = at.dataframe[0].value
    for _, rows in board.groupby("Dataset"):  # within a dataset: the study's nets, then the papers', then modern
        ranks = [KIND_ORDER.index(kind) for kind in rows["Kind"]]
        assert ranks == sorted(ranks) and ranks[0] == 0
    assert len(set(zip(board[NET], board["Dataset"]))) == len(board)  # no two rows look the same
    assert not board[NET].str.startswith("ref_").any()
    cifar = board[board["Dataset"] == "cifar10"]
    assert set(cifar.loc[cifar["Model"].isin(list(STUDY_NETS)), NET]) == {f"{n.title} (study)"
                                                                          for n in STUDY_NETS.values()}
    # Two runs of LeNet-5 on MNIST, the zoo's and the store's, told apart by what differs between them
    lenet = board[(board["Model"] == "lenet5") & (board["Dataset"] == "mnist")]
    assert sorted(lenet[NET]) == sorted(f"lenet5 · {r.Epochs} ep" + (" · zoo" if r.Zoo else "")
                                        for r in lenet.itertuples())
    assert set(board.loc[board["Model"] == "ref_lenet_mnist", NET].str.split(" · ").str[0]) == {"LeNet (study)"}
    # Each run beside the one figure it answers: the study's for its nets, its paper's for the others
    study = board["Kind"] == tables.KINDS["reference"]
    assert board.loc[study, THEIRS].equals(board.loc[study, "Study %"])
    assert board.loc[~study, THEIRS].equals(board.loc[~study, "Paper %"])
    assert board.loc[~study, GAP].equals(board.loc[~study, "Δ paper"])
    # ...and the order said, since the main view leaves the kinds out
    said = "Per dataset, study nets first, then paper nets, then modern nets, each best first (≈ official)."
    assert said in [c.value for c in at.caption]
    older = board[(board["Kind"] != tables.KINDS["modern"]) & (board["Dataset"] == "cifar10")]
    assert tables.board_order(older) == "Study nets first, then paper nets, each best first (≈ official)."
    assert tables.board_order(board[study]) is None


def test_the_leaderboard_opens_on_its_narrow_columns_and_adds_the_others_on_request(with_zoo):
    at = open_page("leaderboard")
    assert list(at.dataframe[0].proto.column_order) == tables.BOARD_MAIN
    config = columns(at)
    assert config[NET]["pinned"] and config[NET]["width"] >= 100  # "ResNet-20 (study)" whole
    at.button_group(key="board_more").set_value(["Run", "Training"]).run()
    assert list(at.dataframe[0].proto.column_order) == [*tables.BOARD_MAIN, *tables.BOARD_MORE["Training"],
                                                        *tables.BOARD_MORE["Run"]]
    at = open_page("leaderboard", dataset_filter="mnist")  # one dataset: no column to say which
    assert list(at.dataframe[0].proto.column_order) == [c for c in tables.BOARD_MAIN if c != "Dataset"]


def test_run_names_tell_the_runs_of_one_net_apart_by_what_differs():
    def run(model="lenet5", epochs=5, seed=0, zoo=False, run_id="lenet5-mnist-0123456789"):
        return {"model": model, "dataset": "mnist", "epochs": epochs, "seed": seed, "zoo": zoo, "run_id": run_id}

    assert tables.run_names([run(), run(epochs=1)]) == ["lenet5 · 5 ep", "lenet5 · 1 ep"]
    assert tables.run_names([run(), run(seed=1, zoo=True)]) == ["lenet5 · seed 0", "lenet5 · seed 1 · zoo"]
    twins = [run(run_id="lenet5-mnist-aaaaaa0000"), run(run_id="lenet5-mnist-bbbbbb0000")]
    assert tables.run_names(twins) == [f"lenet5 · {short_id(r['run_id'])}" for r in twins]
    assert tables.run_names([run(model="ref_resnet20"), run(model="ref_lenet_mnist"), run()]) == [
        "ResNet-20 (study)", "LeNet (study)", "lenet5"]
    # runs alike in epochs, seed and zoo are told apart by the rest of their recipe, before the id is needed
    registered = dataclasses.asdict(default_recipe("lenet5", "mnist"))
    whitened, averaged = ({**registered, "normalize": "zca"}, {**registered, "normalize": "zca", "ema": 0.99})
    recipes = [run(run_id=f"lenet5-mnist-{i}00000000{i}") | {"recipe": r}
               for i, r in enumerate((registered, whitened, averaged))]
    assert tables.run_names(recipes) == ["lenet5", "lenet5 · normalize zca", "lenet5 · normalize zca, ema 0.99"]
    assert tables.run_names([recipes[1], recipes[1] | {"seed": 1}]) == ["lenet5 · seed 0", "lenet5 · seed 1"]
    # a select box, the CLI's tables and the HTML report name every run whole, the departures before the id
    tails = ("000000", "normalize zca · 100000", "normalize zca, ema 0.99 · 200000")
    assert [common.run_label(r) for r in recipes] == [f"lenet5 · MNIST · 5 ep · {tail}" for tail in tails]
    assert run_name("lenet5", 5, recipes[1]["run_id"], False, "normalize zca", seed=1) == \
        "lenet5 · 5 ep · seed 1 · normalize zca · 100000"
    assert run_name("lenet5", 5, recipes[1]["run_id"], True, "normalize zca") == "lenet5 · 5 ep · 100000 · zoo"
    assert common.run_label(recipes[0] | {"seed": 2}) == "lenet5 · MNIST · 5 ep · seed 2 · 000000"
    board = tables.leaderboard([r | {"state": "finished", "data_copy": "official", "params": 61_706,
                                     "test_accuracy": 0.98, "best_test_accuracy": 0.98, "best_epoch": 5,
                                     "train_seconds": 9.0, "images_per_second": 1e4, "device": "cpu"}
                                for r in recipes])
    assert sorted(board[tables.RECIPE].fillna("–")) == ["normalize zca", "normalize zca, ema 0.99", "–"]


def test_robustness_gives_every_run_a_look_of_its_own_and_pins_its_name(with_zoo):
    at = open_page("robustness")
    at.button_group(key="robustness_dataset").set_value("cifar10").run()
    for chart, table in zip(at.get("plotly_chart"), at.dataframe):  # the corruptions' tab, then the attacks'
        traces = json.loads(chart.proto.spec)["data"]
        assert len(traces) > len(figures.PALETTE)  # the zoo's twelve CIFAR-10 runs and the store's
        looks = {(t["line"]["color"], t["line"]["dash"], t["marker"]["symbol"]) for t in traces}
        assert len(looks) == len(traces)
        frame = table.value
        assert {t["name"] for t in traces} == set(frame[NET])
        assert list(table.proto.column_order[:2]) == [NET, "Data"]
        config = json.loads(table.proto.columns)
        assert config[NET]["pinned"] and config["Data"]["pinned"] and "Run" not in table.proto.column_order


def test_a_confusion_matrix_cell_is_a_point_a_click_selects():
    classes = [f"c{i}" for i in range(4)]
    matrix = np.arange(16).reshape(4, 4).tolist()
    fig = figures.confusion(matrix, classes, False, chosen=(2, 1))
    [cells] = [t for t in fig.data if t.type == "scatter"]
    for index in (0, 6, 9, 15):  # the point a click selects names its cell
        true, predicted = figures.clicked_cell({"points": [{"point_index": index}]}, len(classes))
        assert (cells.y[index], cells.x[index]) == (classes[true], classes[predicted])
        assert cells.customdata[index] == matrix[true][predicted]
    assert figures.clicked_cell({"points": []}, len(classes)) is None
    [outline] = fig.layout.shapes  # the chosen cell, outlined
    assert (outline.x0 + 0.5, outline.y0 + 0.5) == (1, 2)


def test_the_errors_page_takes_clicks_on_its_confusion_matrix(store):  # noqa: F811 - the fixture above
    at = open_page("errors", dataset_filter="cifar10")
    [matrix] = [c for c in at.get("plotly_chart") if c.proto.id.endswith("confusion_matrix")]
    assert list(matrix.proto.selection_mode) == [PlotlyChart.SelectionMode.POINTS]
    chosen = (at.selectbox(key="cell_true").value, at.selectbox(key="cell_predicted").value)
    [outline] = json.loads(matrix.proto.spec)["layout"]["shapes"]
    assert (outline["y0"] + 0.5, outline["x0"] + 0.5) == chosen
