"""How fast Inside the net answers, on the shipped zoo's models: the page's targets are the Grad-CAM row for every zoo
model of a dataset on one input within 1 s, and one layer's feature maps within 200 ms (2-core CPU).

For each dataset it loads every finished zoo model once (as the dashboard does, once per server process), then
times, over `--repeats` runs after one warm-up, the medians of: the Grad-CAM row (`convnets.explain.explain` on
one input, every model: its answer and its map), the integrated-gradients row (no target; reported), the layer
table of each model (a forward pass under torch.utils.flop_counter) and the feature maps of every layer that
has maps, in every model. The input is an image of the sample shipped with the code, so no data is needed.

    python bench/explain_speed.py [--repeats 15] [--json]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import convnets  # noqa: E402, F401 - its OpenMP settings (convnets/__init__.py) first  # isort: skip

import argparse
import json
import statistics
import time

import torch

from convnets.device import describe_device
from convnets.explain import Explainer, explain, feature_maps, layers
from convnets.overview import read_sample
from convnets.store import ZOO_DIR, RunStore

TARGETS = {"gradcam row": 1.0, "feature maps, slowest layer": 0.2}  # seconds


def median_seconds(work, repeats: int) -> float:
    work()  # warm-up: first calls allocate and pick kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(dataset: str, repeats: int) -> dict:
    runs = RunStore(zoo=ZOO_DIR).finished(dataset)
    start = time.perf_counter()
    models = [Explainer.load(run) for run in runs]
    loading = time.perf_counter() - start
    sample, _ = read_sample(dataset)
    image = sample.images[0].permute(1, 2, 0).numpy()
    row = median_seconds(lambda: explain(models, [image], "gradcam"), repeats)
    ig = median_seconds(lambda: explain(models, [image], "ig"), max(3, repeats // 5))
    tables = {m.model: median_seconds(lambda m=m: layers(m, image), repeats) for m in models}
    maps = {(m.model, stage.path): median_seconds(lambda m=m, p=stage.path: feature_maps(m, image, p), repeats)
            for m in models for stage in layers(m, image) if stage.has_maps}
    slowest = max(maps, key=maps.get)
    return {"dataset": dataset, "models": [m.model for m in models], "loading all models": loading,
            "gradcam row": row, "integrated gradients row": ig, "layer table, slowest model": max(tables.values()),
            "feature maps, slowest layer": maps[slowest], "slowest layer": f"{slowest[0]} layer {slowest[1]}",
            "feature maps, median layer": statistics.median(maps.values()), "layers timed": len(maps)}


def verdict(key: str, seconds: float) -> str:
    target = TARGETS.get(key)
    if target is None:
        return ""
    return f"  (target {target * 1000:.0f} ms: {'met' if seconds <= target else 'MISSED'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(dataset, args.repeats) for dataset in ("mnist", "cifar10")]
    if args.json:
        print(json.dumps({"device": describe_device(torch.device("cpu")), "results": results}))
        return
    print(f"{describe_device(torch.device('cpu'))}, medians of {args.repeats} runs")
    for r in results:
        print(f"\n{r['dataset']}: {len(r['models'])} zoo models ({', '.join(r['models'])})")
        for key, value in r.items():
            if isinstance(value, float):
                print(f"  {key:<30} {value * 1000:8.1f} ms{verdict(key, value)}")
        print(f"  slowest layer: {r['slowest layer']} of {r['layers timed']} timed")


if __name__ == "__main__":
    main()
