"""torchrun with two CPU processes (gloo) trains the same run as one process with the same global batch."""

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from convnets.store import RunStore

ARGV = ["train", "--model", "lenet5", "--dataset", "cifar10", "--epochs", "2", "--batch-size", "40", "--lr", "0.05",
        "--device", "cpu", "--json"]


def launch(command: list[str], home, data_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONVNETS_HOME": str(home), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command + ["--data-dir", str(data_dir)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_gloo_processes_match_one_process(tmp_path, data_dir):
    single = launch([sys.executable, "-m", "convnets", *ARGV], tmp_path / "one", data_dir)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "convnets"]
    double = launch([*torchrun, *ARGV], tmp_path / "two", data_dir)

    reports = [json.loads(line) for line in double.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1, double.stdout  # rank 0 alone reports
    first = json.loads(single.stdout.splitlines()[-1])
    assert reports[0]["run_id"] == first["run_id"]  # the world size is not part of the run's identity

    runs = RunStore(home=tmp_path / "two", zoo="").runs()
    assert [r.run_id for r in runs] == [first["run_id"]] and runs[0].finished
    assert runs[0].status()["world_size"] == 2
    assert [h["images"] for h in runs[0].history()] == [400, 400]  # every image once per epoch

    a = load_file(tmp_path / "one" / "runs" / first["run_id"] / "model.safetensors")
    b = load_file(runs[0].path / "model.safetensors")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-4, rtol=1e-3), key
