"""The fast path for one drawing or photo: the runs' ONNX graphs answer as their PyTorch models do, a damaged or
outdated graph is never used, a conversion that fails is noted once, and the background conversion fills the cache."""

import json
import os
import shutil
import time

import numpy as np
import pytest
import torch

from convnets import inference
from convnets.cli import main
from convnets.errors import ConvnetsError
from convnets.overview import read_sample
from convnets.predict import predict
from convnets.store import ZOO_DIR, RunStore

# One net of each kind the zoo answers with: a small one on digits, a residual one, one with test-time flips.
MODELS = ("lenet5", "resnet20", "ref_allcnn")


@pytest.fixture
def store(tmp_path) -> RunStore:
    """A fresh home and a zoo holding copies of the shipped zoo's runs of MODELS (so that their weights can be
    touched), with one MNIST and two CIFAR-10 nets."""
    shipped = RunStore(tmp_path / "unused", zoo=ZOO_DIR).finished()
    chosen = {}
    for run in shipped:
        key = run.config.model
        if key in MODELS and (key != "lenet5" or run.config.dataset == "mnist"):
            chosen[key] = run
    assert sorted(chosen) == sorted(MODELS)
    for run in chosen.values():
        shutil.copytree(run.path, tmp_path / "zoo" / "runs" / run.run_id)
    return RunStore(tmp_path / "home", zoo=tmp_path / "zoo")


def sample_images(dataset: str) -> list[np.ndarray]:
    """The shipped sample's real test images of the dataset, as the pages hand them to predict (H×W or H×W×3)."""
    images = read_sample(dataset)[0].images.permute(0, 2, 3, 1).numpy()
    return [im[..., 0] if im.shape[-1] == 1 else im for im in images[::10]]  # one image per class


def answers(store: RunStore, dataset: str) -> list[list]:
    return [predict([image], dataset, store)[0] for image in sample_images(dataset)]


def test_the_graphs_answer_as_pytorch_does_before_and_after_conversion(store):
    before = {dataset: answers(store, dataset) for dataset in ("mnist", "cifar10")}
    threads = torch.get_num_threads()
    records = inference.prepare(store, store.finished())
    assert [r for r in records if "error" in r] == [] and len(records) == len(MODELS)
    assert torch.get_num_threads() == threads  # one thread while converting, the caller's again after
    probe = read_sample("cifar10")[0].images[:1].float()
    for run in store.finished("cifar10"):  # the graphs are what answers now
        assert inference.probabilities(store, run, probe) is not None
    for dataset, old in before.items():
        new = answers(store, dataset)
        for old_cards, new_cards in zip(old, new, strict=True):
            assert [c.run_id for c in new_cards] == [c.run_id for c in old_cards] and old_cards
            for o, n in zip(old_cards, new_cards):
                assert n.label == o.label
                assert np.abs(np.array(n.probabilities) - o.probabilities).max() < 1e-5
    assert inference.prepare(store, store.finished()) == []  # converted once


def test_many_images_and_runs_without_a_graph_are_answered_by_pytorch(store):
    images = sample_images("cifar10")
    assert len(images) > 8  # more than FEW: a batch, all threads, PyTorch
    [run] = [r for r in store.finished("cifar10") if r.config.model == "resnet20"]
    inference.convert(store, run)
    batch = predict(images, "cifar10", store)
    one_by_one = [predict([im], "cifar10", store)[0] for im in images]
    for cards, single in zip(batch, one_by_one):
        assert [c.label for c in cards] == [c.label for c in single]
        assert max(np.abs(np.array(c.probabilities) - s.probabilities).max() for c, s in zip(cards, single)) < 1e-5


def test_a_damaged_graph_is_removed_and_pytorch_answers(store):
    [run] = store.finished("mnist")
    image = sample_images("mnist")[3]
    want = predict([image], "mnist", store)[0][0]
    path = inference.convert(store, run)
    path.write_bytes(b"not an onnx graph")
    inference._session.cache_clear()
    got = predict([image], "mnist", store)[0][0]
    assert got.label == want.label and np.allclose(got.probabilities, want.probabilities, atol=1e-6)
    assert not path.exists() and inference.missing(store, [run]) == [run]  # converted again next time


def test_new_weights_get_a_new_graph(store):
    [run] = store.finished("mnist")
    old = inference.convert(store, run)
    weights = run.path / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # as a run trained again would have
    assert inference.graph_path(store, run) != old
    assert inference.missing(store, [run]) == [run]
    assert inference.probabilities(store, run, read_sample("mnist")[0].images[:1].float()) is None
    new = inference.convert(store, run)
    assert new.exists() and not old.exists()  # the outdated graph goes when the new one is written


def test_a_failed_conversion_is_noted_and_not_tried_again(store, monkeypatch):
    [run] = store.finished("mnist")

    def refuse(*_):
        raise ConvnetsError("torch.onnx could not export the model (a test)")

    monkeypatch.setattr(inference, "write_onnx", refuse)
    [record] = inference.prepare(store, [run])
    assert "could not export" in record["error"]
    note = inference.graph_path(store, run).with_suffix(".failed")
    assert "could not export" in note.read_text()
    assert inference.missing(store, [run]) == [] and inference.prepare(store, [run]) == []
    assert not list(note.parent.glob("*.tmp")) and not inference.graph_path(store, run).exists()


def test_a_full_disk_leaves_no_note_so_a_later_try_converts(store, monkeypatch):
    [run] = store.finished("mnist")

    def full(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(inference, "write_onnx", full)
    with pytest.raises(ConvnetsError, match="No space left on device"):
        inference.convert(store, run)
    assert inference.missing(store, [run]) == [run]
    monkeypatch.undo()
    assert inference.convert(store, run).exists()


def test_a_graph_that_answers_differently_is_not_kept(store, monkeypatch):
    [run] = store.finished("mnist")
    monkeypatch.setattr(inference, "TOLERANCE", -1.0)  # no graph can be this close: the check must refuse it
    with pytest.raises(ConvnetsError, match="away from PyTorch"):
        inference.convert(store, run)
    assert not inference.graph_path(store, run).exists()


def test_the_pages_background_conversion_fills_the_cache_once(store, monkeypatch):
    monkeypatch.delenv(inference.BACKGROUND)
    monkeypatch.setattr(inference, "_worker", None)
    monkeypatch.setattr(inference, "_tried", set())
    [run] = store.finished("mnist")
    predict(sample_images("mnist")[:1], "mnist", store, convert_in_background=True)
    worker = inference._worker
    assert worker is not None, "the page's first answer starts the conversion"
    assert inference.convert_in_background(store, [run])  # one at work: no second process
    assert inference._worker is worker
    assert worker.wait(timeout=240) == 0, (store.home / "inference" / "conversion.log").read_text()[-2000:]
    assert inference.graph_path(store, run).exists() and inference.missing(store, [run]) == []
    assert len(inference.missing(store, store.finished())) == len(MODELS) - 1  # only the digits' run was asked for
    assert not inference.convert_in_background(store, [run])  # nothing left to do
    inference.graph_path(store, run).unlink()
    assert not inference.convert_in_background(store, [run])  # tried once in this process: not again


def test_the_background_conversion_is_off_where_the_environment_says(store):
    assert os.environ[inference.BACKGROUND] == "0"  # the suite's setting (conftest)
    start = time.perf_counter()
    assert not inference.convert_in_background(store, store.finished())
    assert time.perf_counter() - start < 1 and not (store.home / "inference").exists()


def test_the_prepare_inference_command_reports_each_run(store, monkeypatch, capsys):
    monkeypatch.setenv("CONVNETS_HOME", str(store.home))
    monkeypatch.setenv("CONVNETS_ZOO", str(store.zoo_dir.parent))
    [run] = store.finished("mnist")
    assert main(["prepare-inference", "--runs", run.run_id, "--json"]) == 0
    [record] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["run_id"] == run.run_id and record["graph"] == str(inference.graph_path(store, run))
    assert main(["prepare-inference", "--runs", run.run_id]) == 0
    assert "0 of 1 runs converted (1 had a graph, or a failed try, already)" in capsys.readouterr().out


def test_a_home_that_cannot_be_written_only_means_no_conversion(store, monkeypatch, tmp_path):
    monkeypatch.delenv(inference.BACKGROUND)
    monkeypatch.setattr(inference, "_worker", None)
    monkeypatch.setattr(inference, "_tried", set())
    (tmp_path / "a-file").write_text("")
    blocked = RunStore(tmp_path / "a-file" / "home", zoo=store.zoo_dir.parent)  # its home can never be made
    assert not inference.convert_in_background(blocked, blocked.finished())
    assert inference._worker is None
    [run] = store.finished("mnist")
    (run.path / "model.safetensors").unlink()  # weights gone between the run list and the conversion
    assert inference.missing(store, [run]) == [] and inference.probabilities(store, run, torch.zeros(1, 1, 28, 28)) \
        is None
