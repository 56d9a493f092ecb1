"""Inside the net: the maps mean something (they find the half of the image a label depends on, and change when the
weights are randomised), every registry model declares a Grad-CAM layer that fits the rule, and the layer views,
the pictures and the CLI say what the models do."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convnets.cli import main
from convnets.datasets import get_dataset
from convnets.errors import ConvnetsError
from convnets.explain import Explainer, explain, feature_maps, first_filters, layers
from convnets.imaging import heat_overlay, mosaic
from convnets.models import REGISTRY, get_model, image_of, net_name
from convnets.models.classifier import Normalize
from convnets.predict import as_batch
from convnets.store import ZOO_DIR, RunStore

IMAGES = {name: image_of(get_dataset(name)) for name in ("mnist", "cifar10")}

CASES = [(name, dataset) for name, spec in REGISTRY.items() for dataset in spec.datasets]
BIG = {"wrn28_10"}  # 36 M parameters: integrated gradients' 32 passes over it take too long for a unit test


pytestmark = pytest.mark.usefixtures("one_thread")


def random_image(dataset: str, seed: int = 0) -> np.ndarray:
    image = IMAGES[dataset]
    shape = (image.size, image.size) if image.channels == 1 else (image.size, image.size, image.channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def fresh(name: str, dataset: str) -> Explainer:
    """A registry network with its initial weights, behind the normalisation a stored model has."""
    torch.manual_seed(0)
    channels = IMAGES[dataset].channels
    net = nn.Sequential(Normalize(torch.full((channels,), 120.0), torch.full((channels,), 60.0)),
                        get_model(name).build(dataset)).eval().requires_grad_(False)
    return Explainer(f"{name}-{dataset}-0000000000", name, dataset, net, get_model(name).cam_layer)


# --- every registry model ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "dataset"), CASES)
def test_every_model_declares_its_deepest_maps_of_at_least_an_eighth_of_the_input(name, dataset):
    """The rule of models/__init__.py: the declared layer outputs maps at least 1/8 of the input's side, and no
    convolution after it still does (so it is the last convolutional stage, VGG-16's 4x4 block for its 2x2 one)."""
    net = get_model(name).build(dataset).eval()
    target = net.get_submodule(get_model(name).cam_layer)
    finished: list[tuple[nn.Module, torch.Size]] = []  # modules in the order their outputs are ready
    hooks = [m.register_forward_hook(lambda m, _i, out: finished.append((m, out.shape))) for m in net.modules()]
    with torch.no_grad():
        net(torch.randn(1, IMAGES[dataset].channels, IMAGES[dataset].size, IMAGES[dataset].size))
    for hook in hooks:
        hook.remove()
    position = next(i for i, (m, _) in enumerate(finished) if m is target)
    shape, least = finished[position][1], IMAGES[dataset].size / 8
    assert len(shape) == 4 and shape[-1] >= least
    later = [s for m, s in finished[position + 1 :] if isinstance(m, nn.Conv2d) and s[-1] >= least]
    assert later == []


@pytest.mark.parametrize(("name", "dataset"), CASES)
def test_maps_are_finite_input_sized_and_scaled_to_0_1(name, dataset):
    explainer = fresh(name, dataset)
    image = random_image(dataset)
    methods = ["gradcam"] if name in BIG else ["gradcam", "ig"]
    for method in methods:
        [[x]] = explain([explainer], [image], method)
        assert x.heatmap.shape == (IMAGES[dataset].size,) * 2 and x.heatmap.dtype == np.float32
        assert np.isfinite(x.heatmap).all() and x.heatmap.min() >= 0
        assert x.heatmap.max() == pytest.approx(1.0) or x.heatmap.max() == 0  # nothing positive: an all-zero map
        assert x.target == x.prediction.label and x.method == method


# --- maps that mean something --------------------------------------------------------------------------------

SHAPES = np.zeros((4, 8, 8), np.uint8)  # four classes, told apart by their shape: -, |, X and a square
SHAPES[0, 3:5, :] = SHAPES[1, :, 3:5] = 255
SHAPES[2, np.arange(8), np.arange(8)] = SHAPES[2, np.arange(8), 7 - np.arange(8)] = 255
SHAPES[3, [0, -1], :] = SHAPES[3, :, [0, -1]] = 255


def half_images(n: int, side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 noise; the class's shape somewhere in one half (side 0: left, 1: right), the other half speckled at
    random: the label depends on that one half only."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPES), n)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    other = slice(14 - 14 * side, 28 - 14 * side)
    for image, label in zip(images, labels):
        row, col = rng.integers(0, 21), 14 * side + rng.integers(0, 7)
        image[row : row + 8, col : col + 8] = np.maximum(image[row : row + 8, col : col + 8], SHAPES[label])
        image[:, other][rng.random((28, 14)) < 0.03] = 255
    return images, labels


def small_net() -> nn.Sequential:
    """Conv-BN-ReLU at 28x28 and 14x14, global average pool, linear: the layout of the zoo's ResNets, in small."""

    def cbr(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

    body = nn.Sequential(*cbr(1, 16), nn.MaxPool2d(2), *cbr(16, 32), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(32, 10))
    return nn.Sequential(Normalize(torch.zeros(1), torch.full((1,), 255.0)), body)


@pytest.fixture(scope="module")
def half_nets() -> dict[int, Explainer]:
    """One small net per informative half, trained to 95 %+ on its images (four epochs, ~3 s each)."""
    nets = {}
    for side in (0, 1):
        torch.manual_seed(side)
        model = small_net()
        images, labels = half_images(1500, side, seed=side)
        x, y = torch.from_numpy(images[:, None]).float(), torch.from_numpy(labels)
        optimiser = torch.optim.Adam(model.parameters(), 3e-3)
        for _ in range(4):
            for batch in torch.randperm(len(x)).split(64):
                loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        nets[side] = Explainer(f"half{side}", "half", "mnist", model.eval().requires_grad_(False), "6")
    return nets


def share_on(side: int, maps: np.ndarray) -> np.ndarray:
    """Each map's share of its mass on the half `side`."""
    half = maps[:, :, 14 * side : 14 * side + 14].sum((1, 2))
    return half / np.maximum(maps.sum((1, 2)), 1e-12)


@pytest.mark.parametrize(("side", "method", "least"), [(0, "gradcam", 0.7), (1, "gradcam", 0.7), (0, "ig", 0.58),
                                                       (1, "ig", 0.58)])
def test_the_maps_find_the_half_the_label_depends_on(half_nets, side, method, least):
    images, labels = half_images(60, side, seed=10 + side)
    results = explain([half_nets[side]], list(images), method)
    assert np.mean([r[0].prediction.label == label for r, label in zip(results, labels)]) >= 0.95
    shares = share_on(side, np.stack([r[0].heatmap for r in results]))
    assert shares.mean() >= least, shares.mean()
    assert (shares > 0.5).mean() >= 0.9


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two maps, as Adebayo et al. compare them (no scipy here); a constant map correlates 0."""
    ranks = [np.argsort(np.argsort(m.ravel(), kind="stable"), kind="stable") for m in (a, b)]
    if min(r.std() for r in ranks) == 0:
        return 0.0
    return float(np.corrcoef(*ranks)[0, 1])


@pytest.mark.parametrize(("method", "most"), [("gradcam", 0.3), ("ig", 0.7)])
def test_randomising_the_weights_changes_the_maps(half_nets, method, most):
    """Adebayo et al. 2018, "Sanity checks for saliency maps": a map that survives the loss of everything the model
    learnt explains the image, not the model. Integrated gradients multiplies by the input, so some of the image's
    structure stays in its maps whatever the weights (as the paper found too): it gets the looser bound."""
    trained = half_nets[0]
    randomised = Explainer("random", "half", "mnist", copy.deepcopy(trained.net), trained.cam_layer)
    torch.manual_seed(7)
    for module in randomised.net.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    images, _ = half_images(40, 0, seed=20)
    before = [r[0].heatmap for r in explain([trained], list(images), method)]
    after = [r[0].heatmap for r in explain([randomised], list(images), method)]
    assert np.mean([spearman(a, b) for a, b in zip(before, after)]) < most
    assert share_on(0, np.stack(after)).mean() < share_on(0, np.stack(before)).mean()


def test_a_class_the_user_picks_gets_its_own_map(half_nets):
    explainer = half_nets[0]
    images, _ = half_images(8, 0, seed=30)
    own = [r[0] for r in explain([explainer], list(images), "gradcam")]
    for target in range(len(SHAPES)):
        picked = [r[0] for r in explain([explainer], list(images), "gradcam", target=target)]
        assert all(b.target == target and b.prediction.probabilities == a.prediction.probabilities
                   for a, b in zip(own, picked))
        same = [np.allclose(a.heatmap, b.heatmap) for a, b in zip(own, picked)]
        answered = [a.prediction.label == target for a in own]
        assert all(s for s, is_answer in zip(same, answered) if is_answer)
        assert sum(not s for s, is_answer in zip(same, answered) if not is_answer) >= 0.75 * answered.count(False)


def test_explain_refuses_what_it_cannot_explain(half_nets):
    explainer = half_nets[0]
    with pytest.raises(ConvnetsError, match="takes 28×28 images, not 32×32×3"):
        explain([explainer], [random_image("cifar10")], "gradcam")
    with pytest.raises(ConvnetsError, match="unknown method 'saliency'"):
        explain([explainer], [random_image("mnist")], "saliency")
    with pytest.raises(ConvnetsError, match="class 10 is not one of mnist's 10 classes"):
        explain([explainer], [random_image("mnist")], target=10)
    with pytest.raises(ConvnetsError, match="one dataset at a time"):
        explain([explainer, fresh("lenet5", "cifar10")], [random_image("mnist")])


@pytest.mark.parametrize("method", ["gradcam", "ig"])
def test_a_model_that_averages_each_image_with_its_mirror_is_explained_on_both(method):
    """The flip-averaging model answers the same for an image and its mirror, so its evidence must be the same map
    mirrored; the plain network, not mirror-symmetric at its initial weights, shows that this is not for free."""
    plain = fresh("resnet20", "cifar10")
    averaging = dataclasses.replace(plain, tta=True)
    image = random_image("cifar10")
    mirror = np.ascontiguousarray(image[:, ::-1])
    (a,), (b,) = explain([averaging], [image, mirror], method, target=3)
    assert a.prediction.probabilities == pytest.approx(b.prediction.probabilities, abs=1e-5)
    assert np.allclose(b.heatmap, a.heatmap[:, ::-1], atol=1e-4) and a.heatmap.max() == pytest.approx(1)
    (a,), (b,) = explain([plain], [image, mirror], method, target=3)
    assert not np.allclose(b.heatmap, a.heatmap[:, ::-1], atol=1e-2)


def test_a_stored_flip_averaging_run_is_explained_one_pass_at_a_time(zoo):
    """The zoo's ResNet-9 averages flips: its explainer answers as the model does (the Photo page's answer), and its
    network runs once per image in the layer views, so that their FLOPs are one pass's and a hook sees one image."""
    [run] = [r for r in zoo.finished("cifar10") if r.config.model == "resnet9"]
    explainer = Explainer.load(run)
    assert run.config.recipe.tta and explainer.tta and not explainer.net.tta
    image = random_image("cifar10")
    [[explained]] = explain([explainer], [image])
    with torch.no_grad():
        answer = run.load_model()(as_batch([image])).softmax(1)[0]  # the stored classifier, averaging flips
    assert explained.prediction.probabilities == pytest.approx(answer.tolist(), abs=1e-4)
    passes = []
    hook = explainer.net[1].register_forward_hook(lambda *_: passes.append(1))
    try:
        layers(explainer, image)
    finally:
        hook.remove()
    assert passes == [1]


# --- layer by layer ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "dataset"), [("lenet5", "mnist"), ("resnet20", "cifar10"), ("resnet9", "cifar10")])
def test_the_layer_table_adds_up_to_the_whole_network(name, dataset):
    explainer = fresh(name, dataset)
    image = random_image(dataset)
    stages = layers(explainer, image)
    assert [s.path for s in stages] == [n for n, _ in explainer.net[1].named_children()]
    assert sum(s.params for s in stages) == sum(p.numel() for p in explainer.net.parameters())
    with FlopCounterMode(display=False) as counter:
        explainer.net(as_batch([image]))
    assert sum(s.flops for s in stages) == counter.get_total_flops() > 0
    assert stages[-1].shape == (10,)
    first = explainer.net[1].get_submodule(stages[0].path)
    conv = first if isinstance(first, nn.Conv2d) else first[0]
    channels, height, width = stages[0].shape  # a convolution's multiply-adds, counted twice, by hand
    assert stages[0].flops >= 2 * channels * height * width * conv.in_channels * conv.kernel_size[0] ** 2


def test_lenet5_counts_match_the_paper_arithmetic():
    stages = {s.path: s for s in layers(fresh("lenet5", "mnist"), random_image("mnist"))}
    assert stages["0"].kind == "Conv2d" and stages["0"].shape == (6, 28, 28) and stages["0"].params == 156
    assert stages["0"].flops == 2 * 6 * 28 * 28 * 25  # C1: 5x5 kernels over one channel at every output pixel
    assert stages["3"].shape == (16, 10, 10) and stages["3"].params == 2416


def test_feature_maps_come_most_active_first_and_as_the_layer_made_them():
    explainer = fresh("resnet20", "cifar10")
    image = random_image("cifar10", seed=3)
    stem = feature_maps(explainer, image, "0")  # conv-BN, followed by an in-place ReLU in the network
    assert stem.maps.shape == (16, 32, 32) and (np.diff(stem.means) <= 1e-6).all()
    assert stem.maps.min() < 0  # the layer's own output, not what the ReLU after it made of it
    normalised = explainer.net[0](as_batch([image]))
    expected = explainer.net[1][0](normalised)[0, torch.from_numpy(stem.channels)].detach().numpy()
    np.testing.assert_allclose(stem.maps, expected, rtol=1e-5, atol=1e-5)
    scaled = stem.scaled()
    assert scaled.min() == 0 and scaled.max() == pytest.approx(1)
    with pytest.raises(ConvnetsError, match="outputs 10 features, not maps"):
        feature_maps(explainer, image, "13")
    with pytest.raises(ConvnetsError, match="has no layer 'nope'"):
        feature_maps(explainer, image, "nope")


def test_first_filters_show_each_kernel_with_grey_for_zero():
    explainer = fresh("lenet5", "cifar10")
    filters = first_filters(explainer)
    weights = explainer.net[1][0].weight.detach().numpy()
    assert filters.shape == (6, 5, 5, 3) and filters.min() >= 0 and filters.max() <= 1
    for kernel, picture in zip(weights, filters):
        largest = np.abs(kernel).max()
        np.testing.assert_allclose(picture, 0.5 + 0.5 * kernel.transpose(1, 2, 0) / largest, atol=1e-6)


# --- pictures ------------------------------------------------------------------------------------------------


def test_a_mosaic_lays_tiles_out_in_rows_with_gaps():
    tiles = np.stack([np.full((2, 3), v) for v in (0.0, 0.5, 1.0)])
    picture = mosaic(tiles, columns=2, scale=2, gap=1)
    assert picture.shape == (2 * 4 + 1, 2 * 6 + 1) and picture.dtype == np.uint8
    assert picture[0, 0] == 0 and picture[0, 7] == 128 and picture[5, 0] == 255  # tile 3 starts the second row
    assert picture[4, :].min() == 255 and picture[5:, 7:].min() == 255  # the gap, and the empty fourth place
    with pytest.raises(ConvnetsError):
        mosaic(np.zeros((0, 2, 2)), columns=2)


def test_a_heat_overlay_shows_the_input_where_the_map_is_cold_and_red_where_it_is_hot():
    image = np.full((4, 4), 200, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1.0
    picture = heat_overlay(image, heat, scale=2)
    assert picture.shape == (8, 8, 3) and picture.dtype == np.uint8
    hot, cold = picture[0, 0].astype(int), picture[7, 7].astype(int)
    assert hot[0] > 200 and hot[1] < 100 and hot[2] < 100  # red
    assert abs(cold[0] - 170) < 5 and cold[2] > cold[0]  # mostly the grey input, a little blue


# --- the command line ----------------------------------------------------------------------------------------


@pytest.fixture
def zoo(monkeypatch) -> RunStore:
    """The shipped zoo's trained models (the repository's, not the shared data)."""
    monkeypatch.setenv("CONVNETS_ZOO", str(ZOO_DIR))
    return RunStore()


def digit_file(path, draw) -> str:
    pixels = np.zeros((112, 112), np.uint8)
    draw(pixels)
    Image.fromarray(pixels).save(path)
    return str(path)


def one(pixels: np.ndarray) -> None:
    pixels[15:97, 50:62] = 255


def seven(pixels: np.ndarray) -> None:
    pixels[15:27, 20:92] = 255
    for i in range(70):
        pixels[27 + i, 80 - i // 2 : 92 - i // 2] = 255


def test_cli_explain_gives_every_model_and_a_map_per_image(zoo, capsys, tmp_path):
    files = [digit_file(tmp_path / "one.png", one), digit_file(tmp_path / "seven.png", seven)]
    assert main(["explain", *files, "--dataset", "mnist", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    finished = {r.run_id for r in zoo.finished("mnist")}
    assert [r["image"] for r in out] == files and len(finished) >= 3
    for row in out:
        assert row["method"] == "gradcam" and {x["run_id"] for x in row["explanations"]} == finished
        for x in row["explanations"]:
            heat = np.array(x["map"])
            assert heat.shape == (28, 28) and heat.min() >= 0 and heat.max() == pytest.approx(1)
            assert x["target"] == x["label"] and 0 <= x["probability"] <= 1
    assert {x["class_name"] for x in out[1]["explanations"]} == {"7"}  # the zoo's models read the seven
    assert main(["explain", files[1], "--dataset", "mnist"]) == 0
    text = capsys.readouterr().out
    assert "Grad-CAM" in text and all(net_name(r.config.model) in text for r in zoo.finished("mnist"))


def test_cli_explain_one_run_with_integrated_gradients(zoo, capsys, tmp_path):
    run = zoo.finished("cifar10")[0].run_id
    photo = tmp_path / "photo.png"
    Image.fromarray(random_image("cifar10")).save(photo)
    assert main(["explain", str(photo), "--dataset", "cifar10", "--run", run, "--method", "ig", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    [x] = row["explanations"]
    assert row["method"] == x["method"] == "ig" and x["run_id"] == run and np.array(x["map"]).shape == (32, 32)


@pytest.mark.parametrize(("argv", "message"), [
    (["--dataset", "mnist", "--method", "saliency"], "unknown method 'saliency'"),
    (["--dataset", "cifar10", "--run", "lenet5-mnist-0d37c2089f"], "is a mnist model, not a cifar10 one"),
    (["--dataset", "mnist", "--run", "lenet5-mnist-0123456789"], "no run 'lenet5-mnist-0123456789'"),
])
def test_cli_explain_bad_input_is_one_error_line(zoo, capsys, tmp_path, argv, message):
    assert main(["explain", digit_file(tmp_path / "one.png", one), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_cli_explain_an_empty_drawing_is_nothing_drawn_not_a_map(zoo, capsys, tmp_path):
    assert main(["explain", digit_file(tmp_path / "empty.png", lambda p: None), "--dataset", "mnist", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "empty.png: nothing drawn" in captured.err


def test_cli_explain_without_models_says_to_train_one(capsys, tmp_path):
    assert main(["explain", digit_file(tmp_path / "one.png", one), "--dataset", "mnist"]) == 2
    assert "no finished mnist model" in capsys.readouterr().err
