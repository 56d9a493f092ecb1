"""How long the comparisons take: measuring a zoo run's robustness, and rendering every dashboard page from the
stored results alone.

Robustness: ``convnets.robustness.measure`` on the shipped weights of the chosen zoo runs, as the zoo's build and the
end of training run it (nothing is written), split into corrupting and predicting. Pages: each page of the dashboard
under Streamlit's AppTest, on the shipped zoo and an empty store, with no data folder, so everything shown comes from
the stored results; the first render of each page (imports, cold caches) is reported apart from the median of the
next ones.

    python bench/analysis_speed.py [--data-dir ../shared/data] [--runs RUN_ID ...] [--renders 5] [--json]
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import convnets  # noqa: E402, F401 - its OpenMP settings (convnets/__init__.py) first  # isort: skip

import argparse
import json
import statistics
import tempfile
import time

import torch

from convnets import corruptions, robustness
from convnets import data as datamod
from convnets.device import describe_device, native_bf16
from convnets.store import RunStore

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
PAGES = ("leaderboard", "curves", "errors", "compare", "robustness", "draw", "photo", "train")
DEFAULT_RUNS = ("ref_resnet20-cifar10-8110f35037", "resnet20-cifar10-fd156d2ad6")


def time_robustness(run_id: str, data_dir: str) -> dict:
    run = RunStore().require(run_id)
    test = datamod.load_copy(run.config.dataset, run.config.data_copy, data_dir).test
    images = robustness.subset(test)
    start = time.perf_counter()
    for name in corruptions.names(run.config.dataset):
        for severity in range(1, corruptions.SEVERITIES + 1):
            corruptions.corrupt(images.images, name, severity, run.config.dataset)
    corrupting = time.perf_counter() - start
    device = torch.device("cpu")
    result = robustness.measure(run.load_model(device), test, run.config.dataset, device)
    return {"run_id": run_id, "seconds": result.seconds, "corrupting_seconds": round(corrupting, 2),
            "images_predicted": result.subset * (1 + len(result.accuracy) * corruptions.SEVERITIES),
            "source": result.source, "mean_accuracy": result.mean_accuracy}


def time_pages(renders: int) -> list[dict]:
    from streamlit.testing.v1 import AppTest

    rows = []
    with tempfile.TemporaryDirectory() as home:
        os.environ.update(CONVNETS_HOME=home, CONVNETS_DATA=str(Path(home) / "no-data"), CONVNETS_OFFLINE="1")
        os.environ.pop("CONVNETS_ZOO", None)  # the shipped zoo
        for name in PAGES:
            times = []
            at = AppTest.from_file(str(APP), default_timeout=120)
            at.switch_page(f"../pages/{name}.py")
            for _ in range(renders + 1):
                start = time.perf_counter()
                at.run()
                times.append(time.perf_counter() - start)
                if at.exception:
                    raise SystemExit(f"{name}: {at.exception[0].value}")
            later = times[1:]
            rows.append({"page": name, "first_s": round(times[0], 3), "median_s": round(statistics.median(later), 3),
                         "max_s": round(max(later), 3)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(SHARED_DATA))
    p.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS), help="zoo runs to measure the robustness of")
    p.add_argument("--renders", type=int, default=5, help="timed renders per page, after the first")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    load = os.getloadavg()[0]
    out = {"device": describe_device(torch.device("cpu")), "native_bf16": native_bf16(), "load_average": load,
           "robustness": [time_robustness(r, args.data_dir) for r in args.runs], "pages": time_pages(args.renders)}
    if args.json:
        print(json.dumps(out))
        return
    print(f"{out['device']}, native bf16: {out['native_bf16']}, load average {load:.1f} at the start")
    for r in out["robustness"]:
        print(f"robustness {r['run_id']}: {r['seconds']:.1f} s ({r['corrupting_seconds']:.1f} s corrupting, "
              f"{r['images_predicted']:,} predictions, {r['source']})")
    for r in out["pages"]:
        print(f"page {r['page']:<12} first render {r['first_s']:.2f} s, then median {r['median_s']:.2f} s "
              f"(max {r['max_s']:.2f} s)")


if __name__ == "__main__":
    main()
