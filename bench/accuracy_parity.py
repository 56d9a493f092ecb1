"""Accuracy parity: the engine against a plain PyTorch loop on the same recipe, over seeds.

The engine (`convnets.train.train_run`, into a throw-away store) and a loop written the way the PyTorch
tutorials write it train the same registry network with the same hyper-parameters on the same data:
per-image torchvision transforms in a `DataLoader`, SGD with Nesterov momentum, PyTorch's own `OneCycleLR`
(its defaults: a cosine warm-up from peak / 25 over 30 % of the steps, cosine annealing to peak / 25e4,
momentum cycled between 0.85 and 0.95), cross-entropy with label smoothing, bf16 autocast on CUDA only.
Parity means the engine's final test accuracy lies within the spread between the loop's seeds.

    python bench/accuracy_parity.py --model resnet20 --epochs 40 --batch-size 256 --lr 0.2 \
        --weight-decay 5e-4 --label-smoothing 0.1 --seeds 0 1 --sides plain engine --data-dir ../shared/data
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import convnets  # noqa: E402, F401 - its OpenMP settings (convnets/__init__.py) first  # isort: skip

import argparse
import json
import statistics
import tempfile
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as T
from torch.utils.data import DataLoader

from convnets import data as datamod
from convnets.config import RunConfig
from convnets.device import describe_device, pick_device
from convnets.models import get_model
from convnets.reporting import data_label
from convnets.store import RunStore
from convnets.train import train_run

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class Images(torch.utils.data.Dataset):
    """A uint8 split as (transformed image, label) pairs, one image at a time as a DataLoader expects."""

    def __init__(self, split: datamod.Split, transform: T.Transform):
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.split.images[i]), int(self.split.labels[i])


def plain_loop(config: RunConfig, data: datamod.Dataset, device: torch.device, say) -> dict:
    """The tutorial-style loop; returns the final test accuracy and the per-epoch curve."""
    recipe = config.recipe
    torch.manual_seed(config.seed)
    model = get_model(config.model).build(config.dataset).to(device)
    mean, std = datamod.channel_stats(data.train)
    normalize = [T.ToDtype(torch.float32, scale=True), T.Normalize((mean / 255).tolist(), (std / 255).tolist())]
    pad, mirrored = datamod.AUGMENTS.get(recipe.augment, (0, False))
    augment = ([T.RandomCrop(32, padding=pad)] if pad else []) + ([T.RandomHorizontalFlip()] if mirrored else [])
    loader = DataLoader(Images(data.train, T.Compose([*augment, *normalize])), batch_size=recipe.batch_size,
                        shuffle=True, num_workers=0 if device.type == "cpu" else 8,
                        generator=torch.Generator().manual_seed(config.seed))
    test = DataLoader(Images(data.test, T.Compose(normalize)), batch_size=1000)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                          weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.epochs * len(loader))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    curve = []
    for epoch in range(1, recipe.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            with autocast:
                loss = F.cross_entropy(model(x), y, label_smoothing=recipe.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        correct = 0
        with torch.no_grad(), autocast:
            for x, y in test:
                correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
        curve.append({"epoch": epoch, "test_accuracy": correct / len(data.test), "seconds": time.perf_counter() - t0})
        say(f"  plain seed {config.seed} epoch {epoch}: test {correct / len(data.test):.4f} "
            f"({time.perf_counter() - t0:.0f} s)")
    return {"test_accuracy": curve[-1]["test_accuracy"], "curve": curve}


def engine(config: RunConfig, data_dir: str | None, device: torch.device, say) -> dict:
    with tempfile.TemporaryDirectory(prefix="convnets-parity-") as home:
        run, _ = train_run(config, store=RunStore(home, zoo=""), data_dir=data_dir, device=str(device),
                           command="bench/accuracy_parity.py")
        history = run.history()
    for h in history:
        say(f"  engine seed {config.seed} epoch {h['epoch']}: test {h['test_accuracy']:.4f}")
    return {"test_accuracy": history[-1]["test_accuracy"],
            "curve": [{k: h[k] for k in ("epoch", "test_accuracy", "seconds")} for h in history]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--schedule", help="the engine's schedule (default: the recipe's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--sides", nargs="+", choices=["plain", "engine"], default=["plain", "engine"])
    p.add_argument("--data-dir", default=str(SHARED_DATA) if SHARED_DATA.is_dir() else None)
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true", help="print one JSON document as the last line")
    args = p.parse_args(argv)

    say = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else (lambda s: print(s, flush=True))
    device = pick_device(args.device)
    data = datamod.load("cifar10", args.data_dir)
    recipe = get_model(args.model).recipes["cifar10"].replace(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing, schedule=args.schedule)
    label = data_label("cifar10", data.copy)
    say(f"{args.model}, CIFAR-10 {label}, {describe_device(device)}; recipe {recipe}")
    results: dict[str, list[dict]] = {side: [] for side in args.sides}
    for seed in args.seeds:
        config = RunConfig(args.model, "cifar10", recipe, seed=seed, data_copy=data.copy)
        for side in args.sides:
            out = plain_loop(config, data, device, say) if side == "plain" else engine(config, args.data_dir,
                                                                                      device, say)
            results[side].append({"seed": seed, **out})
            say(f"{side} seed {seed}: final test accuracy {out['test_accuracy']:.4f} ({label})")
    summary = {}
    for side, rows in results.items():
        accs = [r["test_accuracy"] for r in rows]
        summary[side] = {"mean": statistics.mean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else None,
                         "n": len(accs)}
        spread = f" ± {summary[side]['std']:.4f}" if summary[side]["std"] is not None else ""
        say(f"{side}: {summary[side]['mean']:.4f}{spread} over {len(accs)} seed(s) ({label})")
    if args.json:
        print(json.dumps({"model": args.model, "data": label, "device": describe_device(device),
                          "recipe": config.to_dict()["recipe"], "summary": summary, "runs": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
