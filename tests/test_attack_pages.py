"""The Robustness page's adversarial tab and Inside the net's "attack this image" under Streamlit's AppTest, on the
store of tiny trained runs."""

import pytest
from test_pages import open_page, store, texts  # noqa: F401 - store is a fixture
from ui_helpers import built_store  # noqa: F401 - a fixture, which store needs

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_adversarial_tab_attacks_a_run_then_charts_its_accuracy_against_eps(store, data_dir):  # noqa: F811
    at = open_page("robustness", dataset_filter="mnist", data_dir=str(data_dir))
    assert [t.label for t in at.tabs] == ["Corruptions", "Adversarial attacks"]
    assert "Not attacked yet" in texts(at) and len(at.dataframe) == 1  # the corruptions' table alone
    chosen = at.selectbox(key="attack_run").value
    at.button(key="attack_button").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[1].value
    stored = store.require(chosen).attack("fgsm")
    assert table["Run"].tolist() == [chosen] and stored["eps"] == [0, 1, 2, 4, 8]
    assert table["ε 8"].iloc[0] == pytest.approx(100 * stored["accuracy"][-1])
    assert "under FGSM" in at.get("plotly_chart")[1].proto.spec and "Not attacked yet" in texts(at)  # one run left

    at.button_group(key="attack_method").set_value("pgd").run()
    assert not at.exception and len(at.dataframe) == 1 and "10 times as long for PGD" in texts(at)


def test_inside_the_net_attacks_the_image_and_shows_both_answers(store):  # noqa: F811 - the fixture above
    at = open_page("inside")
    with pytest.raises(KeyError):  # off until asked for
        at.container(key="attacked")
    at.toggle(key="inside_attack").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c for image in at.container(key="attacked").image for c in image.captions]
    assert len(captions) == 4 and captions[1] == "attacked by FGSM, ε = 8/255"
    assert captions[2].startswith("the change, amplified 16×")
    assert bool(at.warning) != bool(at.success)  # fooled or not, said once
    at.select_slider(key="inside_attack_eps").set_value(32)
    at.button_group(key="inside_attack_method").set_value("pgd").run()
    assert not at.exception
    captions = [c for image in at.container(key="attacked").image for c in image.captions]
    assert captions[1] == "attacked by PGD, ε = 32/255" and captions[2].startswith("the change, amplified 4×")
