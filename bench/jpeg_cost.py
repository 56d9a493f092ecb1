"""What the CIFAR-10 JPEG copy costs in accuracy, measured on the copy itself rather than guessed.

The official pixels cannot be had here, so the copy's own compression cannot be undone; what can be measured
is what one more compression does. Re-encoding at the copy's own setting (quality
75) is no experiment: JPEG at one quality is nearly idempotent, and the script prints how little that pass
changes. So the variant re-encodes the copy's decoded pixels at the quality whose re-compression distorts the
copy as much as the first compression distorted the originals (median PSNR 30.6 dB, the figure measured
against the original pixels in ``shared/data/README.md``), and writes them as a CIFAR-10 pack that the real
loader reads: the closest stand-in for "original -> copy" that can be made without the originals.

Then (1) training: the same recipe and seeds trained through the real engine on the copy and on the variant,
each tested on its own test split; (2) evaluation: the models trained on the copy, evaluated on the train and
test splits of both. The drop in (1) is what a second compression of that strength costs a recipe end to end.

    python bench/jpeg_cost.py [--data-dir ../shared/data] [--model lenet5] [--epochs 10] [--seeds 0 1]
        [--device D] [--json]
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import convnets  # noqa: E402, F401 - its OpenMP settings (convnets/__init__.py) first  # isort: skip

import argparse
import io
import json
import statistics
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from convnets import data as datamod
from convnets.config import RunConfig
from convnets.device import describe_device, pick_device
from convnets.evaluate import evaluate
from convnets.models import get_model
from convnets.store import RunStore
from convnets.train import train_run

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
COPY_QUALITY = 75  # the copy's own setting (shared/data/README.md)
FIRST_PASS_PSNR = 30.6  # dB, median, copy against the original pixels (shared/data/README.md)


def encode(images: torch.Tensor, quality: int) -> list[bytes]:
    """JPEG files of uint8 N×3×H×W images, with PIL's defaults (4:2:0 chroma) at `quality`."""
    out = []
    for pixels in images.permute(0, 2, 3, 1).numpy():
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


def recompress(images: torch.Tensor, quality: int) -> torch.Tensor:
    """The images after one more JPEG pass at `quality`, decoded by the loader's own decoder."""
    return datamod.decode_images([(f, 0, f"image {i}") for i, f in enumerate(encode(images, quality))]).images


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of uint8 images."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(255.0**2 / mse)


def matched_quality(images: torch.Tensor, target: float = FIRST_PASS_PSNR) -> tuple[int, float]:
    """The JPEG quality whose re-compression of `images` lands closest to `target` dB median PSNR, and that PSNR."""
    found: dict[int, float] = {}

    def median_psnr(quality: int) -> float:
        if quality not in found:
            found[quality] = psnr(images, recompress(images, quality)).median().item()
        return found[quality]

    lo, hi = 1, 95
    while lo < hi:  # PSNR grows with quality: find the lowest quality at or above the target
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if median_psnr(mid) < target else (lo, mid)
    best = min((max(lo - 1, 1), lo), key=lambda q: abs(median_psnr(q) - target))
    return best, found[best]


def write_pack(data: datamod.Dataset, quality: int, root: Path) -> Path:
    """A data folder holding the dataset re-compressed at `quality`, in the shared pack's format."""
    arrays: dict[str, np.ndarray] = {"classes": np.asarray(data.classes)}
    for name in ("train", "test"):
        split = getattr(data, name)
        files = encode(split.images, quality)
        arrays[f"{name}_jpeg"] = np.frombuffer(b"".join(files), np.uint8)
        arrays[f"{name}_off"] = np.cumsum([0] + [len(f) for f in files]).astype(np.int64)
        arrays[f"{name}_y"] = split.labels.numpy().astype(np.uint8)
    root.mkdir(parents=True)
    np.savez(root / datamod.JPEG_PACK, **arrays)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(SHARED_DATA) if SHARED_DATA.is_dir() else None)
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON document as the last line")
    args = parser.parse_args(argv)
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else (lambda s: print(s, flush=True))

    if datamod.find_source("cifar10", args.data_dir).copy != "jpeg":
        parser.error(f"{args.data_dir} does not hold the CIFAR-10 JPEG copy")
    device = pick_device(args.device)
    recipe = get_model(args.model).recipes["cifar10"].replace(epochs=args.epochs)
    with tempfile.TemporaryDirectory(prefix="convnets-jpeg-") as tmp:
        os.environ["CONVNETS_HOME"] = str(Path(tmp) / "home")  # decoded caches of the variants stay in here
        copy = datamod.load("cifar10", args.data_dir)
        sample = copy.test.images[:2000]
        matched, matched_psnr = matched_quality(sample)
        again = recompress(sample, COPY_QUALITY)
        distortion = {COPY_QUALITY: psnr(sample, again).median().item(), matched: matched_psnr}
        unchanged = (again == sample).flatten(1).all(1).float().mean().item()
        variants = {"copy": args.data_dir, "matched": str(write_pack(copy, matched, Path(tmp) / "matched"))}
        say(f"{args.model}, recipe {recipe}, seeds {args.seeds}, {describe_device(device)}")
        say(f"re-compressing the copy at its own quality {COPY_QUALITY}: median PSNR {distortion[COPY_QUALITY]:.1f} "
            f"dB, {unchanged:.0%} of the images come back bit-identical (the copy against the originals: "
            f"{FIRST_PASS_PSNR} dB)")
        say(f"matched: re-compressed at quality {matched}, median PSNR {distortion[matched]:.1f} dB against the copy")

        trained: dict[str, list[float]] = {}
        models = []
        for name, data_dir in variants.items():
            store = RunStore(Path(tmp) / "runs" / name, zoo="")
            trained[name] = []
            for seed in args.seeds:
                t0 = time.perf_counter()
                run, _ = train_run(RunConfig(args.model, "cifar10", recipe, seed=seed, data_copy="jpeg"), store=store,
                                   data_dir=data_dir, device=args.device, command="bench/jpeg_cost.py")
                trained[name].append(run.evaluation()["test_accuracy"])
                say(f"trained on {name}, seed {seed}: test accuracy {trained[name][-1]:.4f} "
                    f"({time.perf_counter() - t0:.0f} s)")
                if name == "copy":
                    models.append(run.load_model(device))

        evaluated: dict[str, dict[str, float]] = {}
        for name, data_dir in variants.items():
            data = datamod.load("cifar10", data_dir)
            evaluated[name] = {s: statistics.mean(evaluate(m, getattr(data, s).to(device), device)["accuracy"]
                                                  for m in models) for s in ("train", "test")}

    base = statistics.mean(trained["copy"])
    say("\n(1) trained and tested on each variant (mean over seeds; drop against the copy, in points):")
    for name, accs in trained.items():
        mean = statistics.mean(accs)
        say(f"  {name:<9} {mean:.4f}  {' '.join(f'{a:.4f}' for a in accs)}  drop {100 * (base - mean):+.2f}")
    say("(2) models trained on the copy, evaluated on each variant's splits:")
    for name, acc in evaluated.items():
        say(f"  {name:<9} train {acc['train']:.4f}  test {acc['test']:.4f}  "
            f"drop {100 * (evaluated['copy']['test'] - acc['test']):+.2f} (test)")
    if args.json:
        print(json.dumps({"model": args.model, "recipe": recipe.__dict__, "seeds": args.seeds,
                          "device": describe_device(device), "matched_quality": matched,
                          "median_psnr_db": {str(q): d for q, d in distortion.items()}, "unchanged_at_q75": unchanged,
                          "trained": trained, "evaluated": evaluated}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
