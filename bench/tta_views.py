"""What more test-time views would add: stored runs scored on one view, on each image and its mirror (the recipe's
``tta``), and on those plus the same two shifted one pixel up-left and down-right (airbench's second TTA level).

The engine has flips only; this measures, on the weights a run stored, whether the translations are worth
building in. Views are averaged as softmax probabilities, the flips weighing half and the four shifted views the
other half. CIFAR-10 in ``shared/data`` is the JPEG copy: every figure printed says so.

    python bench/tta_views.py RUN_ID [RUN_ID ...] [--data-dir ../shared/data]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import convnets  # noqa: E402, F401 - its OpenMP settings (convnets/__init__.py) first  # isort: skip

import argparse
import time

import torch
import torch.nn.functional as F

from convnets import data as datamod
from convnets.models.classifier import mirror_averaged
from convnets.reporting import data_label
from convnets.store import Run, RunStore

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@torch.no_grad()
def view_accuracies(run: Run, data_dir: str | None, batch: int = 500) -> dict[str, float]:
    model = run.load_model("cpu").eval()
    normalize, net = model[0], model[1]

    def logits(x: torch.Tensor) -> torch.Tensor:
        return net(normalize(x))

    test, _ = datamod.load_test(run.config.dataset, data_dir)
    hits = {"one view": 0, "flips": 0, "flips and shifts": 0}
    for i in range(0, len(test), batch):
        x, y = test.images[i : i + batch].float(), test.labels[i : i + batch]
        one = logits(x).float().softmax(1)
        flips = (one + logits(x.flip(-1)).float().softmax(1)) / 2
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        shifts = sum(mirror_averaged(logits, s) for s in (padded[..., :-2, :-2], padded[..., 2:, 2:])) / 2
        for name, p in (("one view", one), ("flips", flips), ("flips and shifts", (flips + shifts) / 2)):
            hits[name] += (p.argmax(1) == y).sum().item()
    return {name: n / len(test) for name, n in hits.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_ids", nargs="+")
    parser.add_argument("--data-dir", default=str(SHARED_DATA) if SHARED_DATA.is_dir() else None)
    args = parser.parse_args()
    for run_id in args.run_ids:
        t0 = time.perf_counter()
        run = RunStore().require(run_id)
        scores = view_accuracies(run, args.data_dir)
        config = run.config
        shown = ", ".join(f"{name} {100 * acc:.2f} %" for name, acc in scores.items())
        print(f"{run_id} ({data_label(config.dataset, config.data_copy)}): {shown} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
