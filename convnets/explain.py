"""Inside the net: where each model looks and what its layers see, for the CLI's `explain` and the dashboard.

The attributions are Captum's, PyTorch's own interpretability library, not hand-written: Grad-CAM (`LayerGradCam`
on the layer each registry spec names, upsampled with `LayerAttribution.interpolate`) and integrated gradients
(`IntegratedGradients`) from a black image. Every map comes back at the model's input resolution and scaled to
0..1, so that the page, the CLI and the tests read the same numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .attack import perturb
from .datasets import get_dataset
from .errors import ConvnetsError
from .imaging import kernel_tiles
from .models import get_model
from .models.classifier import Classifier, mirror_averaged
from .predict import Prediction, as_batch, choose_runs, name_of, threads_for
from .store import Run, RunStore

METHODS = {"gradcam": "Grad-CAM", "ig": "Integrated gradients"}
IG_STEPS = 32  # steps of the path integral from the black image: the maps barely change beyond it
IG_CLIP = 99.0  # this percentile of a map's magnitudes reads as 1, so that a few extreme pixels leave the rest visible


@dataclass(eq=False)
class Explainer:
    """A trained classifier (Normalize, then the registry network) ready to be looked into.

    Captum hooks the model's modules while it works, so a model that several threads share (the dashboard's
    sessions) is only ever explained under its own lock. ``net`` sees one image per pass even for a run whose
    recipe averages each image with its mirror (``tta``): a layer hook would otherwise see two passes, and the layer
    views count one; ``explain`` does the averaging itself.
    """

    run_id: str
    model: str  # the registry name
    dataset: str
    net: nn.Sequential
    cam_layer: str  # path of the Grad-CAM layer inside net[1]
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    name: str = ""  # tells runs of one model apart (reporting.run_name); the model's name where not given
    tta: bool = False  # the model answers from each image and its mirror, averaged

    @classmethod
    def load(cls, run: Run) -> Explainer:
        config = run.config
        net = run.load_model("cpu").requires_grad_(False)  # gradients flow to activations and inputs, not weights
        net.tta = False
        return cls(run.run_id, config.model, config.dataset, net, get_model(config.model).cam_layer,
                   name=name_of(run, config), tta=config.recipe.tta)

    def layer(self, path: str) -> nn.Module:
        """The module at `path` inside the network (net[1], after the input normalisation)."""
        try:
            return self.net[1].get_submodule(path)
        except AttributeError:
            raise ConvnetsError(f"{self.model} has no layer '{path}'") from None


def runs_to_explain(dataset: str, store: RunStore | None = None, run_ids: Sequence[str] = ()) -> list[Run]:
    """The runs named (each a finished run of `dataset`), or else every finished run of `dataset` but those at
    chance level, which learned nothing to look at (as `predict` leaves them out)."""
    store = store or RunStore()
    if not run_ids:
        summaries = [r.summary() for r in store.finished(dataset)]
        runs = [store.require(run_id) for run_id in choose_runs(summaries)]
        if not runs:
            raise ConvnetsError(f"no finished {dataset} model in the store; train one first "
                                f"(python -m convnets train --model ... --dataset {dataset})")
        return runs
    runs = [store.require(run_id) for run_id in run_ids]
    for run in runs:
        if run.config.dataset != dataset:
            raise ConvnetsError(f"run {run.run_id} is a {run.config.dataset} model, not a {dataset} one")
        if not run.finished:
            raise ConvnetsError(f"run {run.run_id} has not finished ({run.status()['state']})")
    return runs


@dataclass
class Explanation:
    """One model's answer for one image, and the map of where it looks for the evidence of class `target`."""

    prediction: Prediction
    target: int
    method: str  # a key of METHODS
    heatmap: np.ndarray  # HxW float32 in 0..1 at the model's input resolution

    @property
    def target_name(self) -> str:
        return self.prediction.classes[self.target]

    def to_dict(self) -> dict:
        return {**self.prediction.to_dict(), "method": self.method, "target": self.target,
                "target_name": self.target_name, "map": np.round(self.heatmap, 4).tolist()}


def explain(explainers: Sequence[Explainer], images: Sequence[np.ndarray], method: str = "gradcam",
            target: int | None = None) -> list[list[Explanation]]:
    """For each image (H×W grey or H×W×3, uint8, at the dataset's side), every model's answer and the map of
    where it looks for class `target`, or for its own answer when `target` is None."""
    if method not in METHODS:
        raise ConvnetsError(f"unknown method '{method}'; choose from: {', '.join(METHODS)}")
    out: list[list[Explanation]] = [[] for _ in images]
    if not explainers:
        return out
    dataset = _one_dataset(explainers)
    batch = _checked_batch(images, dataset)
    classes = list(get_dataset(dataset).classes)
    if target is not None and not 0 <= target < len(classes):
        raise ConvnetsError(f"class {target} is not one of {dataset}'s {len(classes)} classes")
    with threads_for(len(images)):  # integrated gradients too: its 32 steps ran 4x slower on 2 busy cores
        for explainer in explainers:
            with explainer.lock:
                with torch.no_grad():
                    probabilities = _probabilities(explainer, batch)
                targets = probabilities.argmax(1) if target is None else torch.full((len(images),), target)
                maps = _attribution(explainer, method, batch, targets)
            for i, (p, t) in enumerate(zip(probabilities.tolist(), targets.tolist())):
                prediction = Prediction(explainer.run_id, explainer.model, explainer.name or explainer.model, p,
                                        classes)
                out[i].append(Explanation(prediction, t, method, maps[i]))
    return out


def _one_dataset(explainers: Sequence[Explainer]) -> str:
    datasets = {e.dataset for e in explainers}
    if len(datasets) > 1:
        raise ConvnetsError(f"models of one dataset at a time, not of {', '.join(sorted(datasets))}")
    return datasets.pop()


def _checked_batch(images: Sequence[np.ndarray], dataset: str) -> torch.Tensor:
    channels, side, _ = get_dataset(dataset).shape
    expected = (side, side) if channels == 1 else (side, side, channels)
    for image in images:
        if image.shape not in (expected, (side, side, channels)):
            raise ConvnetsError(f"a {dataset} model takes {'×'.join(map(str, expected))} images, not "
                                f"{'×'.join(map(str, image.shape))}")
    return as_batch([image.reshape(expected) for image in images])


def _probabilities(explainer: Explainer, batch: torch.Tensor) -> torch.Tensor:
    """The model's answer: softmax of the network, averaged with its answer for the mirror where the recipe says."""
    return mirror_averaged(explainer.net, batch) if explainer.tta else explainer.net(batch).softmax(1)


def _attribution(explainer: Explainer, method: str, batch: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """The method's maps scaled to 0..1; a model that averages each image with its mirror gets the average of the
    two views' evidence, the mirror's flipped back onto the image (for integrated gradients this is exactly the
    attribution of the averaged logits: the method is linear in the function, and the black baseline is its own
    mirror)."""
    attribute, scale = _ATTRIBUTIONS[method]
    raw = attribute(explainer, batch, targets)
    if explainer.tta:
        raw = (raw + attribute(explainer, batch.flip(-1), targets).flip(-1)) / 2
    return scale(raw)


def _gradcam(explainer: Explainer, batch: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Selvaraju et al. 2017: the layer's maps weighted by their mean gradient, positive part, upsampled (Nx1xHxW)."""
    from captum.attr import LayerAttribution, LayerGradCam  # at first use: importing Captum takes half a second

    cam = LayerGradCam(explainer.net, explainer.layer(explainer.cam_layer))
    maps = cam.attribute(batch, target=targets, relu_attributions=True)
    return LayerAttribution.interpolate(maps.detach(), tuple(batch.shape[2:]), interpolate_mode="bilinear")


def _scale_gradcam(maps: torch.Tensor) -> np.ndarray:
    """Each map over its own peak."""
    peak = maps.flatten(1).amax(1).clamp_min(1e-12)
    return (maps[:, 0] / peak[:, None, None]).clamp(0, 1).numpy()


def _integrated_gradients(explainer: Explainer, batch: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sundararajan et al. 2017, from a black image: how much each pixel and channel counts, for or against the
    class (NxCxHxW)."""
    from captum.attr import IntegratedGradients  # at first use, as in _gradcam

    ig = IntegratedGradients(explainer.net)
    return ig.attribute(batch, baselines=torch.zeros_like(batch), target=targets, n_steps=IG_STEPS).detach()


def _scale_integrated_gradients(attributions: torch.Tensor) -> np.ndarray:
    """The magnitude, summed over colour channels, with the IG_CLIP percentile as 1."""
    magnitude = attributions.abs().sum(1)
    top = torch.quantile(magnitude.flatten(1), IG_CLIP / 100, dim=1).clamp_min(1e-12)
    return (magnitude / top[:, None, None]).clamp(0, 1).numpy()


_Attribute = Callable[[Explainer, torch.Tensor, torch.Tensor], torch.Tensor]
_ATTRIBUTIONS: dict[str, tuple[_Attribute, Callable[[torch.Tensor], np.ndarray]]] = {
    "gradcam": (_gradcam, _scale_gradcam), "ig": (_integrated_gradients, _scale_integrated_gradients)}


@dataclass
class Attacked:
    """An input, the same input attacked to change the model's answer, and where the model looks in each."""

    method: str  # a key of attack.METHODS
    eps: int  # the attack's size in grey levels
    original: np.ndarray  # uint8, as given
    image: np.ndarray  # the attacked input, uint8 of the same shape
    before: Explanation  # Grad-CAM of the model's answer on the original
    after: Explanation  # and on the attacked input

    @property
    def fooled(self) -> bool:
        return self.after.prediction.label != self.before.prediction.label


def attacked(explainer: Explainer, image: np.ndarray, method: str = "fgsm", eps: int = 8) -> Attacked:
    """``image`` attacked (``attack.perturb``) away from the model's own answer, there being no label to go by for a
    drawing or a photo, and the Grad-CAM of the model's answer on both."""
    batch = _checked_batch([image], explainer.dataset)
    with threads_for(1), explainer.lock:  # no other session's Captum hooks may see these passes
        with torch.no_grad():
            answer = _probabilities(explainer, batch).argmax(1)
        out = perturb(_answering(explainer), batch, answer, method, eps)
    changed = out[0].to(torch.uint8).permute(1, 2, 0).numpy().reshape(image.shape)
    before, after = (row[0] for row in explain([explainer], [image, changed], "gradcam"))
    return Attacked(method, eps, image, changed, before, after)


def _answering(explainer: Explainer) -> nn.Module:
    """The explainer's network as the stored classifier answers, test-time flips included where the recipe has them
    (the explainer's own looks at one view at a time); the same modules, in eval mode."""
    return Classifier(*explainer.net, tta=explainer.tta).eval()


# --- layer by layer -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One stage of a network (a child of its top-level Sequential) as it processes one image."""

    path: str
    kind: str  # the module's class, or the classes a plain Sequential chains
    shape: tuple[int, ...]  # its output for one image: (channels, height, width) or (features,)
    params: int
    flops: int  # for one image, as torch.utils.flop_counter counts them (a multiply-add is two)

    @property
    def has_maps(self) -> bool:
        return len(self.shape) == 3


def layers(explainer: Explainer, image: np.ndarray) -> list[Layer]:
    """The network's stages with what each makes of `image`: output shape, parameters and FLOPs."""
    net = explainer.net[1]
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [child.register_forward_hook(_shape_recorder(shapes, name)) for name, child in net.named_children()]
    try:
        with threads_for(1), explainer.lock, torch.no_grad(), FlopCounterMode(display=False) as counter:
            explainer.net(_checked_batch([image], explainer.dataset))
    finally:
        for hook in hooks:
            hook.remove()
    counts = counter.get_flop_counts()
    prefix = f"{type(explainer.net).__name__}.1."  # the counter names modules by their path from the root
    return [Layer(name, _kind(child), shapes[name], sum(p.numel() for p in child.parameters()),
                  sum(counts.get(prefix + name, {}).values()))
            for name, child in net.named_children()]


def _shape_recorder(shapes: dict[str, tuple[int, ...]], name: str) -> Callable:
    def record(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        shapes[name] = tuple(output.shape[1:])

    return record


def _kind(module: nn.Module) -> str:
    if type(module) is nn.Sequential:
        return " → ".join(_kind(child) for child in module.children())
    return type(module).__name__


@dataclass
class FeatureMaps:
    """A layer's output for one image, its most active channel first."""

    maps: np.ndarray  # CxHxW float32
    channels: np.ndarray  # each map's channel number in the layer
    means: np.ndarray  # each map's mean activation, the order

    def scaled(self) -> np.ndarray:
        """The maps in 0..1 on one scale for the whole layer, so that a weak map looks weak beside a strong one."""
        low, high = float(self.maps.min()), float(self.maps.max())
        return (self.maps - low) / max(high - low, 1e-12)


def feature_maps(explainer: Explainer, image: np.ndarray, path: str) -> FeatureMaps:
    """What the layer at `path` outputs for `image`, channel by channel, ordered by mean activation."""
    module = explainer.layer(path)
    seen: list[torch.Tensor] = []
    # clone: an in-place activation after the layer would otherwise change what was recorded
    hook = module.register_forward_hook(lambda _m, _i, output: seen.append(output.detach().clone()))
    try:
        with threads_for(1), explainer.lock, torch.no_grad():
            explainer.net(_checked_batch([image], explainer.dataset))
    finally:
        hook.remove()
    output = seen[0][0]
    if output.dim() != 3:
        raise ConvnetsError(f"layer {path} of {explainer.model} outputs {output.numel()} features, not maps")
    means = output.mean((1, 2))
    order = torch.argsort(means, descending=True)
    return FeatureMaps(output[order].numpy(), order.numpy(), means[order].numpy())


def first_filters(explainer: Explainer) -> np.ndarray:
    """The first convolution's kernels as small images, NxKxKxC (C: the input's 1 or 3 channels): ``kernel_tiles``."""
    conv = next(m for m in explainer.net[1].modules() if isinstance(m, nn.Conv2d))
    return kernel_tiles(conv.weight.detach().float().numpy())
