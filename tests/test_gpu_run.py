"""The prepared GPU run, in its --smoke mode on the CPU, so it cannot rot while no GPU is lent.

The GPU machine has torch, torchvision, numpy, pillow, safetensors and pytest, but no streamlit, plotly or
pandas: the smoke run blocks those imports, so a core module that needs them fails here first.
"""

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_ONLY = ("streamlit", "plotly", "pandas", "streamlit_drawable_canvas")


def test_the_smoke_run_goes_through_every_stage_and_packs_a_zoo(tmp_path):
    blocked = tmp_path / "blocked"
    for name in DASHBOARD_ONLY:
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('the GPU machine has no {name}')\n")
    env = {**os.environ, "PYTHONPATH": str(blocked)}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "bench/gpu_run.py", "--smoke", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    summary = json.loads((out / "summary.json").read_text())
    stages = summary["stages"]
    assert list(stages) == ["machine", "tests", "speed", "accuracy", "shorter", "whitened", "zoo"]
    assert not any(s["timed_out"] for s in stages.values())
    assert stages["machine"]["result"]["torch"] and stages["machine"]["exit"] == 0
    assert stages["tests"]["exit"] == 0 and "skipped" in stages["tests"]["tail"][-1]  # no CUDA here
    speed = stages["speed"]["result"]
    assert speed["data"].startswith("CIFAR-10 JPEG copy") and speed["rows"][0]["engine_batches"][0]["ratio"] > 0
    assert stages["accuracy"]["result"]["curve"] and stages["accuracy"]["result"]["data"] == "JPEG copy"
    shorter = stages["shorter"]["result"]
    assert shorter["recipe"]["ema"] == 0.9 and shorter["curve"] and shorter["run_id"] != stages["accuracy"]["result"][
        "run_id"]
    whitened = stages["whitened"]["result"]
    assert whitened["recipe"]["normalize"] == "zca" and stages["whitened"]["packed"] == f"{whitened['run_id']}.tar.gz"
    with tarfile.open(out / stages["whitened"]["packed"]) as tar:
        assert {f"{whitened['run_id']}/{name}" for name in ("config.json", "model.safetensors", "history.json")} <= set(
            tar.getnames())
    assert stages["zoo"]["exit"] == 0
    log = (out / "gpu_run.log").read_text()
    assert "ImportError" not in log and "Traceback" not in log
    assert "entries to train, in order: lenet5, ref_lenet" in log  # the accuracy stage's run ships first

    # The parts make one archive that unpacks into a zoo: both smoke entries, shipped compact, with their table.
    parts = sorted(out.glob("zoo.tar.gz.part*"))
    assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    zoo = tmp_path / "unpacked" / "zoo"
    rows = json.loads((zoo / "results.json").read_text())
    assert [(r["model"], r["shipped"]) for r in rows] == [("ref_lenet", True), ("lenet5", True)]
    lenet = next(r for r in rows if r["model"] == "lenet5")
    assert lenet["run_id"] == stages["accuracy"]["result"]["run_id"]
    assert {r["weights"] for r in rows} <= {"int8", "fp16", "fp32"}
    for r in rows:
        assert {p.name for p in (zoo / "runs" / r["run_id"]).iterdir()} >= {
            "config.json", "status.json", "history.json", "evaluation.json", "mistakes.npz", "model.safetensors"}
    assert not list(out.glob(".*"))  # no temporary file left behind
