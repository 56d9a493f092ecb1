"""The model zoo: one `ModelSpec` per network, with its source, reported accuracy and default recipe.

Paper-faithful nets come first, then a modern fast-training net for comparison (`kind="modern"`, ResNet-9),
then the reference Keras study's own nets (`kind="reference"`), which are smaller than the papers' and are
kept beside them so that both sets of figures can be reproduced.

Each spec names its Grad-CAM layer (`cam_layer`, a module path inside the network): the deepest convolutional
maps that are still at least an eighth of the input's side, i.e. the last convolutional layer's output (after its
activation, or the last residual block's) as Selvaraju et al. (2017) advise, except VGG-16, whose last block is
2x2 on CIFAR-10 and would only say which quadrant a model looks at, so its 4x4 block (conv4_3) is used instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache, partial
from types import ModuleType

import torch
from torch import nn

from .. import datasets
from ..config import MIRRORED, Recipe
from ..datasets import BUILTIN, DatasetSpec, get_dataset
from ..errors import ConvnetsError
from ..study import SOURCE, STUDY_NETS
from . import allcnn, lenet, resnet, resnet9, vgg, wideresnet
from .layers import Image

STUDY = SOURCE  # the study nets' citation


@dataclass(frozen=True)
class ModelSpec:
    """One network of the zoo: how to build it, where it comes from, what it should reach, how to train it."""

    name: str
    family: str  # LeNet | VGG | All-CNN | ResNet | WideResNet
    kind: str  # paper (paper-faithful) | reference (the Keras study's own nets) | modern
    datasets: tuple[str, ...]  # the study datasets it has recipes of its own for; it builds for any that fits
    citation: str
    paper_accuracy: dict[str, float]  # dataset -> test accuracy the paper reports
    reference_accuracy: dict[str, float]  # dataset -> test accuracy the Keras study reports
    recipes: dict[str, Recipe]  # dataset -> default training recipe
    description: str
    cam_layer: str  # the module (path within the network) whose maps Grad-CAM weighs (see above)
    builder: Callable[[Image], nn.Module] = field(repr=False)

    def build(self, dataset: str) -> nn.Module:
        """A freshly initialised model mapping normalised NxCxHxW images of `dataset` to one logit per class."""
        problem = self.cannot_take(dataset)
        if problem:
            raise ConvnetsError(problem)
        return self.builder(image_of(get_dataset(dataset)))

    def cannot_take(self, dataset: str) -> str | None:
        """Why this network cannot be built for the dataset's images (a size its layers do not fit), or None."""
        spec = get_dataset(dataset)
        if _fails(self.name, image_of(spec)):
            return (f"{self.name} cannot take {spec.label}'s {spec.size}×{spec.size} images (its layers do not fit "
                    "that size); choose another model or image size")
        return None

    def num_params(self, dataset: str) -> int:
        """Trainable parameters (BN running statistics are buffers and do not count)."""
        return sum(p.numel() for p in self.build(dataset).parameters() if p.requires_grad)


# PyTorch's OneCycleLR shape (cosine, momentum cycled 0.95-0.85, warm-up 30 %), the shape most PyTorch code trains
# with. It is not where the zoo issue's two points went: on the same CPU a plain OneCycleLR loop ended ResNet-20 at
# 84.79 %, the engine's linear one-cycle at 85.08 % (40 epochs, JPEG copy; bench/README.md, accuracy_parity.py).
_CYCLE = {"schedule": "onecycle-cos", "warmup": 0.3}


def _cifar(epochs: int, lr: float = 0.1) -> dict[str, Recipe]:
    """The paper nets' CIFAR-10 recipe: SGD Nesterov one-cycle, crop-flip, label smoothing 0.1, wd 5e-4."""
    return {"cifar10": Recipe(epochs=epochs, lr=lr, label_smoothing=0.1, **_CYCLE)}


def _study(epochs: int, lr: float, weight_decay: float, normalize: str = "pixel") -> dict[str, Recipe]:
    """The reference nets' CIFAR-10 recipe: the study's per-pixel standardisation and its Keras l2(λ) as
    weight decay 2λ, on the SGD one-cycle schedule (the study ran ReduceLROnPlateau for up to 200 epochs)."""
    return {"cifar10": Recipe(epochs=epochs, lr=lr, weight_decay=weight_decay, normalize=normalize, **_CYCLE)}


def _study_mnist(batch_size: int) -> dict[str, Recipe]:
    """The study's MNIST nets: Adam on inputs scaled to [0, 1], no augmentation, no weight decay."""
    recipe = Recipe(epochs=4, batch_size=batch_size, optimizer="adam", lr=2e-3, weight_decay=0.0)
    return {"mnist": recipe.replace(augment="none", normalize="unit")}


def _spec(
    name: str,
    family_module: ModuleType,
    kind: str,
    builder: Callable[[Image], nn.Module],
    recipes: dict[str, Recipe],
    description: str,
    cam_layer: str,
    paper: dict[str, float] | None = None,
    reference: dict[str, float] | None = None,
    citation: str | None = None,
) -> ModelSpec:
    if citation is None:
        citation = family_module.CITATION if kind == "paper" else f"{family_module.CITATION}; {STUDY}"
    datasets = tuple(d for d in BUILTIN if d in recipes)
    family = family_module.FAMILY
    return ModelSpec(
        name, family, kind, datasets, citation, paper or {}, reference or {}, recipes, description, cam_layer, builder
    )


_RESNETS = {20: (0.9125, 30), 32: (0.9249, 40), 44: (0.9283, 50), 56: (0.9303, 50), 110: (0.9357, 60)}

# fmt: off
_SPECS = (
    _spec("lenet5", lenet, "paper", lenet.lenet5, {"mnist": Recipe(epochs=5, augment="none"), **_cifar(30)},
          "LeNet-5 (Fig. 2): tanh, average pooling, fully connected C3, linear output", cam_layer="4",
          paper={"mnist": 0.9905}),
    _spec("vgg16", vgg, "paper", vgg.vgg16, _cifar(40),
          "VGG-16 (config D) with batch norm, one linear classifier; accuracy of common reproductions",
          cam_layer="22", paper={"cifar10": 0.935}),
    _spec("allcnn", allcnn, "paper", allcnn.allcnn, _cifar(60, lr=0.05),
          "All-CNN-C (Table 2): strided convs instead of pooling, no FC layer, no BN", cam_layer="19",
          paper={"cifar10": 0.9275}),
    *(_spec(f"resnet{depth}", resnet, "paper", partial(resnet.resnet, depth), _cifar(epochs),
            f"ResNet-{depth} for CIFAR (Sec. 4.2), option-A shortcuts", cam_layer=str(1 + (depth - 2) // 2),
            paper={"cifar10": acc})
      for depth, (acc, epochs) in _RESNETS.items()),
    _spec("wrn16_4", wideresnet, "paper", partial(wideresnet.wide_resnet, 16, 4), _cifar(40),
          "WRN-16-4: pre-activation wide basic blocks, widths 64/128/256", cam_layer="8",
          paper={"cifar10": 0.950}),
    _spec("wrn28_10", wideresnet, "paper", partial(wideresnet.wide_resnet, 28, 10), _cifar(40),
          "WRN-28-10: pre-activation wide basic blocks, widths 160/320/640", cam_layer="14",
          paper={"cifar10": 0.960}),
    _spec("resnet9", resnet9, "modern", resnet9.resnet9, {"cifar10": resnet9.RECIPE},
          "ResNet-9 (Page's DAWNBench net): conv64, 128 + residual, 256, 512 + residual, max pools, fc10 x 0.125",
          cam_layer="3", paper={"cifar10": 0.94}, citation=resnet9.CITATION),
    _spec("ref_lenet", lenet, "reference", lenet.ref_lenet, _study(5, 0.05, 0.0, normalize="unit"),
          "The study's CIFAR 'LeNet-5': conv32 x2, conv64 x2, fc512, dropout", cam_layer="9",
          reference={"cifar10": 0.798}),
    _spec("ref_vgg", vgg, "reference", vgg.ref_vgg, _study(50, 0.05, 2e-4),
          "The study's VGG-like net: conv32/64/128 pairs, global pool, fc128, dropout", cam_layer="15",
          reference={"cifar10": 0.881}),
    _spec("ref_allcnn", allcnn, "reference", allcnn.ref_allcnn, _study(50, 0.1, 2e-4),
          "The study's ALL-CNN: conv + strided conv at 64/128/256, global pool, fc10", cam_layer="13",
          reference={"cifar10": 0.903}),
    _spec("ref_resnet20", resnet, "reference", resnet.ref_resnet20, _study(50, 0.1, 2e-4),
          "The study's ResNet-20: projection shortcuts (avgpool, 1x1 conv, BN)", cam_layer="10",
          reference={"cifar10": 0.910}),
    _spec("ref_wrn14_2", wideresnet, "reference", wideresnet.ref_wrn14_2, _study(50, 0.1, 1e-3),
          "The study's WRN-14-2: its ResNet unit at widths 32/64/128, dropout .3, BN after the add", cam_layer="8",
          reference={"cifar10": 0.922}),
    _spec("ref_vgg_mnist", vgg, "reference", vgg.ref_vgg_mnist, _study_mnist(batch_size=128),
          "The study's MNIST VGG-like net: conv32 x2, conv64 x2, fc256, dropout", cam_layer="8",
          reference={"mnist": 0.99}),
    _spec("ref_lenet_mnist", lenet, "reference", lenet.ref_lenet_mnist, _study_mnist(batch_size=256),
          "The study's TensorFlow LeNet-5 exercise: ReLU convs, max pooling, tanh FC layers", cam_layer="4",
          reference={"mnist": 0.986},
          citation="Géron 2017, Hands-On Machine Learning with Scikit-Learn and TensorFlow (CNN exercise)"),
)
# fmt: on

REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


def get_model(name: str) -> ModelSpec:
    """The spec called `name`, or a ConvnetsError listing the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConvnetsError(f"unknown model '{name}'; choose from: {', '.join(REGISTRY)}") from None


# The study names its nets ("ResNet-20"); its MNIST nets are named after the CIFAR-10 net of their family.
_STUDY_TITLES = {REGISTRY[model].family: net.title for model, net in STUDY_NETS.items()}


def study_title(model: str) -> str | None:
    """The study's own name for one of its nets ("ResNet-20"); None for any other model, or one that has since left
    the registry."""
    spec = REGISTRY.get(model)
    return _STUDY_TITLES.get(spec.family) if spec is not None and spec.kind == "reference" else None


def net_name(model: str) -> str:
    """What a run's net is called wherever runs are listed: the study's name for its nets ("ResNet-20 (study)"), not
    the registry's ("ref_resnet20"); else the model's."""
    title = study_title(model)
    return model if title is None else f"{title} (study)"


def image_of(spec: DatasetSpec) -> Image:
    return Image(spec.channels, spec.size, len(spec.classes))


@cache
def _fails(model: str, image: Image) -> bool:
    """Whether the network cannot run on one image of that shape (built and tried once per process). The trial net's
    initialisation draws from a copy of the random state: a run seeds, then builds its net, which must get the same
    weights whether or not this process has tried that shape before."""
    with torch.random.fork_rng(devices=[]):
        try:
            net = REGISTRY[model].builder(image).eval()
            with torch.no_grad():
                net(torch.zeros(1, image.channels, image.size, image.size))
        except (RuntimeError, ValueError):
            return True
    return False


def default_recipe(model: str, dataset: str) -> Recipe:
    """The registry's recipe for training `model` on `dataset`, or a ConvnetsError when it does not apply.

    On the study's datasets a model trains with its own recipes and only on those it has one for (the study's
    table). On any other dataset it borrows its recipe for the study dataset the other resembles (``recipe_like``;
    else its only one), with translations instead of mirroring for digits, which must not be mirrored."""
    spec, data = get_model(model), get_dataset(dataset)
    if dataset in spec.recipes:
        return spec.recipes[dataset]
    if dataset in datasets.STUDY:
        raise ConvnetsError(f"{model} applies to {', '.join(spec.datasets)}, not {dataset}")
    problem = spec.cannot_take(dataset)
    if problem:
        raise ConvnetsError(problem)
    recipe = spec.recipes.get(data.recipe_like) or next(iter(spec.recipes.values()))
    if data.digits and recipe.augment in MIRRORED:
        recipe = recipe.replace(augment="shift", tta=False)
    return recipe


def departures(model: str, dataset: str, recipe: Recipe, skip: Iterable[str] = ("epochs",)) -> str:
    """Where a run's recipe departs from the registry's for its model and dataset, bar the fields in ``skip``
    ("normalize zca, ema 0.99"; "" where nowhere): what tells two runs of one net apart beyond their epochs and
    seed. For a model or dataset that has since left the registry, against the recipe's own defaults."""
    try:
        registered = default_recipe(model, dataset)
    except ConvnetsError:
        registered = Recipe(epochs=recipe.epochs)
    return recipe.differences(registered, skip)


def models_for(dataset: str) -> list[ModelSpec]:
    """The specs that train on `dataset`, in registry order."""
    get_dataset(dataset)
    out = []
    for spec in REGISTRY.values():
        try:
            default_recipe(spec.name, dataset)
        except ConvnetsError:
            continue
        out.append(spec)
    return out
