"""The model zoo builds what the papers and the reference study describe, to the parameter."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from convnets.datasets import STUDY, get_dataset
from convnets.errors import ConvnetsError
from convnets.models import REGISTRY, default_recipe, get_model, image_of, models_for

IMAGES = {name: image_of(get_dataset(name)) for name in ("mnist", "cifar10")}

# (model, dataset): (exact trainable count, the source's figure, that figure's relative precision)
PARAMS = {
    # LeCun et al.: 60,000 with partial C3, pool coefficients, no output weights (see lenet.py)
    ("lenet5", "mnist"): (61_706, 60_000, 0.03),
    ("lenet5", "cifar10"): (62_006, 60_000, 0.04),
    ("vgg16", "cifar10"): (14_728_266, 14.7e6, 0.01),  # common CIFAR reproductions
    ("allcnn", "cifar10"): (1_369_738, 1.37e6, 0.01),
    # He et al. Table 6
    ("resnet20", "cifar10"): (269_722, 0.27e6, 0.02),
    ("resnet32", "cifar10"): (464_154, 0.46e6, 0.02),
    ("resnet44", "cifar10"): (658_586, 0.66e6, 0.02),
    ("resnet56", "cifar10"): (853_018, 0.85e6, 0.02),
    ("resnet110", "cifar10"): (1_727_962, 1.7e6, 0.03),
    # Zagoruyko & Komodakis
    ("wrn16_4", "cifar10"): (2_748_890, 2.75e6, 0.01),
    ("wrn28_10", "cifar10"): (36_479_194, 36.5e6, 0.01),
    # Page's DAWNBench ResNet-9 (see resnet9.py)
    ("resnet9", "cifar10"): (6_573_120, 6.57e6, 0.001),
    # the reference study: Keras summaries (trainable), or the layer arithmetic where none was printed
    ("ref_lenet", "cifar10"): (2_168_362, 2.1e6, 0.05),
    ("ref_vgg", "cifar10"): (304_810, 304_810, 0),
    ("ref_allcnn", "cifar10"): (1_147_978, 1_147_978, 0),
    ("ref_resnet20", "cifar10"): (272_474, 272_474, 0),
    ("ref_wrn14_2", "cifar10"): (697_514, 697_514, 0),
    ("ref_vgg_mnist", "mnist"): (870_634, 0.9e6, 0.05),
    ("ref_lenet_mnist", "mnist"): (61_706, 61_706, 0),
}

# Keras "Total params" counts BN moving mean and variance, which PyTorch keeps as buffers.
KERAS_TOTAL = {
    "ref_vgg": 304_810,
    "ref_allcnn": 1_147_978,
    "ref_resnet20": 274_042,
    "ref_wrn14_2": 700_650,
}

CASES = [(name, dataset) for name, spec in REGISTRY.items() for dataset in spec.datasets]
BIG = {"wrn28_10"}


pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(dataset: str, n: int) -> torch.Tensor:
    image = IMAGES[dataset]
    return torch.randn(n, image.channels, image.size, image.size)


def _bn_channels(model: nn.Module) -> int:
    return sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_params_table_covers_registry():
    assert set(PARAMS) == set(CASES)


@pytest.mark.parametrize(("name", "dataset"), CASES)
def test_forward_gives_finite_logits(name, dataset):
    model = get_model(name).build(dataset).eval()
    n = 1 if name in BIG else 2
    with torch.no_grad():
        out = model(_batch(dataset, n))
    assert out.shape == (n, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("name", "dataset"), CASES)
def test_param_count(name, dataset):
    exact, figure, precision = PARAMS[name, dataset]
    count = get_model(name).num_params(dataset)
    assert count == exact
    assert math.isclose(count, figure, rel_tol=precision)


@pytest.mark.parametrize("name", sorted(KERAS_TOTAL))
def test_keras_total_counts_bn_statistics(name):
    model = get_model(name).build("cifar10")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable + 2 * _bn_channels(model) == KERAS_TOTAL[name]


@pytest.mark.parametrize(
    ("name", "dataset"), [("lenet5", "mnist"), ("resnet20", "cifar10"), ("ref_wrn14_2", "cifar10")]
)
def test_backward_reaches_every_parameter(name, dataset):
    model = get_model(name).build(dataset).train()
    loss = nn.functional.cross_entropy(model(_batch(dataset, 4)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


def test_unknown_model_names_the_choices():
    with pytest.raises(ConvnetsError, match=r"unknown model 'nope'; choose from: lenet5, vgg16, .*resnet20"):
        get_model("nope")


def test_wrong_dataset_is_refused():
    """VGG-16's five pools do not fit 28x28 images; on the study's datasets a model trains only where the registry
    has a recipe for it; a dataset must be the registry's."""
    with pytest.raises(ConvnetsError, match=r"vgg16 cannot take MNIST's 28×28 images"):
        get_model("vgg16").build("mnist")
    with pytest.raises(ConvnetsError, match="resnet20 applies to cifar10, not mnist"):
        default_recipe("resnet20", "mnist")
    with pytest.raises(ConvnetsError, match="unknown dataset 'nope'"):
        models_for("nope")


def test_registry_order_and_metadata():
    kinds = [spec.kind for spec in REGISTRY.values()]
    order = ["paper", "modern", "reference"]
    assert kinds == sorted(kinds, key=order.index), "paper nets first, then modern nets, then reference nets"
    for name, spec in REGISTRY.items():
        assert spec.name == name
        assert spec.datasets and set(spec.datasets) <= set(STUDY)
        assert set(spec.recipes) == set(spec.datasets)
        assert set(spec.paper_accuracy) | set(spec.reference_accuracy) <= set(spec.datasets)
        assert all(0 < acc < 1 for acc in (*spec.paper_accuracy.values(), *spec.reference_accuracy.values()))
        reference = spec.kind == "reference"
        assert bool(spec.reference_accuracy) == reference and bool(spec.paper_accuracy) != reference
        assert spec.citation and spec.description


def test_models_for_filters_by_dataset():
    assert [s.name for s in models_for("mnist")] == ["lenet5", "ref_vgg_mnist", "ref_lenet_mnist"]
    assert len(models_for("cifar10")) == len(REGISTRY) - 2  # all but the two MNIST-only reference nets


def test_paper_resnets_start_as_the_paper_does():
    """He et al.'s init: every BN gamma at 1 (a zero last gamma per block made ResNet-20 under-fit), He-normal convs."""
    model = get_model("resnet20").build("cifar10")
    gammas = [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(gammas) == 19 and all((g == 1).all() for g in gammas)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert abs(first.weight.std().item() - (2 / (3 * 3 * 3)) ** 0.5) < 0.1


def test_trying_whether_a_net_fits_leaves_the_random_state_alone():
    """A run seeds, then builds its net: the first build of a shape in a process (which tries the net on it) must
    give the same weights as any later one, or a fresh process would train another run than a warm one."""
    from convnets import models

    models._fails.cache_clear()
    torch.manual_seed(0)
    first = get_model("lenet5").build("cifar10").state_dict()
    torch.manual_seed(0)
    again = get_model("lenet5").build("cifar10").state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
