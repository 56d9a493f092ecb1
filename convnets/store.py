"""The run store: every run on disk, keyed by its configuration, so a finished run is never trained twice.

Layout: ``<home>/runs/<run_id>/`` with ``config.json``, ``status.json``, ``history.json``,
``evaluation.json``, ``mistakes.npz``, ``predictions.npz`` (every test image's answer), ``robustness.json``
(accuracy under corruptions), ``attack-fgsm.json`` and ``attack-pgd.json`` (accuracy under adversarial attacks),
``model.safetensors`` (the final weights) and ``resume.pt`` (the last completed epoch). Every file is written to a
temporary name and renamed, so a killed process never leaves a half-written file behind. The shipped zoo is a
second, read-only root merged into every listing.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .calibration import reliability
from .config import RunConfig
from .data import Split, default_home, load_test_copy
from .datasets import ZOO_DIR, dataset_fields, default_zoo_dir, get_dataset  # noqa: F401 - ZOO_DIR: the zoo's home
from .device import with_precision
from .errors import ConvnetsError
from .models.classifier import build_classifier
from .reporting import at_chance
from .schema import ACTIVE, Attack, Evaluation, HistoryRow, Predictions, Robustness, State, checked

# model-dataset-hash, the dataset a registry name or a folder's (folder-<fingerprint>-<side>); \Z: "$" would let a
# trailing newline in
RUN_ID = re.compile(r"^[a-z0-9_]+-(?P<dataset>[a-z0-9_]+|folder-[0-9a-f]{10}-[0-9]+)-[0-9a-f]{10}\Z")
WEIGHT_FORMS = ("fp32", "fp16", "int8")
INT8_SCALE = ".__int8_scale"  # beside each int8 weight tensor: its fp32 scale per output channel


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary name to write ``path``'s new content to; fsynced and renamed over ``path`` on success, so
    readers see the old file or the new one and never a torn one. The name keeps the suffix (numpy adds one)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: Path, obj: object) -> None:
    atomic_write(path, json.dumps(obj, indent=1).encode())


def read_json(path: Path) -> object:
    return json.loads(path.read_text())


def trained_on(status: dict) -> str | None:
    """Where and in which precision a run trained, as the tables show it: 'cpu (2 threads), bf16'. Training times
    compare only like with like, and bf16 trains 2-3x as fast as fp32 on a CPU with AMX. Runs recorded before the
    precision was trained as the engine then did: CUDA in bf16, everything else in fp32."""
    device = status.get("device")
    if device is None:
        return None
    precision = status.get("precision")
    return with_precision(device, precision == "bf16" if precision else device.startswith("cuda"))


class Run:
    """One run directory; readers tolerate damage, writers keep every file whole."""

    def __init__(self, path: Path, readonly: bool = False):
        self.path = path
        self.run_id = path.name
        self.readonly = readonly

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}{', zoo' if self.readonly else ''})"

    # --- reading ---
    @property
    def config(self) -> RunConfig:
        return RunConfig.from_dict(self._json("config.json"))

    def status(self) -> dict:
        """The run's state; a 'running' run whose trainer is gone reads as 'interrupted'."""
        try:
            status = self._json("status.json")
            self.config  # noqa: B018 - a run without a readable configuration is damaged
        except ConvnetsError as e:
            return {"state": State.DAMAGED, "error": str(e)}
        if status.get("state") in ACTIVE and not self.is_locked():
            status = {**status, "state": State.INTERRUPTED}
        if status.get("state") == State.FINISHED and (problem := self._weights_problem()):
            status = {**status, "state": State.DAMAGED, "error": problem}
        return status

    def _weights_problem(self) -> str | None:
        """Why the final weights cannot load, read from the header alone so that listings stay cheap."""
        path = self.path / "model.safetensors"
        if not path.is_file():
            return "the finished run has no model.safetensors"
        try:  # the header must name tensors that fill the file exactly: a truncated copy fails here
            with safe_open(path, "pt"):
                return None
        except (OSError, SafetensorError) as e:
            return self._unreadable(e)

    def _unreadable(self, error: Exception) -> str:
        return f"run {self.run_id} has an unreadable model file ({error})"

    def weights_form(self) -> str | None:
        """fp32, fp16 or int8 (see ``save_model``); files written before forms were recorded: by their dtypes."""
        try:
            with safe_open(self.path / "model.safetensors", "pt") as f:
                form = (f.metadata() or {}).get("form")
                if form is None:
                    dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118 - not a dict
                    form = "fp16" if "F16" in dtypes else "fp32"
                return form
        except (OSError, SafetensorError):
            return None

    @property
    def finished(self) -> bool:
        return self.status()["state"] == State.FINISHED

    def history(self) -> list[dict]:
        """The completed epochs (schema.HistoryRow each), or a ConvnetsError naming the malformed row."""
        if not (self.path / "history.json").exists():
            return []
        rows = self._json("history.json")
        if not isinstance(rows, list):
            raise ConvnetsError(f"run {self.run_id} has a malformed history.json (expected a list of epochs)")
        return [checked(HistoryRow, row, f"run {self.run_id}'s history.json (epoch {i + 1})").to_dict()
                for i, row in enumerate(rows)]

    def evaluation(self) -> dict | None:
        """The test report (schema.Evaluation), None before the run finished, or a ConvnetsError if malformed."""
        if not (self.path / "evaluation.json").exists():
            return None
        return checked(Evaluation, self._json("evaluation.json"), f"run {self.run_id}'s evaluation.json").to_dict()

    def mistakes(self) -> tuple[np.ndarray, list[dict]]:
        """The most confident mistakes: their images (N×H×W×C uint8) and their records."""
        evaluation = self.evaluation() or {}
        try:
            with np.load(self.path / "mistakes.npz", allow_pickle=False) as z:
                return z["images"], evaluation.get("mistakes", [])
        except (OSError, KeyError, ValueError):
            return np.zeros((0, 1, 1, 1), np.uint8), []

    def predictions(self) -> Predictions | None:
        """Every test image's answer, or None for a run written before they were stored (or a damaged file)."""
        try:
            with np.load(self.path / "predictions.npz", allow_pickle=False) as z:
                found = Predictions(z["predicted"], z["confidence"], z["labels"], str(z["source"]))
        except (OSError, KeyError, ValueError):
            return None
        return found if len(found.predicted) == len(found.confidence) == len(found) else None

    def calibration(self) -> dict | None:
        """calibration.reliability of the stored predictions: the ECE and the reliability diagram's bins."""
        predictions = self.predictions()
        return None if predictions is None else reliability(predictions.confidence, predictions.correct)

    def robustness(self) -> dict | None:
        """Accuracy under corruptions (schema.Robustness), None before it was measured, or a ConvnetsError."""
        if not (self.path / "robustness.json").exists():
            return None
        return checked(Robustness, self._json("robustness.json"), f"run {self.run_id}'s robustness.json").to_dict()

    def attack(self, method: str) -> dict | None:
        """Accuracy against adversarial perturbations by ``method`` (schema.Attack), None before it was measured, or
        a ConvnetsError if malformed."""
        if not method.isalnum():  # it names a file
            raise ConvnetsError(f"'{method}' is not an attack method")
        name = f"attack-{method}.json"
        if not (self.path / name).exists():
            return None
        return checked(Attack, self._json(name), f"run {self.run_id}'s {name}").to_dict()

    def summary(self) -> dict:
        """The flat record the CLI prints and the leaderboard shows; ``at_chance`` marks a finished run whose test
        accuracy is no better than a guess (``reporting.at_chance``)."""
        status = self.status()
        out = {"run_id": self.run_id, "state": status["state"], "zoo": self.readonly, "error": status.get("error")}
        if status["state"] == State.DAMAGED:
            return out
        try:  # a damaged history or evaluation marks the run damaged instead of breaking every listing
            return self._details(out, status)
        except ConvnetsError as e:
            return {**out, "state": State.DAMAGED, "error": str(e)}
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            error = f"run {self.run_id} has a malformed history.json or evaluation.json ({type(e).__name__}: {e})"
            return {**out, "state": State.DAMAGED, "error": error}

    def _details(self, out: dict, status: dict) -> dict:
        config = self.config
        history = self.history()
        evaluation = self.evaluation() or {}
        best = max(history, key=lambda h: h["test_accuracy"], default=None)
        train_seconds = sum(h["seconds"] for h in history)
        images = sum(h["images"] for h in history)
        calibration = self.calibration() or {}
        robustness = self.robustness() or {}
        out.update(dataset_fields(config.dataset))
        out.update(
            model=config.model,
            dataset=config.dataset,
            data_copy=config.data_copy,
            seed=config.seed,
            group=config.group_id,
            recipe=dataclasses.asdict(config.recipe),
            epochs=config.recipe.epochs,
            epochs_done=len(history),
            params=status.get("params"),
            test_accuracy=evaluation.get("test_accuracy"),
            test_images=evaluation.get("test_images"),
            at_chance=at_chance(evaluation.get("test_accuracy"), len(evaluation.get("classes") or
                                                                    get_dataset(config.dataset).classes)),
            test_loss=evaluation.get("test_loss"),
            calibration_error=calibration.get("ece"),
            corruption_accuracy=robustness.get("mean_accuracy"),
            best_epoch=best["epoch"] if best else None,
            best_test_accuracy=best["test_accuracy"] if best else None,
            train_seconds=round(train_seconds, 2),
            images_per_second=round(images / train_seconds, 1) if train_seconds else None,
            device=trained_on(status),
            command=status.get("command"),
            finished_at=status.get("finished_at"),
        )
        return out

    def load_model(self, device: torch.device | str = "cpu") -> torch.nn.Module:
        """The trained classifier in eval mode, channels-last (oneDNN's CPU convolutions and GPUs' tensor cores run
        NHWC 1.1-2x faster); safetensors, so loading never runs code from the file."""
        config = self.config
        try:  # a truncated file, or one holding the wrong tensors
            state = _dequantized(load_file(self.path / "model.safetensors", device=str(device)))
            model = build_classifier(config, state)
        except Exception as e:
            raise ConvnetsError(self._unreadable(e)) from None
        return model.to(device, memory_format=torch.channels_last).eval()

    def test_split(self, data_dir: str | None, needed_for: str) -> Split:
        """The test images this run was evaluated on (its dataset, its copy), or a ConvnetsError that says what
        needed them and why they are not at hand."""
        config = self.config
        try:
            return load_test_copy(config.dataset, config.data_copy, data_dir)
        except ConvnetsError as e:
            raise ConvnetsError(f"run {self.run_id} has no stored {needed_for}, and computing them needs its test "
                                f"split: {e}") from None

    def load_resume(self) -> dict | None:
        path = self.path / "resume.pt"
        if not path.exists():
            return None
        try:
            return torch.load(path, weights_only=True, map_location="cpu")
        except Exception:  # a damaged resume point costs the progress, not the run
            return None

    def _json(self, name: str):
        try:
            return read_json(self.path / name)
        except FileNotFoundError:
            raise ConvnetsError(f"run {self.run_id} has no {name}") from None
        except (OSError, ValueError) as e:
            raise ConvnetsError(f"run {self.run_id} has a damaged {name} ({e})") from None

    # --- writing ---
    def write(self, name: str, obj: object) -> None:
        self._writable()
        write_json(self.path / name, obj)

    def set_status(self, state: State, **fields) -> None:
        self.write("status.json", {"state": state, "updated": time.time(), **fields})

    def save_resume(self, state: dict) -> None:
        self._writable()
        with replacing(self.path / "resume.pt") as tmp:
            torch.save(state, tmp)

    def save_model(self, model: torch.nn.Module, form: str = "fp32") -> None:
        """The weights in one of WEIGHT_FORMS: fp32 as trained, fp16, or int8 (conv and linear weights as 8-bit
        integers with one fp32 scale per output channel, everything else fp16): a quarter of fp32's size, for
        the shipped zoo, which must stay small enough to travel."""
        self._writable()
        if form not in WEIGHT_FORMS:
            raise ConvnetsError(f"unknown weight form '{form}' ({', '.join(WEIGHT_FORMS)})")
        weights = {name for name, p in model.named_parameters() if p.dim() >= 2}
        tensors = {}
        for k, v in model.state_dict().items():
            v = v.detach().cpu()
            if form == "int8" and k in weights:
                scale = v.abs().flatten(1).amax(1).float().clamp_min(1e-12) / 127
                v, tensors[k + INT8_SCALE] = torch.round(v / scale.view(-1, *[1] * (v.dim() - 1))).to(torch.int8), scale
            elif form != "fp32" and v.is_floating_point():
                v = v.half()
            tensors[k] = v.contiguous()
        with replacing(self.path / "model.safetensors") as tmp:
            save_file(tensors, str(tmp), metadata={"form": form})

    def save_mistakes(self, images: np.ndarray) -> None:
        self._writable()
        with replacing(self.path / "mistakes.npz") as tmp:
            np.savez_compressed(tmp, images=images)

    def save_predictions(self, predictions: Predictions) -> None:
        self._writable()
        with replacing(self.path / "predictions.npz") as tmp:
            np.savez_compressed(tmp, predicted=predictions.predicted, confidence=predictions.confidence,
                                labels=predictions.labels, source=np.array(predictions.source))

    def _writable(self) -> None:
        if self.readonly:
            raise ConvnetsError(f"run {self.run_id} belongs to the shipped zoo, which is read-only")

    # --- the training lock ---
    @contextmanager
    def lock(self, wait: bool = True) -> Iterator[bool]:
        """Held while training, so one configuration is never trained by two processes at once."""
        self._writable()
        with open(self.path / ".lock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True

    def is_locked(self) -> bool:
        if self.readonly or not (self.path / ".lock").exists():
            return False
        with open(self.path / ".lock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False


def _dequantized(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """int8 weights times their per-channel scales; the other forms load as they are."""
    out = {}
    for k, v in state.items():
        if k.endswith(INT8_SCALE):
            continue
        scale = state.get(k + INT8_SCALE)
        out[k] = v if scale is None else v.float() * scale.float().view(-1, *[1] * (v.dim() - 1))
    return out


TOKEN_FILES = ("status.json", "history.json", "evaluation.json", "predictions.npz", "robustness.json",
               "attack-fgsm.json", "attack-pgd.json")  # the files whose changes the dashboard's tables show


class RunStore:
    """The user's runs (writable) merged with the shipped zoo (read-only); the user's never replace the zoo's."""

    def __init__(self, home: Path | str | None = None, zoo: Path | str | None = None):
        self.home = Path(home) if home else default_home()
        self.runs_dir = self.home / "runs"
        zoo = zoo if zoo is not None else default_zoo_dir()  # "" turns the zoo off
        self.zoo_dir = Path(zoo) / "runs" if zoo else None

    def child_environment(self) -> dict[str, str]:
        """The environment of a process started on this store (a training job, a background conversion): this
        home and this zoo (or none), and this package importable whatever folder the server was started in."""
        package_root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        zoo = str(self.zoo_dir.parent) if self.zoo_dir else ""
        return {**os.environ, "CONVNETS_HOME": str(self.home), "CONVNETS_ZOO": zoo, "PYTHONPATH": path}

    def get(self, run_id: str) -> Run | None:
        check_run_id(run_id)
        if self.zoo_dir and (self.zoo_dir / run_id).is_dir():
            return Run(self.zoo_dir / run_id, readonly=True)
        if (self.runs_dir / run_id).is_dir():
            return Run(self.runs_dir / run_id)
        return None

    def require(self, run_id: str) -> Run:
        run = self.get(run_id)
        if run is None:
            raise ConvnetsError(f"no run '{run_id}' in {self.runs_dir} or the zoo")
        return run

    def create(self, config: RunConfig) -> Run:
        existing = self.get(config.run_id)
        if existing is not None:
            return existing
        path = self.runs_dir / config.run_id
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConvnetsError(f"cannot create the run folder {path} ({e.strerror})") from None
        run = Run(path)
        if not (path / "config.json").exists():
            run.write("config.json", config.to_dict())
        return run

    def runs(self, dataset: str | None = None) -> list[Run]:
        found: dict[str, Run] = {}
        roots = [(self.runs_dir, False)] + ([(self.zoo_dir, True)] if self.zoo_dir else [])
        for root, readonly in roots:  # zoo last, so a zoo entry wins over a user run of the same id
            if root.is_dir():
                for path in sorted(root.iterdir()):
                    if path.is_dir() and RUN_ID.match(path.name):
                        found[path.name] = Run(path, readonly)
        runs = list(found.values())
        if dataset:
            runs = [r for r in runs if RUN_ID.match(r.run_id)["dataset"] == dataset]
        return runs

    def finished(self, dataset: str | None = None) -> list[Run]:
        return [r for r in self.runs(dataset) if r.finished]

    def state_token(self) -> str:
        """Changes whenever any run's files change: a cache key for the dashboard's tables, read a few times per
        click (so plain os.stat on strings, which takes half pathlib's time)."""
        parts = []
        for run in self.runs():
            folder = os.fspath(run.path)
            for name in TOKEN_FILES:
                with suppress(OSError):
                    parts.append(f"{run.run_id}/{name}:{os.stat(os.path.join(folder, name)).st_mtime_ns}")
        return hashlib.sha1("\n".join(parts).encode()).hexdigest()


def check_run_id(run_id: str) -> str:
    """Run ids reach the store from the UI and the CLI: only the store's own id format may name a folder."""
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise ConvnetsError(f"'{run_id}' is not a run id (expected model-dataset-hash: resnet20-cifar10-0123abcdef)")
    return run_id
