"""Adversarial examples: how little it takes to fool a net, measured once per run and attack method and stored with
it, like its robustness to corruptions.

The attacks are Captum's (``captum.robust``), untargeted, on the cross-entropy of the label: FGSM (Goodfellow et al.
2015), one step of ε along the sign of the loss's gradient, and PGD (Madry et al. 2018), PGD_STEPS such steps of
PGD_STEP·ε, each projected back into the ε-ball around the image, started from the image itself (no random start, so
that a figure repeats exactly).

ε is a perturbation's L∞ size in grey levels, the ε/255 of the [0, 1] pixel range that papers quote: a stored model
takes 0..255 pixels with its normalisation, and its test-time flips where the recipe has them, inside it
(``models.classifier``), so the function attacked is the model as it answers, and the attack bounds the pixels to
0..255. A perturbed image is rounded to whole grey levels, so that it is a real 8-bit image (one a PNG file would
keep); hence whole-number ε, which the rounding never exceeds.

Every run of a dataset is attacked on the fixed test subset the corruptions use (``robustness.subset``), in fp32 on
the model in eval mode: a bf16 gradient would point elsewhere.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import Split, batches
from .device import describe_device, pick_device, with_precision
from .errors import ConvnetsError
from .robustness import SEED, subset
from .schema import Attack
from .store import Run

METHODS = {"fgsm": "FGSM", "pgd": "PGD"}
EPS = (0, 1, 2, 4, 8)  # grey levels: 8/255 is the size CIFAR-10's adversarial literature reports
MAX_EPS = 255
PGD_STEPS = 10
PGD_STEP = 0.25  # of ε: 2/255 at 8/255, the usual PGD-10; 2.5 ε of path lets a pixel cross the ball and come back
BATCH = 250  # images attacked at once: four batches for the subset, and a wide net's activations stay small


def check(method: str, eps: Sequence[int]) -> list[int]:
    """The sizes asked for, each once, in the order given; or a ConvnetsError naming what is wrong."""
    if method not in METHODS:
        raise ConvnetsError(f"unknown attack '{method}'; choose from: {', '.join(METHODS)}")
    bad = [e for e in eps if isinstance(e, bool) or not isinstance(e, int) or not 0 <= e <= MAX_EPS]
    if bad or not eps:
        raise ConvnetsError(f"ε must be whole grey levels from 0 to {MAX_EPS} (an 8-bit image moves by whole "
                            f"levels), not {', '.join(map(str, bad)) or 'nothing'}")
    return list(dict.fromkeys(eps))


def settings(method: str) -> tuple[int, float]:
    """The method's gradient steps per image and each step's size as a fraction of ε."""
    return (PGD_STEPS, PGD_STEP) if method == "pgd" else (1, 1.0)


def _loss(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each image's cross-entropy (the models answer logits, or log-probabilities with test-time flips)."""
    return F.cross_entropy(outputs.float(), labels, reduction="none")


def perturb(forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, labels: torch.Tensor,
            method: str, eps: int) -> torch.Tensor:
    """``images`` (N×C×H×W float, 0..255) changed by at most ``eps`` grey levels a pixel to make ``forward`` lose
    ``labels``, in whole levels; ε = 0 is the images as they are."""
    if eps == 0:
        return images.clone()
    steps, step = settings(method)
    from captum.robust import FGSM, PGD  # at first use: importing Captum takes half a second, which every page paid

    attack = (FGSM if method == "fgsm" else PGD)(forward, _loss, lower_bound=0.0, upper_bound=255.0)
    # Captum leaves a pixel alone where its gradient is under 1e-6, a threshold on the loss's scale; a confident
    # answer's gradients are far smaller than that on 0..255 pixels, and only their sign counts here.
    (attack if method == "fgsm" else attack.fgsm).zero_thresh = 0.0
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False), warnings.catch_warnings():  # fp32 on GPUs too
        warnings.filterwarnings("ignore", "Input Tensor 0 did not already require gradients")  # it sets them itself
        if method == "fgsm":
            out = attack.perturb(images, epsilon=float(eps), target=labels)
        else:
            out = attack.perturb(images, radius=float(eps), step_size=eps * step, step_num=steps, target=labels)
    return out.detach().round()


def measure(model: nn.Module, test: Split, method: str, eps: Sequence[int], device: torch.device,
            seed: int = SEED) -> Attack:
    """The model's accuracy on the test subset, each image attacked by ``method`` at each ε in turn."""
    eps = sorted(check(method, eps))
    images = subset(test, seed=seed).to(device)
    model.eval()
    correct, seconds = dict.fromkeys(eps, 0), dict.fromkeys(eps, 0.0)
    for x, y in batches(images, BATCH):
        for e in eps:
            start = time.perf_counter()
            attacked = perturb(model, x, y, method, e)
            with torch.no_grad():
                correct[e] += int((model(attacked).argmax(1) == y).sum())
            seconds[e] += time.perf_counter() - start
    steps, step = settings(method)
    return Attack(method=method, eps=eps, accuracy=[round(correct[e] / max(len(images), 1), 6) for e in eps],
                  subset=len(images), seed=seed, steps=steps, step_size=step, source=source(device),
                  seconds=[round(seconds[e], 2) for e in eps])


def source(device: torch.device) -> str:
    """Where an attack is computed, always in fp32."""
    return with_precision(describe_device(device), False)


def attack_of(run: Run, method: str = "fgsm", eps: Sequence[int] | None = None, data_dir: str | None = None,
              device: str | None = None) -> dict:
    """The run's accuracy at each ε (default EPS) by ``method``, in the order asked: the stored figures where they
    were measured the same way and here, the others measured (with its test split, which must then be there) and
    stored beside them, unless the run is read-only."""
    eps = check(method, EPS if eps is None else eps)
    dev = pick_device(device)
    steps, step = settings(method)
    stored = run.attack(method)
    same = stored is not None and (stored["seed"], stored["steps"], stored["step_size"], stored["source"]) == (
        SEED, steps, step, source(dev))
    known = {e: (a, s) for e, a, s in zip(stored["eps"], stored["accuracy"], stored["seconds"])} if same else {}
    if missing := [e for e in eps if e not in known]:
        test = run.test_split(data_dir, f"{METHODS[method]} figures")
        new = measure(run.load_model(dev), test, method, missing, dev)
        known.update({e: (a, s) for e, a, s in zip(new.eps, new.accuracy, new.seconds)})
        order = sorted(known)
        stored = Attack(method=method, eps=order, accuracy=[known[e][0] for e in order], subset=new.subset,
                        seed=SEED, steps=steps, step_size=step, source=new.source,
                        seconds=[known[e][1] for e in order]).to_dict()
        if not run.readonly:
            run.write(f"attack-{method}.json", stored)
    return {**stored, "eps": eps, "accuracy": [known[e][0] for e in eps], "seconds": [known[e][1] for e in eps]}


def perturbation_picture(image: np.ndarray, attacked: np.ndarray, eps: int) -> tuple[np.ndarray, float]:
    """The change an attack made, amplified to be seen, as a uint8 image of the same shape: mid-grey where nothing
    changed, white and black where a pixel went ε levels up or down; and how many times the change is amplified."""
    gain = 127.5 / max(eps, 1)
    change = attacked.astype(np.float32) - image.astype(np.float32)
    return np.rint(np.clip(127.5 + change * gain, 0, 255)).astype(np.uint8), gain
