"""Inside the net and Datasets under Streamlit's AppTest: the zoo's models on every kind of input, the links from the
Draw, Photo and Errors pages, and the datasets with and without the data."""

from urllib.parse import parse_qs

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_pages import _png, open_page, store, texts  # noqa: F401 - store is a fixture
from ui_helpers import built_store  # noqa: F401 - a fixture, which store needs

from convnets.datasets import get_dataset
from convnets.explain import Explainer
from convnets.models import net_name
from convnets.store import ZOO_DIR, RunStore
from dashboard import explaining
from dashboard.explaining import DRAWING_KEY


@pytest.fixture
def zoo(monkeypatch) -> RunStore:
    """The store with the repository's shipped zoo, whose trained models the page looks into."""
    monkeypatch.setenv("CONVNETS_ZOO", str(ZOO_DIR))
    return RunStore()


def heat_maps(at: AppTest) -> list[str]:
    """The captions of the heat maps, one per model."""
    return [caption.replace("\u2011", "-")  # shown with unbroken hyphens (common.unbroken)
            for image in at.container(key="heatmaps").image for caption in image.captions]


def follow(at: AppTest, label: str) -> AppTest:
    """Open Inside the net as the page link called `label` would, with its query parameters."""
    [link] = [link for link in at.page_link if link.value == label]
    assert link.proto.page.endswith("inside")
    at.query_params.clear()
    at.query_params.update({key: values[0] for key, values in parse_qs(link.proto.query_string).items()})
    at.switch_page("../pages/inside.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def canvas(draw) -> np.ndarray:
    """What the Draw page's canvas returns: 280×280 RGBA, white strokes on black."""
    pixels = np.zeros((280, 280, 4), np.uint8)
    pixels[..., 3] = 255
    draw(pixels)
    return pixels


def seven(pixels: np.ndarray) -> None:
    pixels[40:65, 50:230, :3] = 255
    for i in range(180):
        pixels[65 + i, 200 - i // 2 : 225 - i // 2, :3] = 255


def test_every_zoo_model_shows_where_it_looks_on_a_test_image(zoo):
    at = open_page("inside")
    mnist = sorted(net_name(r.config.model) for r in zoo.finished("mnist"))
    maps = heat_maps(at)
    assert sorted(caption.split(" · ")[0] for caption in maps) == mnist and len(mnist) >= 3
    answers = [m.value for m in at.metric]  # every model's answer, as on the Draw page
    assert [caption.split(": ")[1].split(" (")[0] for caption in maps] == answers
    assert all(caption.endswith(f"evidence for {answer}") for caption, answer in zip(maps, answers))

    at.segmented_control(key="inside_method").set_value("ig").run()
    assert len(heat_maps(at)) == len(mnist) and "Integrated gradients" in texts(at)
    at.selectbox(key="inside_target_mnist").set_value(3).run()
    assert all(caption.endswith("evidence for 3") for caption in heat_maps(at))

    at.segmented_control(key="inside_test_dataset").set_value("cifar10").run()
    assert not at.exception
    cifar = zoo.finished("cifar10")
    assert len(heat_maps(at)) == len(cifar) >= 5
    assert {caption.rsplit(" ", 1)[1] for caption in heat_maps(at)} <= set(list(get_dataset("cifar10").classes))


def test_the_models_load_once_per_server_process_not_on_every_rerun(zoo, monkeypatch):
    explaining._explainer.clear()
    loads = []
    load = Explainer.load
    monkeypatch.setattr(Explainer, "load", classmethod(lambda cls, run: loads.append(run.run_id) or load(run)))
    at = open_page("inside")
    assert sorted(loads) == sorted(r.run_id for r in zoo.finished("mnist"))
    at.segmented_control(key="inside_method").set_value("ig").run()
    at.selectbox(key="inside_target_mnist").set_value(3).run()
    open_page("inside")  # another session of the same server
    assert len(loads) == len(zoo.finished("mnist"))


def test_one_model_layer_by_layer(zoo):
    at = open_page("inside")
    run = next(r for r in zoo.finished("mnist") if r.config.model == "lenet5")
    at.selectbox(key="inside_model").set_value(run.run_id).run()
    table = at.dataframe[0].value
    assert list(table["Type"]) == ["Conv2d", "Tanh", "AvgPool2d", "Conv2d", "Tanh", "AvgPool2d", "Flatten", "Linear",
                                   "Tanh", "Linear", "Tanh", "Linear"]
    assert table["Params"].sum() == 61_706 and table["FLOPs"].iloc[0] == 2 * 6 * 28 * 28 * 25
    layer = at.selectbox(key=f"inside_layer_{run.run_id}")
    assert layer.value == "4" and [o.split(" · ")[0] for o in layer.options] == ["0", "1", "2", "3", "4", "5"]
    captions = [c for image in at.image for c in image.captions]
    assert any(c.startswith("16 of the layer's 16 maps (10×10)") for c in captions)
    assert any(c.startswith("The first layer's 6 filters (5×5)") for c in captions)
    layer.set_value("0").run()
    assert any(c.startswith("6 of the layer's 6 maps (28×28)") for image in at.image for c in image.captions)


def test_the_drawing_left_by_the_draw_page_is_looked_into(zoo):
    at = open_page("inside", **{DRAWING_KEY: (canvas(seven), "mnist")})  # from the sidebar: the digit drawn comes first
    assert at.segmented_control(key="inside_source").value == "drawing"
    assert at.image[0].captions[0].startswith("your drawing")
    maps = heat_maps(at)
    assert len(maps) == len(zoo.finished("mnist")) and all(": 7 (" in caption for caption in maps)


def test_an_empty_drawing_gets_the_draw_pages_answer_not_a_map(zoo):
    at = open_page("draw")  # AppTest has no canvas to draw on: the page hands over that nothing is drawn yet
    at.query_params["input"] = "drawing"
    at.switch_page("../pages/inside.py").run()
    assert "nothing drawn yet" in at.info[0].value and "Draw a digit" in [link.value for link in at.page_link]
    assert "heatmaps" not in [c.key for c in at.container]

    at.session_state[DRAWING_KEY] = (canvas(lambda pixels: None), "mnist")  # a cleared canvas
    at.run()
    assert at.info[0].value.startswith("Draw one digit") and "(nothing drawn)" in at.info[0].value
    assert "heatmaps" not in [c.key for c in at.container]
    assert open_page("inside", **{DRAWING_KEY: (canvas(lambda pixels: None), "mnist")}).segmented_control(
        key="inside_source").value == "test"  # from the sidebar, an empty canvas gives way to a test image


def test_the_photo_page_links_inside_the_net_with_its_photo(zoo):
    at = open_page("photo")
    at.file_uploader[0].set_value(("red.png", _png(np.full((64, 48, 3), (200, 30, 30), np.uint8)), "image/png"))
    at.run()
    at = follow(at, "See where each model looks")
    assert at.image[0].captions[0].startswith("red.png")
    assert len(heat_maps(at)) == len(zoo.finished("cifar10"))


def test_the_errors_gallery_links_inside_the_net_with_a_mistake(store):  # noqa: F811 - the fixture imported above
    cifar = next(r for r in store.finished("cifar10"))
    _, records = cifar.mistakes()
    at = open_page("errors", dataset_filter="cifar10")
    [pick] = [s for s in at.selectbox if s.label == "Look inside the net on mistake"]
    pick.set_value(2).run()
    at = follow(at, "Where each model looks")
    classes, record = list(get_dataset("cifar10").classes), records[2]
    said = f"a {classes[record['true']]}, taken for a {classes[record['predicted']]} ({record['confidence']:.0%})"
    assert at.image[0].captions[0].startswith(f"mistake 3 of lenet5: {said}")
    assert heat_maps(at) and all(caption.startswith("lenet5 · ") for caption in heat_maps(at))


# --- Datasets -------------------------------------------------------------------------------------------------


def show_dataset(at, name: str):
    return at.button_group(key="datasets_dataset").set_value(name).run()


def test_datasets_without_data_show_the_shipped_sample_and_where_the_data_goes(tmp_path):
    at = open_page("datasets", data_dir=str(tmp_path / "nothing"))
    assert at.button_group(key="datasets_dataset").value == "mnist"
    for name, expected in (("mnist", "MNIST/raw"), ("cifar10", "cifar10-jpeg")):
        at = show_dataset(at, name)
        assert len(at.info) == 1 and str(tmp_path / "nothing") in at.info[0].value and expected in at.info[0].value
        assert "shipped with the code" in at.info[0].value and "test: 100 images" in texts(at)
        means = [image for image in at.image if len(image.captions) == 10]
        assert [m.captions for m in means] == [list(get_dataset(name).classes)]
    at = show_dataset(at, "svhn")  # no sample of it ships: it says where its files go, and shows no images
    assert "train_32x32.mat" in at.info[0].value and not at.image and not at.exception


def test_datasets_with_data_count_every_split_and_draw_new_examples(data_dir):
    at = open_page("datasets", data_dir=str(data_dir))
    assert not at.info
    assert "train: 600 images · test: 200 images" in texts(at) and "the official files in" in texts(at)
    rows = [image.value[0] for image in at.image if not image.captions[0]][:10]  # MNIST's rows of examples
    at.button(key="new_mnist").click().run()
    assert [image.value[0] for image in at.image if not image.captions[0]][:10] != rows
    at = show_dataset(at, "cifar10")
    assert "train: 400 images · test: 100 images" in texts(at) and "JPEG copy" in texts(at)
    plain = [image.value[0] for image in at.image if not image.captions[0]][:10]
    at.toggle(key="whitened_cifar10").set_value(True).run()  # the same examples, as a whitened net gets them
    whitened = [image.value[0] for image in at.image if not image.captions[0]][:10]
    assert not at.exception and len(whitened) == 10 and whitened != plain
