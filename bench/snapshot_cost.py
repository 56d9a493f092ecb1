"""What live snapshots cost a training run: one snapshot's time against one training step's, measured in the same
run, interleaved, and the share of training time that makes at the default interval.

A snapshot (convnets.snapshots) is taken every EVERY_SECONDS of training, so its cost as a share of training time is
its own time over that interval, whatever the step's: this prints both, and the step's for scale. Random data of the
dataset's shape; a throw-away store.

    python bench/snapshot_cost.py [--model resnet20] [--dataset cifar10] [--device cpu] [--rounds 5]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from convnets import snapshots  # noqa: E402
from convnets.config import RunConfig  # noqa: E402
from convnets.data import Split, get_dataset  # noqa: E402
from convnets.device import describe_device, pick_device  # noqa: E402
from convnets.models import default_recipe, get_model  # noqa: E402
from convnets.store import RunStore  # noqa: E402
from convnets.train import Trainer, choose_bf16  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    device = pick_device(args.device)
    spec = get_dataset(args.dataset)
    config = RunConfig(args.model, args.dataset, default_recipe(args.model, args.dataset))
    n = max(config.recipe.batch_size, 400)
    split = Split(torch.randint(0, 256, (n, *spec.shape), dtype=torch.uint8),
                  torch.arange(n) % len(spec.classes)).to(device)
    bf16, why = choose_bf16(config, split, device)
    trainer = Trainer(config, split, device, compile=False, bf16=bf16)
    x, y = next(trainer.batches(split, 1))
    with tempfile.TemporaryDirectory() as home:
        run = RunStore(home).create(config)
        snap = snapshots.Snapshotter(run, trainer.model, get_model(args.model).cam_layer, split, list(spec.classes))
        steps, takes = [], []
        trainer.step(x, y)  # warm-up
        snap.take(0, 1, 0.0, 0.1, 2.3, 0.1)
        for r in range(args.rounds):
            t0 = time.perf_counter()
            trainer.step(x, y)
            steps.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            snap.take(r + 1, 1, float(r + 1), 0.1, 2.3, 0.1)
            takes.append(time.perf_counter() - t0)
        snap.close()
        size = (run.path / snapshots.FILE).stat().st_size
    step, take = statistics.median(steps), statistics.median(takes)
    print(f"{args.model} on {args.dataset}, batch {config.recipe.batch_size}, {describe_device(device)}, {why}")
    print(f"training step {1000 * step:.0f} ms, snapshot {1000 * take:.0f} ms (medians of {args.rounds}, interleaved); "
          f"{args.rounds + 1} snapshots in {size / 1e3:.0f} KB")
    print(f"at one snapshot every {snapshots.EVERY_SECONDS:g} s of training: {take / snapshots.EVERY_SECONDS:.2%} "
          "of training time")


if __name__ == "__main__":
    main()
