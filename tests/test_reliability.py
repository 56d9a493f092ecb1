"""What users do to the app: bad files, killed or doubled trainings, a full disk, damaged runs, hostile input.

Training faults run the real ``python -m convnets`` in subprocesses on the synthetic CIFAR-10 folder (the MNIST
checksums are only patched inside this process). Every scenario must end with a clear message or a correct run,
never a crash, a corrupted store or a lost finished run.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import tomllib
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from convnets import data as datamod
from convnets import jobs
from convnets import store as storemod
from convnets.cli import build_parser, config_from_args, main
from convnets.config import RunConfig
from convnets.errors import ConvnetsError
from convnets.imaging import prepare_upload
from convnets.jobs import JobManager
from convnets.models import default_recipe
from convnets.predict import predict
from convnets.store import RunStore
from convnets.train import train_run

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 2
TRAIN = ["train", "--model", "lenet5", "--dataset", "cifar10", "--epochs", str(EPOCHS), "--batch-size", "8",
         "--device", "cpu"]


# --- helpers --------------------------------------------------------------------------------------------


class Evil:
    """Unpickling this creates the marker folder: proof that a file's code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def launch(home: Path, data_dir: Path) -> subprocess.Popen:
    """A training process at the lowest priority: its threads spin on both cores, and a test that watches it for
    the moment to kill it (within the second epoch's second or so) must not wait for a core. Its numbers are the
    same at any priority."""
    env = {**os.environ, "CONVNETS_HOME": str(home), "CONVNETS_ZOO": "", "CONVNETS_OFFLINE": "1"}
    command = [sys.executable, "-m", "convnets", *TRAIN, "--data-dir", str(data_dir), "--json"]
    return subprocess.Popen(["nice", "-n", "19", *command] if shutil.which("nice") else command,
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    return code, *capsys.readouterr()


def read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def weights_equal(a: Path, b: Path) -> bool:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def leftovers(folder: Path) -> list[str]:
    """Temporary files a failed write left behind (the lock file is meant to stay)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != ".lock")


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A few hundred bytes claiming width×height pixels: a decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", zlib.compress(b"\0" * 99)) + chunk(b"IEND", b"")


class Twins:
    """One configuration launched twice at the same moment in one store; also the uninterrupted reference."""

    def __init__(self, home: Path, data_dir: Path):
        self.home = home
        self.procs = [launch(home, data_dir) for _ in range(2)]
        self._results: list[dict] | None = None

    def results(self) -> list[dict]:
        if self._results is None:
            self._results = [finish(p) for p in self.procs]
        return self._results

    @property
    def store(self) -> RunStore:
        self.results()
        return RunStore(self.home, zoo="")

    @property
    def run_path(self) -> Path:
        return self.store.require(self.results()[0]["run_id"]).path


@pytest.fixture(scope="module")
def twins(synthetic_root, tmp_path_factory):
    twins = Twins(tmp_path_factory.mktemp("twins"), synthetic_root[0])
    yield twins
    for p in twins.procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def copy_run(source: Path, home: Path, suffix: str) -> Path:
    target = home / "runs" / f"lenet5-cifar10-{suffix:0>10}"
    shutil.copytree(source, target)
    return target


# --- training faults ------------------------------------------------------------------------------------


def test_kill_9_mid_epoch_resumes_to_the_uninterrupted_result(twins, data_dir, tmp_path, monkeypatch, capsys):
    home = tmp_path / "killed"
    victim = launch(home, data_dir)
    deadline, first_seen = time.monotonic() + 240, None
    while True:  # wait for a completed epoch and progress in the next one
        assert victim.poll() is None, f"the trainer ended before it could be killed: {victim.communicate()}"
        assert time.monotonic() < deadline, "no progress in the second epoch"
        folders = list((home / "runs").glob("*/status.json"))
        history = (read(folders[0].parent / "history.json") or []) if folders else []
        if history:
            first_seen = first_seen or time.monotonic()
            progress = (read(folders[0]) or {}).get("progress") or {}
            if progress.get("epoch") == 2 or time.monotonic() - first_seen > history[0]["seconds"] / 2:
                break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()

    [run] = RunStore(home, zoo="").runs()
    done = run.history()
    assert run.status()["state"] == "interrupted" and len(done) == 1 and run.load_resume()["epoch"] == 1
    assert run.summary()["epochs_done"] == 1

    monkeypatch.setenv("CONVNETS_HOME", str(home))  # the same command again, in this process to save a start-up
    code, out, err = cli(capsys, *TRAIN, "--data-dir", str(data_dir), "--json")
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["cached"] is False and run.finished
    assert run.history()[0] == done[0]  # resumed from the last completed epoch, not retrained
    assert [h["epoch"] for h in run.history()] == list(range(1, EPOCHS + 1))
    assert weights_equal(run.path, twins.run_path)


def test_two_simultaneous_launches_train_once(twins):
    results = twins.results()
    assert sorted(r["cached"] for r in results) == [False, True]
    assert results[0]["run_id"] == results[1]["run_id"]
    [run] = twins.store.runs()
    assert run.finished and [h["epoch"] for h in run.history()] == list(range(1, EPOCHS + 1))
    assert leftovers(run.path) == [] and not (run.path / "resume.pt").exists()


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(twins, data_dir, monkeypatch):
    config = config_from_args(build_parser().parse_args([*TRAIN, "--data-dir", str(data_dir)]))
    real_save, resume_saves = torch.save, []

    def full_on_second_resume(obj, f, *args, **kwargs):
        if Path(str(f)).name.startswith(".resume.pt.tmp"):
            resume_saves.append(f)
            if len(resume_saves) == 2:
                Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    def full_disk(tensors, filename, *args, **kwargs):
        Path(filename).write_bytes(b"\0" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_on_second_resume)
    with pytest.raises(OSError, match="No space left"):
        train_run(config, data_dir=str(data_dir), device="cpu")
    run = RunStore().require(config.run_id)
    first = run.history()
    assert run.status()["state"] == "failed" and "No space left" in run.status()["error"]
    assert len(first) == 1 and run.load_resume()["epoch"] == 1 and leftovers(run.path) == []

    monkeypatch.setattr(torch, "save", real_save)
    monkeypatch.setattr(storemod, "save_file", full_disk)  # the final model's write fails too
    with pytest.raises(OSError, match="No space left"):
        train_run(config, data_dir=str(data_dir), device="cpu")
    assert run.status()["state"] == "failed" and not run.finished and leftovers(run.path) == []
    assert len(run.history()) == EPOCHS and run.load_resume()["epoch"] == EPOCHS

    monkeypatch.setattr(storemod, "save_file", save_file)  # space freed: the run resumes and finishes
    again, cached = train_run(config, data_dir=str(data_dir), device="cpu")
    assert not cached and again.finished and again.history()[0] == first[0]
    assert weights_equal(again.path, twins.run_path)


def test_interrupted_run_with_a_damaged_history_trains_again(data_dir):
    config = config_from_args(build_parser().parse_args([*TRAIN, "--data-dir", str(data_dir)]))
    run = RunStore().create(config)
    (run.path / "history.json").write_text('[{"epoch": 1, "train_lo')
    again, cached = train_run(config, data_dir=str(data_dir), device="cpu")
    assert not cached and again.finished and len(again.history()) == EPOCHS


def test_finished_run_with_truncated_weights_trains_again(data_dir, twins):
    config = config_from_args(build_parser().parse_args([*TRAIN, "--data-dir", str(data_dir)]))
    run, _ = train_run(config, data_dir=str(data_dir), device="cpu")
    (run.path / "model.safetensors").write_bytes((run.path / "model.safetensors").read_bytes()[:-1])
    assert run.status()["state"] == "damaged"
    again, cached = train_run(config, data_dir=str(data_dir), device="cpu")
    assert not cached and again.finished and weights_equal(again.path, twins.run_path)


# --- damaged store --------------------------------------------------------------------------------------


def test_damaged_run_files_degrade_and_the_rest_load(twins, home, capsys):
    source = twins.run_path
    runs = {name: copy_run(source, home, str(i)) for i, name in enumerate(
        ["intact", "history", "history-shape", "evaluation", "status", "model", "model-tensors", "resume"])}
    (runs["history"] / "history.json").write_text((source / "history.json").read_text()[:50])
    (runs["history-shape"] / "history.json").write_text('{"epoch": 1}')
    (runs["evaluation"] / "evaluation.json").write_text((source / "evaluation.json").read_text()[:50])
    (runs["status"] / "status.json").write_bytes(b"")
    (runs["model"] / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes()[:300])
    save_file({"x": torch.zeros(3)}, runs["model-tensors"] / "model.safetensors")
    storemod.write_json(runs["resume"] / "status.json", {"state": "running", "pid": 1})  # a trainer that died
    (runs["resume"] / "model.safetensors").unlink()
    (runs["resume"] / "resume.pt").write_bytes(os.urandom(999))

    store = RunStore()
    by_name = {name: store.require(path.name) for name, path in runs.items()}
    states = {name: run.summary()["state"] for name, run in by_name.items()}
    assert states == {"intact": "finished", "history": "damaged", "history-shape": "damaged",
                      "evaluation": "damaged", "status": "damaged", "model": "damaged", "model-tensors": "finished",
                      "resume": "interrupted"}
    assert "history.json" in by_name["history"].summary()["error"]
    assert "evaluation.json" in by_name["evaluation"].summary()["error"]
    assert "unreadable model file" in by_name["model"].summary()["error"]  # truncated: caught when listed
    assert by_name["resume"].load_resume() is None
    for name in ("model", "model-tensors"):
        with pytest.raises(ConvnetsError, match="model file"):
            by_name[name].load_model()

    code, out, _ = cli(capsys, "runs", "--json")
    assert code == 0 and {r["run_id"]: r["state"] for r in json.loads(out)} == {
        run.run_id: states[name] for name, run in by_name.items()}
    [answers] = predict([np.zeros((32, 32, 3), np.uint8)], "cifar10")  # the damaged models are left out
    assert {p.run_id for p in answers} == {by_name[n].run_id for n in ("intact", "history", "history-shape",
                                                                       "evaluation")}
    assert states == {name: run.summary()["state"] for name, run in by_name.items()}  # reading changed nothing
    assert by_name["intact"].summary()["test_accuracy"] == twins.results()[0]["test_accuracy"]


# --- security -------------------------------------------------------------------------------------------


def test_crafted_checkpoints_never_run_code(twins, home, tmp_path):
    marker = tmp_path / "pwned"
    resume_runs = [copy_run(twins.run_path, home, f"a{i}") for i in range(2)]
    for path in resume_runs:
        storemod.write_json(path / "status.json", {"state": "running", "pid": 1})
    (resume_runs[0] / "resume.pt").write_bytes(pickle.dumps(Evil(marker), protocol=2))
    torch.save({"epoch": 1, "model": Evil(marker)}, resume_runs[1] / "resume.pt")
    model_run = copy_run(twins.run_path, home, "b0")
    (model_run / "model.safetensors").write_bytes(pickle.dumps(Evil(marker)))

    store = RunStore()
    assert [store.require(p.name).load_resume() for p in resume_runs] == [None, None]
    with pytest.raises(ConvnetsError, match="unreadable model file"):
        store.require(model_run.name).load_model()
    assert predict([np.zeros((32, 32, 3), np.uint8)], "cifar10") == [[]]
    assert not marker.exists()


def test_official_cifar_batches_with_a_wrong_md5_are_named_and_never_unpickled(tmp_path, capsys):
    marker = tmp_path / "pwned"
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in datamod.CIFAR_MD5:
        (folder / name).write_bytes(pickle.dumps(Evil(marker)))
    assert datamod.find_source("cifar10", tmp_path / "data").kind == "cifar-python"
    code, _, err = cli(capsys, *TRAIN, "--data-dir", str(tmp_path / "data"))
    assert code == 2 and err.count("\n") == 1
    assert re.search(r"^error: .*data_batch_1 is corrupted \(md5 mismatch\)", err)
    assert not marker.exists()


HOSTILE_IDS = ["../victim", "../../etc/passwd", "/etc/passwd", "..", "lenet5-cifar10-0123456789/../../victim",
               "lenet5-cifar10-0123456789\n", "lenet5-cifar10-0123456789\0", "lenet5-cifar10-..%2f..%2fvictim"]


@pytest.mark.parametrize("run_id", HOSTILE_IDS)
def test_ids_from_the_ui_never_leave_the_store(home, run_id):
    victims = [home / "victim.json", home / "victim.log", home / "jobs" / "victim.json"]
    for path in victims:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    manager = JobManager()
    for call in (RunStore().get, RunStore().require, manager.get, manager.forget, manager.log_tail, manager.cancel):
        with pytest.raises(ConvnetsError, match="not a run id"):
            call(run_id)
    assert all(path.read_text() == "{}" for path in victims)


def test_no_user_string_reaches_a_shell(home, monkeypatch):
    sources = [p for d in ("convnets", "dashboard", "pages") for p in (ROOT / d).rglob("*.py")]
    shell = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|getoutput\(|getstatusoutput\(|os\.exec\w*\(")
    assert len(sources) > 10
    assert [str(p) for p in sources if shell.search(p.read_text())] == []

    calls = []
    monkeypatch.setattr(jobs.subprocess, "Popen", lambda *a, **k: calls.append((a, k)) or SimpleNamespace(pid=0))
    hostile = "$(mkdir pwned); `mkdir pwned` && mkdir pwned"
    config = RunConfig("lenet5", "cifar10", default_recipe("lenet5", "cifar10"), data_copy="jpeg")
    JobManager().submit(config, data_dir=hostile)
    [(args, kwargs)] = calls
    assert isinstance(args[0], list) and hostile in args[0] and not kwargs.get("shell")


def test_server_binds_to_localhost_with_an_upload_limit():
    path = ROOT / ".streamlit" / "config.toml"
    if not path.is_file():
        pytest.skip(".streamlit/config.toml is not written yet")
    server = tomllib.loads(path.read_text())["server"]
    assert server["address"] == "localhost"
    assert isinstance(server["maxUploadSize"], int) and 0 < server["maxUploadSize"] <= 200  # MB


# --- uploads end to end ---------------------------------------------------------------------------------


def uploads() -> tuple[dict[str, bytes], dict[str, bytes]]:
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [Image.new("RGB", (40, 40), c) for c in ("red", "lime", "blue")]
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), np.uint8))
    png, jpeg = encode(noise, "PNG"), encode(noise, "JPEG")
    valid = {
        "16-bit.png": encode(Image.fromarray(np.full((40, 60), 30_000, np.uint16)), "PNG"),
        "cmyk.jpg": encode(Image.new("CMYK", (64, 48), (0, 255, 255, 0)), "JPEG"),
        "rotated.jpg": encode(Image.new("RGB", (80, 40), "navy"), "JPEG", exif=exif.tobytes()),
        "animated.gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50),
        "sliver.png": encode(Image.new("RGB", (10_000, 10), "orange"), "PNG"),
    }
    invalid = {
        "notes.png": b"these are my notes, not a picture",
        "empty.jpg": b"",
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "bomb.png": png_header_only(60_000, 60_000),
    }
    return valid, invalid


def test_uploads_through_the_models(twins, monkeypatch, tmp_path, capsys):
    valid, invalid = uploads()
    for answers in predict([prepare_upload(blob) for blob in valid.values()], "cifar10", store=twins.store):
        [p] = answers  # one finished model
        assert len(p.probabilities) == 10 and sum(p.probabilities) == pytest.approx(1, abs=1e-5)
        top = p.top(3)
        assert len(top) == 3 and [q for _, q in top] == sorted((q for _, q in top), reverse=True)

    monkeypatch.setenv("CONVNETS_HOME", str(twins.home))
    for name, blob in {**valid, **invalid}.items():
        (tmp_path / name).write_bytes(blob)
    code, out, _ = cli(capsys, "predict", *(str(tmp_path / n) for n in valid), "--dataset", "cifar10", "--json")
    assert code == 0 and [len(r["predictions"]) for r in json.loads(out)] == [1] * len(valid)
    for name in invalid:
        code, out, err = cli(capsys, "predict", str(tmp_path / name), "--dataset", "cifar10")
        assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith(f"error: {tmp_path / name}: ")
