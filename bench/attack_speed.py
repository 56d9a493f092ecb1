"""How long `python -m convnets attack` takes on zoo runs: the whole command, as a user runs it, and the attack's own
seconds per ε that it reports.

Each run is attacked by a fresh ``python -m convnets attack RUN_ID --method M --json`` process (start-up, imports, the
test split read from the data folder, the model loaded, then the 1,000 images attacked at every ε); a zoo run is
read-only, so nothing is written and every repeat measures again. The first repeat also decodes the data folder's
copy into the scratch home's cache; the later ones read that cache, as a user's second command would.

    python bench/attack_speed.py [--data-dir ../shared/data] [--runs RUN_ID ...] [--method fgsm] \
        [--eps 0 1 2 4 8] [--repeats 2] [--json]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DEFAULT_RUNS = ("resnet20-cifar10-fd156d2ad6",)


def time_attack(run_id: str, method: str, eps: list[str], data_dir: str, home: str) -> dict:
    command = [sys.executable, "-m", "convnets", "attack", run_id, "--method", method, "--data-dir", data_dir,
               "--device", "cpu", "--json", *(["--eps", *eps] if eps else [])]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "CONVNETS_HOME": home}, capture_output=True,
                          text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{run_id}: {done.stderr.strip()}")
    result = json.loads(done.stdout.splitlines()[-1])
    return {"run_id": run_id, "method": method, "wall_seconds": round(wall, 2),
            "attack_seconds": round(sum(result["seconds"]), 2), "eps": result["eps"], "accuracy": result["accuracy"],
            "source": result["source"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(SHARED_DATA))
    p.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS), help="zoo runs to attack")
    p.add_argument("--method", default="fgsm")
    p.add_argument("--eps", nargs="+", default=[], help="as the command takes them (default: its own)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as home:
        rows = [dict(time_attack(r, args.method, args.eps, args.data_dir, home), repeat=i + 1)
                for r in args.runs for i in range(args.repeats)]
    if args.json:
        print(json.dumps({"load_average": load, "rows": rows}))
        return
    print(f"load average {load:.1f} at the start")
    for r in rows:
        figures = ", ".join(f"{e}: {a:.1%}" for e, a in zip(r["eps"], r["accuracy"]))
        print(f"{r['run_id']} {r['method']} (repeat {r['repeat']}): {r['wall_seconds']:.1f} s for the command, "
              f"{r['attack_seconds']:.1f} s attacking ({r['source']}); accuracy at ε/255 {figures}")


if __name__ == "__main__":
    main()
