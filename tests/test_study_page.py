"""The study page, the dashboard's front page: the study's five nets beside the shipped zoo's runs of them; and the
Train page's study table on a fresh clone (the zoo, but no data)."""

import json

import pytest
from test_pages import open_page, texts

from convnets import zoo
from convnets.models import get_model
from convnets.reporting import official_equivalent
from convnets.store import ZOO_DIR, RunStore
from dashboard import common

STUDY_ORDER = ["LeNet", "VGG-like", "ALL-CNN", "ResNet-20", "WRN-14-2"]


@pytest.fixture
def shipped_zoo(monkeypatch) -> dict[str, str]:
    """The repository's own zoo switched on; the study nets' zoo run ids by model."""
    monkeypatch.setenv("CONVNETS_ZOO", str(ZOO_DIR))
    runs = zoo.shipped_runs(RunStore().zoo_dir)
    return {e.model: runs[(e.model, e.dataset)].run_id for e in zoo.study_entries()}


def study_figures() -> list[float]:
    return [get_model(e.model).reference_accuracy[e.dataset] for e in zoo.study_entries()]


def test_the_study_is_the_default_page():
    assert next(iter(common.PAGES)) == "study"
    at = open_page("study")
    assert at.title[0].value == "The study"


def test_the_study_page_sets_the_zoos_runs_beside_the_studys_figures(shipped_zoo):
    at = open_page("study")
    [table] = [t.value for t in at.table]
    assert list(table["Net"]) == STUDY_ORDER
    assert list(table["Study %"]) == [round(100 * f, 2) for f in study_figures()] == [79.8, 88.1, 90.3, 91.0, 92.2]
    store = RunStore()
    ours = [store.require(run_id).summary() for run_id in shipped_zoo.values()]
    assert list(table["Ours %"]) == [round(100 * s["test_accuracy"], 2) for s in ours]
    official = [official_equivalent(s["test_accuracy"], s["data_copy"]) for s in ours]
    assert list(table["≈ official %"]) == [round(100 * o, 2) for o in official]
    assert list(table["Δ points"]) == [round(100 * (o - f), 2) for o, f in zip(official, study_figures())]
    assert list(table["Params"]) == [s["params"] for s in ours]
    assert all(table["Device"]) and "–" not in list(table["Our time"])
    shown = texts(at)
    assert "JPEG copy" in shown and "3.3 points" in shown
    for idea in ("pooling", "3×3", "Strided convolutions instead of pooling", "Shortcuts", "Width"):
        assert idea in shown
    # the five nets' curves in one chart, test and train each
    [chart] = at.get("plotly_chart")
    names = {trace["name"] for trace in json.loads(chart.proto.spec)["data"]}
    assert {f"{net} · {split}" for net in STUDY_ORDER for split in ("test", "train")} <= names


def test_the_study_page_links_into_compare_and_inside_the_net(shipped_zoo):
    at = open_page("study")
    links = {link.value: link for link in at.page_link}
    compare = links["Compare LeNet with ResNet-20"]
    assert compare.proto.page == "compare"
    assert (f"run={shipped_zoo['ref_lenet']}" in compare.proto.query_string and
            f"vs={shipped_zoo['ref_resnet20']}" in compare.proto.query_string)
    inside = links["Inside ResNet-20: its mistakes"]
    assert inside.proto.page == "inside" and f"run={shipped_zoo['ref_resnet20']}" in inside.proto.query_string
    assert "Reproduce the study" in links

    # the link opens Compare on the two runs
    opened = open_page("compare", query={"run": shipped_zoo["ref_lenet"], "vs": shipped_zoo["ref_resnet20"]})
    assert opened.selectbox(key="compare_a").value == shipped_zoo["ref_lenet"]
    assert opened.selectbox(key="compare_b").value == shipped_zoo["ref_resnet20"]


def test_without_the_zoo_the_study_page_still_has_the_studys_figures():
    at = open_page("study")
    [table] = [t.value for t in at.table]
    assert list(table["Net"]) == STUDY_ORDER and table["Study %"].notna().all() and table["Ours %"].isna().all()
    assert "Not in the shipped zoo here" in texts(at)
    assert not [link for link in at.page_link if link.value.startswith("Compare")]


def test_the_train_pages_study_table_shows_the_zoo_on_a_fresh_clone(shipped_zoo):
    """No data (so jobs would train on the official files), but the zoo's runs on the JPEG copy are found."""
    at = open_page("train")
    [table] = [t.value for t in at.table if "Zoo %" in t.value.columns]
    assert table["Zoo %"].notna().all()
    [note] = [c.value for c in at.caption if c.value.startswith("Test accuracy:")]
    assert "Zoo % on CIFAR-10's test images (JPEG copy)" in note
    assert "Ours % on CIFAR-10's test images (official)" in note
    assert "official of" not in note


def test_the_first_paints_table_from_the_zoos_results_is_the_pages_table_from_its_runs(shipped_zoo):
    from convnets.study import rows_from_results
    from dashboard import study_table

    first = study_table.zoo_table(rows_from_results(ZOO_DIR))
    assert first.equals(study_table.zoo_table(zoo.study_rows(RunStore())))
    assert list(first["Net"]) == STUDY_ORDER and first["Ours %"].notna().all()
    assert rows_from_results(None) is None and rows_from_results(ZOO_DIR / "nowhere") is None


def test_the_first_paint_needs_no_pytorch():
    """A fresh server paints the study's head before PyTorch loads (dashboard/app.py): its module must not pull it."""
    import subprocess
    import sys

    code = ("import sys; import dashboard.study_table; "
            "sys.exit(sorted({'torch', 'torchvision', 'captum', 'torchmetrics'} & set(sys.modules)) != [])")
    assert subprocess.run([sys.executable, "-c", code], cwd=ZOO_DIR.parent).returncode == 0


def test_predictions_name_the_studys_nets_as_the_study_does(shipped_zoo):
    """Draw and Classify a photo list the zoo's answers by name: "ResNet-20 (study) · 50 ep · …", not ref_resnet20."""
    import numpy as np

    from convnets.predict import predict

    [answers] = predict([np.zeros((32, 32, 3), np.uint8)], "cifar10")
    names = [a.name for a in answers]
    assert names and not [n for n in names if "ref_" in n]
    assert {n.split(" · ")[0] for n in names} >= {f"{title} (study)" for title in STUDY_ORDER}
