"""A trained run as a folder to take elsewhere: fp32 weights (safetensors, for PyTorch) or an ONNX model (for
onnxruntime alone), its class names, a model card and a loading snippet that runs as written.

The safetensors export is the run's classifier, dequantised from the zoo's int8/fp16 forms: it takes 0..255
pixels, as every model here does, its input statistics among its tensors. The ONNX graph wraps the same classifier
so that it takes what a user of another toolkit has at hand, float32 NCHW pixels in [0, 1], and returns class
probabilities: the normalisation and, where the recipe has them, the test-time flips are inside it.
Every export is checked before it is reported: the written model, loaded back the way the snippet loads it, must
agree with the run's PyTorch model on the test split's images (else the shipped sample, else the run's stored
mistakes), and that figure goes into the model card.
"""

from __future__ import annotations

import dataclasses
import io
import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from . import data as datamod
from .config import reproduce_command
from .datasets import get_dataset
from .errors import ConvnetsError
from .inference import INPUT, OUTPUT, Probabilities, open_session, write_onnx
from .models import get_model
from .models.classifier import build_classifier
from .overview import read_sample
from .reporting import data_label, pct
from .store import Run

FORMATS = ("safetensors", "onnx")
MIN_AGREEMENT = 0.999  # the share of images on which the exported model must pick the run's class
TOLERANCE = 1e-3  # the largest difference in any class probability
BATCH = 500
WEIGHTS = {"safetensors": "model.safetensors", "onnx": "model.onnx"}


@dataclass(frozen=True)
class Check:
    """How far the written model's answers are from the run's PyTorch model's, on ``images`` images of ``source``."""

    images: int
    source: str
    agreement: float  # the share of images given the same class
    max_difference: float  # the largest difference in any class probability

    @property
    def passed(self) -> bool:
        return self.agreement >= MIN_AGREEMENT and self.max_difference <= TOLERANCE

    def sentence(self) -> str:
        return (f"On {self.images:,} images ({self.source}), the exported model gives the same class as the run's "
                f"PyTorch model on {pct(self.agreement)} of them, its probabilities within "
                f"{self.max_difference:.1e} (required: {pct(MIN_AGREEMENT)} and {TOLERANCE:g}).")


def export_run(run: Run, fmt: str, out: Path, data_dir: str | None = None) -> dict:
    """Write the run's export in ``fmt`` (one of FORMATS) into the folder ``out``, check it, and return what was
    written and the check's figures; a ConvnetsError if the run cannot be exported or the check fails."""
    if fmt not in FORMATS:
        raise ConvnetsError(f"unknown export format '{fmt}' ({', '.join(FORMATS)})")
    if not run.finished:
        raise ConvnetsError(f"run {run.run_id} is {run.status()['state']}, not finished: only a finished run has a "
                            "model to export")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConvnetsError(f"cannot create the export folder {out} ({e.strerror})") from None
    model = run.load_model("cpu").to(memory_format=torch.contiguous_format)
    reference = Probabilities(model, scale=255).eval()
    images, labels, source = _check_images(run, data_dir)
    if fmt == "onnx":
        write_onnx(reference, images[:2].float() / 255, out / WEIGHTS[fmt])
        answer = _onnx_answer(out / WEIGHTS[fmt])
    else:
        save_file({k: v.float().contiguous() if v.is_floating_point() else v.contiguous()
                   for k, v in model.state_dict().items()}, str(out / WEIGHTS[fmt]), metadata={"form": "fp32"})
        reloaded = Probabilities(build_classifier(run.config, load_file(out / WEIGHTS[fmt])), scale=255).eval()
        answer = _torch_answer(reloaded)
    check = _check(_torch_answer(reference), answer, images, source)
    classes = list(get_dataset(run.config.dataset).classes)
    (out / "classes.json").write_text(json.dumps(classes, indent=1))
    (out / "config.json").write_text(json.dumps(run.config.to_dict(), indent=1))
    np.save(out / "example.npy", images[0].numpy())
    snippet = SNIPPETS[fmt]
    (out / "example.py").write_text(snippet)
    (out / "README.md").write_text(model_card(run, fmt, check, classes[int(labels[0])], snippet))
    result = {"run_id": run.run_id, "format": fmt, "folder": str(out),
              "files": sorted(p.name for p in out.iterdir() if p.is_file()), **dataclasses.asdict(check),
              "passed": check.passed}
    if not check.passed:
        raise ConvnetsError(f"the {fmt} export of {run.run_id} in {out} does not match the run: {check.sentence()}")
    return result


def export_zip(run: Run, fmt: str, data_dir: str | None = None) -> bytes:
    """The export as a zip of one folder named after the run and the format, for a download button."""
    name = f"{run.run_id}-{fmt}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / name
        export_run(run, fmt, folder, data_dir)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(folder.iterdir()):
                z.write(path, f"{name}/{path.name}")
    return buffer.getvalue()


def _check_images(run: Run, data_dir: str | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Images (N×C×H×W uint8) and labels to check an export on: the run's test split when it is on disk (never a
    download), else the shipped sample of its dataset, else its stored most confident mistakes."""
    config = run.config
    if datamod.find_source(config.dataset, data_dir).kind != "download":
        try:
            split = run.test_split(data_dir, "check images")
            return split.images, split.labels, f"the {data_label(config.dataset, config.data_copy)} test split"
        except ConvnetsError:
            pass
    try:
        sample, _ = read_sample(config.dataset)
        return sample.images, sample.labels, "the shipped sample of test images"
    except ConvnetsError:
        pass
    images, records = run.mistakes()
    if not records:
        raise ConvnetsError(f"no images to check the export of {run.run_id} on: its test split is not in the data "
                            "folder, the shipped sample has none of its dataset and the run kept no mistakes")
    labels = torch.tensor([r["true"] for r in records])
    return torch.from_numpy(images[: len(records)]).permute(0, 3, 1, 2).contiguous(), labels, "the run's mistakes"


def _torch_answer(model: nn.Module):
    @torch.inference_mode()
    def answer(pixels: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(pixels)).numpy()
    return answer


def _onnx_answer(path: Path):
    session = open_session(path)
    return lambda pixels: session.run([OUTPUT], {INPUT: pixels})[0]


def _check(reference, answer, images: torch.Tensor, source: str) -> Check:
    same, worst = 0, 0.0
    for start in range(0, len(images), BATCH):
        pixels = (images[start : start + BATCH].float() / 255).numpy()
        ours, theirs = reference(pixels), answer(pixels)
        same += int((ours.argmax(1) == theirs.argmax(1)).sum())
        worst = max(worst, float(np.abs(ours - theirs).max()))
    return Check(len(images), source, same / len(images), worst)


SNIPPETS = {
    "safetensors": '''"""Classify the example image with the exported weights and PyTorch (convnets importable)."""
import json

import numpy as np
import torch
from safetensors.torch import load_file

from convnets.config import RunConfig
from convnets.models.classifier import build_classifier

with open("config.json") as f:
    config = RunConfig.from_dict(json.load(f))
with open("classes.json") as f:
    classes = json.load(f)
model = build_classifier(config, load_file("model.safetensors")).eval()
image = np.load("example.npy")  # C x H x W, uint8
with torch.no_grad():  # the model takes 0..255 pixels: its input normalisation is inside it
    probabilities = model(torch.from_numpy(image)[None].float()).softmax(1)[0]
print(classes[int(probabilities.argmax())], f"{float(probabilities.max()):.1%}")
''',
    "onnx": f'''"""Classify the example image with the exported ONNX model and onnxruntime alone (no PyTorch)."""
import json

import numpy as np
import onnxruntime

session = onnxruntime.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
with open("classes.json") as f:
    classes = json.load(f)
image = np.load("example.npy")  # C x H x W, uint8
pixels = image[None].astype(np.float32) / 255  # N x C x H x W in [0, 1]: the normalisation is inside the graph
probabilities = session.run(["{OUTPUT}"], {{"{INPUT}": pixels}})[0][0]
print(classes[int(probabilities.argmax())], f"{{float(probabilities.max()):.1%}}")
''',
}


def model_card(run: Run, fmt: str, check: Check, example_class: str, snippet: str) -> str:
    """The export's README.md: what the model is, where it comes from, how good it is, how to load it."""
    s = run.summary()
    config, spec, dataset = run.config, get_model(run.config.model), get_dataset(run.config.dataset)
    recipe = config.recipe
    robustness = run.robustness()
    shape = f"{dataset.channels}×{dataset.size}×{dataset.size}"
    if fmt == "onnx":
        inside = (f"input normalisation ('{recipe.normalize}') and the test-time flips (each image averaged with "
                  "its mirror) are" if recipe.tta else f"input normalisation ('{recipe.normalize}') is")
        inputs = (f"`{INPUT}`: float32 N×{shape} (NCHW) images, pixels / 255 in [0, 1]; any batch size. Output "
                  f"`{OUTPUT}`: N×{len(dataset.classes)} class probabilities. The {inside} inside the graph.")
    else:
        flips = " Test-time flips: the classifier averages each image with its mirror in eval mode." if recipe.tta \
            else ""
        buffers = "`0.mean`, `0.std` and the whitening filter `0.whiten`" if recipe.normalize == "zca" else \
            "`0.mean` and `0.std`"
        inputs = (f"float32 N×{shape} (NCHW) images of 0..255 pixels; the model returns logits (softmax them). Its "
                  f"input normalisation ('{recipe.normalize}') is in the weights, as {buffers}.{flips}")
    rows = [
        ("Model", f"{config.model}: {spec.description}"),
        ("Paper", spec.citation),
        ("Dataset", f"{dataset.label}, {data_label(config.dataset, config.data_copy)} data"),
        ("Licence of the data", dataset.source),
        ("Recipe", ", ".join(f"{k} {v}" for k, v in dataclasses.asdict(recipe).items()) + f"; seed {config.seed}"),
        ("Parameters", f"{s.get('params'):,}" if s.get("params") else "–"),
        ("Test accuracy", pct(s.get("test_accuracy"))),
        ("Expected calibration error", pct(s.get("calibration_error"))),
        ("Robustness", f"{pct(robustness['mean_accuracy'])} mean test accuracy under corruptions "
                       f"({robustness['subset']:,} test images, clean {pct(robustness['clean_accuracy'])})"
         if robustness else "not measured"),
        ("Trained on", f"{s.get('device') or '–'}, {s.get('train_seconds', 0):,.0f} s, {s.get('epochs_done')} epochs"),
        ("Run", f"{run.run_id}" + (" (the shipped zoo)" if run.readonly else "")),
    ]
    command = s.get("command") or reproduce_command(config, None)
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    loading = ("onnxruntime alone: `pip install onnxruntime`" if fmt == "onnx" else
               "plain PyTorch, with this project's `convnets` package importable (its architecture files), "
               "`safetensors` and `numpy`")
    return f"""# {config.model} on {dataset.label} ({fmt})

| | |
|---|---|
{table}

## Input and output

{inputs}

Classes, in output order (`classes.json`): {", ".join(dataset.classes)}.

## Checked

{check.sentence()}

## Load it

With {loading}; from this folder, `python example.py` classifies `example.npy`, a test image
(class {example_class}):

```python
{snippet.rstrip()}
```

## Reproduce it

```bash
{command}
```
"""
