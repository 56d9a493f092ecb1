"""Fast answers for one drawing or photo at a time: each finished run's classifier converted once to an ONNX graph
that ONNX Runtime runs in half PyTorch's CPU time at batch 1, with the same probabilities.

Why: a photo on the Photo page goes through the zoo's twelve CIFAR-10 models, 88 ms of CPU in PyTorch's eager
mode (one thread) against 45 ms in ONNX Runtime on a 2-core AMD EPYC, the largest probability difference 8e-7
(bench/README, `photo_load.py`); a server shared by a class pays that for every click. PyTorch's time there goes
to per-call work that a batch hides and one image does not: weight reorders, one Python call per layer, batch norm
as its own pass. bf16 would also be faster on some CPUs, but it changes the answers.

The conversion (torch.onnx's dynamo exporter, 1-7 s a model) never runs in a click: `convert_in_background` starts
one low-priority process, `python -m convnets prepare-inference`, for the runs that have no graph yet, and until a
graph is ready PyTorch answers. A graph is written atomically into CONVNETS_HOME/inference/, named after its run and
its weights file's version, and kept only once it has answered random images as the run's PyTorch model does; a
run that cannot be converted gets a note saying why and is not tried again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import suppress
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .datasets import get_dataset
from .errors import ConvnetsError
from .store import Run, RunStore

INPUT, OUTPUT = "pixels", "probabilities"  # the ONNX graphs' input and output names
TOLERANCE = 1e-4  # the largest difference in any class probability a kept graph may have from PyTorch
CHECK_IMAGES = 16
BACKGROUND = "CONVNETS_BACKGROUND_CONVERSION"  # "0": no background conversion (the test suite's setting)


class Probabilities(nn.Module):
    """A run's classifier answering class probabilities, on pixels that ``scale`` brings to 0..255: what an ONNX
    graph holds (the normalisation and, where the recipe has them, the test-time flips inside it)."""

    def __init__(self, classifier: nn.Module, scale: float = 1.0):
        super().__init__()
        self.classifier, self.scale = classifier, scale

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.classifier(pixels * self.scale if self.scale != 1 else pixels).softmax(1)


def write_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """torch.onnx's dynamo exporter, traced on ``example`` (a batch of what the model takes), with a dynamic batch
    axis, into one file (no external data)."""
    batch = torch.export.Dim("batch", min=1)
    try:
        program = torch.onnx.export(model, (example,), None, dynamo=True, verbose=False, input_names=[INPUT],
                                    output_names=[OUTPUT], dynamic_shapes=({0: batch},))
    except Exception as e:  # the exporter fails in many ways on a graph it cannot translate
        raise ConvnetsError(f"torch.onnx could not export the model ({type(e).__name__}: {e})") from None
    program.save(str(path), external_data=False)


def open_session(path: Path, threads: int = 0):
    """An ONNX Runtime session on the CPU; ``threads`` 0 lets it use every core."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    if threads == 1:  # one image: no thread pool that spins while it waits
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def graph_path(store: RunStore, run: Run) -> Path:
    """Where the run's graph goes: a new weights file (a run trained again, a zoo updated) gets a new graph."""
    weights = (run.path / "model.safetensors").stat()
    return store.home / "inference" / f"{run.run_id}-{weights.st_mtime_ns}-{weights.st_size}.onnx"


def probabilities(store: RunStore, run: Run, pixels: torch.Tensor) -> np.ndarray | None:
    """The run's class probabilities for a batch of 0..255 pixels (N×C×H×W float) from its graph, one thread; None
    when it has no graph yet. A damaged graph is removed (the next server's conversion writes it again) and answers
    None."""
    try:
        path = graph_path(store, run)
    except OSError:
        return None
    if not path.exists():
        return None
    try:
        return _session(str(path)).run([OUTPUT], {INPUT: pixels.numpy()})[0]
    except Exception:  # an unreadable or foreign file: PyTorch answers, nothing is lost
        _session.cache_clear()
        path.unlink(missing_ok=True)
        return None


@lru_cache(maxsize=64)
def _session(path: str):
    return open_session(Path(path), threads=1)


def convert(store: RunStore, run: Run) -> Path:
    """Write the run's graph and check it: on random images its probabilities must be within TOLERANCE of the
    PyTorch model's, else a ConvnetsError and a note beside where the graph would have gone (not for a full disk or
    another OSError, which may pass)."""
    path = graph_path(store, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        model = Probabilities(run.load_model("cpu").to(memory_format=torch.contiguous_format)).eval()
        spec = get_dataset(run.config.dataset)
        pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (CHECK_IMAGES, *spec.shape))).float()
        write_onnx(model, pixels[:2], scratch)
        got = open_session(scratch, threads=1).run([OUTPUT], {INPUT: pixels.numpy()})[0]
        with torch.inference_mode():
            difference = float(np.abs(got - model(pixels).numpy()).max())
        if not difference <= TOLERANCE:
            raise ConvnetsError(f"the ONNX graph of {run.run_id} answers up to {difference:.1e} away from PyTorch "
                                f"(at most {TOLERANCE:g} allowed)")
        os.replace(scratch, path)
    except OSError as e:  # a full disk, say: no note, so that the next server tries again
        raise ConvnetsError(f"cannot write the ONNX graph of {run.run_id} ({e.strerror or e})") from None
    except Exception as e:  # the exporter and ONNX Runtime fail in many ways; the note says which
        reason = str(e) if isinstance(e, ConvnetsError) else f"{type(e).__name__}: {e}"
        with suppress(OSError):
            path.with_suffix(".failed").write_text(f"{reason}\n")
        raise ConvnetsError(reason) from None
    finally:
        scratch.unlink(missing_ok=True)
    for old in path.parent.glob(f"{run.run_id}-[0-9]*"):  # the graphs and notes of the run's earlier weights
        if old.suffix in (".onnx", ".failed") and old.stem != path.stem:
            old.unlink(missing_ok=True)
    return path


def missing(store: RunStore, runs: list[Run]) -> list[Run]:
    """The runs with neither a graph nor a failed conversion of their current weights (nor weights gone meanwhile)."""
    return list(_needing_graphs(store, runs))


def _needing_graphs(store: RunStore, runs: list[Run]) -> dict[Run, Path]:
    found = {}
    for run in runs:
        with suppress(OSError):
            path = graph_path(store, run)
            if not path.exists() and not path.with_suffix(".failed").exists():
                found[run] = path
    return found


_worker: subprocess.Popen | None = None
_tried: set[Path] = set()  # the graphs this process has started a conversion of: each is tried once
_lock = threading.Lock()


def convert_in_background(store: RunStore, runs: list[Run]) -> bool:
    """Start converting the runs that need a graph, in one process of low priority and one thread, unless one is
    already at work or each of them was tried already; True when a conversion is under way. A home it cannot write
    to only means no conversion: PyTorch goes on answering."""
    global _worker
    if os.environ.get(BACKGROUND) == "0":
        return False
    with _lock:
        if _worker is not None and _worker.poll() is None:
            return True
        todo = {run: path for run, path in _needing_graphs(store, runs).items() if path not in _tried}
        if not todo:
            return False
        _tried.update(todo.values())
        folder = store.home / "inference"
        command = [sys.executable, "-m", "convnets", "prepare-inference", "--low-priority", "--runs",
                   *(r.run_id for r in todo)]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "conversion.log", "ab") as log:
                _worker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True, env=store.child_environment())
        except OSError:
            return False
        return True


def prepare(store: RunStore, runs: list[Run]) -> list[dict]:
    """Convert each run that needs a graph, on one thread (so that a conversion beside a server takes one core):
    one record per run, with the seconds it took or why it failed."""
    records, threads = [], torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for run in missing(store, runs):
            start = time.perf_counter()
            try:
                path = convert(store, run)
                records.append({"run_id": run.run_id, "graph": str(path), "seconds": time.perf_counter() - start})
            except ConvnetsError as e:
                records.append({"run_id": run.run_id, "error": str(e)})
    finally:
        torch.set_num_threads(threads)
    return records
