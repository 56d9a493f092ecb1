"""Exports: a tiny trained run in both formats, checked against the run, whose loading snippets run as written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from ui_helpers import built_store, copy_runs  # noqa: F401 - built_store is a fixture

from convnets import export, inference
from convnets.cli import main
from convnets.config import Recipe, RunConfig
from convnets.errors import ConvnetsError
from convnets.models.classifier import classifier
from convnets.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def store(built_store, home) -> RunStore:  # noqa: F811 - the fixture imported above
    copy_runs(built_store, home)
    return RunStore()


def mnist_run(store: RunStore):
    return next(r for r in store.finished("mnist") if r.config.model == "lenet5")


def snippet_output(folder: Path, block_torch: bool) -> str:
    """``python example.py`` in the export's folder; with ``block_torch``, in an interpreter where importing torch
    fails, as where only onnxruntime is installed."""
    code = "import sys, runpy\n" + ("sys.modules['torch'] = None\n" if block_torch else "") + \
        "runpy.run_path('example.py', run_name='__main__')"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def expected_answer(run, folder: Path) -> str:
    image = torch.from_numpy(np.load(folder / "example.npy"))[None].float()
    with torch.no_grad():
        label = int(run.load_model()(image).argmax())
    return json.loads((folder / "classes.json").read_text())[label]


def test_both_formats_are_checked_against_the_run_and_their_snippets_run(store, data_dir, tmp_path):
    run = mnist_run(store)
    for fmt, block_torch in (("safetensors", False), ("onnx", True)):
        folder = tmp_path / fmt
        result = export.export_run(run, fmt, folder, str(data_dir))
        assert result["passed"] and result["images"] == 200 and "test split" in result["source"]
        assert result["agreement"] >= 0.999 and result["max_difference"] <= 1e-3
        assert set(result["files"]) == {export.WEIGHTS[fmt], "classes.json", "config.json", "example.npy",
                                        "example.py", "README.md"}
        card = (folder / "README.md").read_text()
        for words in ("Test accuracy", "Expected calibration error", "Licence of the data", "CC BY-SA 3.0",
                      "python -m convnets train --model lenet5", f"{result['images']:,} images",
                      (folder / "example.py").read_text().strip()):
            assert words in card, words
        printed = snippet_output(folder, block_torch)
        assert printed.split()[0] == expected_answer(run, folder), printed


@pytest.mark.parametrize("whitened", [False, True])
def test_the_onnx_graph_takes_unit_pixels_with_any_batch_and_holds_the_flips(tmp_path, whitened):
    """A net with test-time flips: the graph averages each image with its mirror, as the PyTorch classifier does,
    so its answers on lopsided images differ from the net's on the images alone. With 'zca', the whitening filter
    is in the graph too."""
    import onnxruntime

    config = RunConfig("lenet5", "cifar10", Recipe(epochs=1, tta=True, normalize="zca" if whitened else "channel"),
                       data_copy="jpeg")
    torch.manual_seed(0)
    whiten = torch.randn(3, 3, 5, 5) if whitened else None
    model = classifier(config, torch.full((3,), 120.0), torch.full((3,), 60.0), whiten).eval()
    path = tmp_path / "model.onnx"
    example = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    inference.write_onnx(inference.Probabilities(model, scale=255).eval(), example.float() / 255, path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    pixels = torch.rand(5, 3, 32, 32)
    pixels[..., :16] = 0  # dark on the left: the mirror is another image
    for batch in (1, 5):
        got = session.run(None, {inference.INPUT: pixels[:batch].numpy()})[0]
        with torch.no_grad():
            want = model(pixels[:batch] * 255).softmax(1).numpy()
            unflipped = model[1](model[0](pixels[:batch] * 255)).softmax(1).numpy()
        assert got.shape == (batch, 10) and np.allclose(got.sum(1), 1, atol=1e-5)
        assert np.abs(got - want).max() < 1e-4
        assert np.abs(got - unflipped).max() > 1e-4


def test_int8_weights_export_in_fp32_and_the_check_refuses_a_mismatch(store, tmp_path, monkeypatch):
    run = mnist_run(store)
    run.save_model(run.load_model(), "int8")  # as the zoo ships its entries
    result = export.export_run(run, "safetensors", tmp_path / "int8")  # no data: the shipped sample
    assert result["passed"] and "sample" in result["source"]
    with safe_open(tmp_path / "int8" / "model.safetensors", "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F32"}  # noqa: SIM118 - not a dict
        assert f.metadata()["form"] == "fp32"
    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # no export can be this close
    with pytest.raises(ConvnetsError, match="does not match the run"):
        export.export_run(run, "safetensors", tmp_path / "again")


def test_cli_export_json_and_its_errors(store, capsys, tmp_path):
    run = mnist_run(store)
    code = main(["export", run.run_id, "--format", "onnx", "--out", str(tmp_path / "x"), "--json"])
    out, _ = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and result["format"] == "onnx" and (tmp_path / "x" / "model.onnx").is_file()
    for argv, message in ((["export", run.run_id, "--format", "pt", "--out", "y"], "invalid choice"),
                          (["export", "lenet5-mnist-0123456789", "--format", "onnx", "--out", "y"], "no run")):
        code = main(argv)
        _, err = capsys.readouterr()
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err
    failed = next(r for r in store.runs() if not r.finished)
    assert main(["export", failed.run_id, "--format", "onnx", "--out", str(tmp_path / "z")]) == 2
    assert "not finished" in capsys.readouterr().err
