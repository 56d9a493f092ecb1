"""The prepared GPU run: one command that proves the engine's CUDA path, measures it, and trains the zoo.

A GPU is lent to this project now and then, for minutes, so its time goes to this one command rather than to
debugging. Each stage runs in its own process under its own time box, so one that fails or hangs does not
stop the others, and everything measured is written to the output folder as it comes (``gpu_run.log`` line by
line, ``summary.json`` after every stage):

1. machine   the GPU, its driver, the torch and CUDA versions
2. tests     ``pytest tests/test_cuda.py``
3. speed     ``bench/train_speed.py``: ResNet-20, the engine against the usual DataLoader loop at batch 128 (and
             the engine without CUDA graphs in the same rounds), then the engine alone at larger batches
4. accuracy  ``bench/time_to_accuracy.py``: the fastest registry recipe (ResNet-9) to 90.7 % on the JPEG copy
             (94 % official), trained to its end in the zoo's store, so that the zoo stage ships it as it is
5. shorter   the same net on half the schedule (12 epochs) with a moving average of the weights (``--ema 0.99``),
             stopping at the target: the first step from 9.1 s toward airbench94's 2.1-2.6 s (a throw-away store)
6. whitened  the paper's ALL-CNN-C on its shipped 200-epoch recipe with ZCA-whitened inputs (``--normalize zca``),
             to its end, against its 86.00 % without them (target 88.45 % on the copy); the finished run comes back
             whole as ``RUN_ID.tar.gz`` (``tar -xzf`` it into a store's ``runs/``), for the zoo to ship if it wins
7. zoo       the zoo's CIFAR-10 entries that are missing or whose pinned recipe changed, in the zoo's order, as
             many as the time left allows; after each one ``zoo.tar.gz.partNN`` holds the whole updated
             ``zoo/`` (``cat zoo.tar.gz.part* | tar -xz`` in the repository replaces it)

The working folder (``--work``, default /tmp/convnets-gpu) keeps the decoded data, the run store and the zoo
being built, so a second call on the same machine resumes an interrupted entry from its last epoch.

    python bench/gpu_run.py --data-dir .data --out "$OUT" [--budget 540] [--stages zoo]
    python bench/gpu_run.py --smoke --out DIR     # every stage on the CPU with tiny sizes, as CI runs it
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import convnets  # noqa: E402, F401 - its OpenMP settings (convnets/__init__.py) first  # isort: skip

import argparse
import datetime
import json
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("machine", "tests", "speed", "accuracy", "shorter", "whitened", "zoo")
# seconds at most; the zoo gets the rest
BOXES = {"machine": 60, "tests": 150, "speed": 150, "accuracy": 120, "shorter": 90, "whitened": 300}
SMOKE_BOXES = {"machine": 60, "tests": 120, "speed": 240, "accuracy": 240, "shorter": 240, "whitened": 240, "zoo": 300}
NEEDS_DATA = ("speed", "accuracy", "shorter", "whitened", "zoo")
PART_BYTES = 15 * 2**20  # the device tool brings back files of at most 16 MiB
MARGIN = 10  # seconds kept at the end for the last summary


class Log:
    """Appends lines to gpu_run.log and stdout at once, so a run cut short still left what it had."""

    def __init__(self, path: Path):
        self.file = open(path, "a", buffering=1)  # noqa: SIM115 - open for the whole run
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        stamped = f"[{time.strftime('%H:%M:%S')}] {line}"
        with self.lock:
            print(stamped, flush=True)
            self.file.write(stamped + "\n")


def run_stage(name: str, argv: list[str], timeout: float, env: dict, log: Log) -> dict:
    """Run one stage's process in its own session, streaming its output to the log; kill its whole group at the
    time box. Returns its exit status, seconds, whether it timed out, its last JSON line and its output's tail."""
    log(f"== {name}: {' '.join(argv)} (at most {timeout:.0f} s)")
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []

    def pump() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            log(f"{name}| {lines[-1][:2000]}")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=max(timeout, 1))
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        timed_out = True
    reader.join(timeout=5)
    seconds = round(time.perf_counter() - t0, 1)
    result = None
    for line in reversed(lines):
        if line.startswith(("{", "[")):
            try:
                result = json.loads(line)
                break
            except ValueError:
                continue
    log(f"== {name}: exit {proc.returncode}{' (time box reached)' if timed_out else ''} after {seconds} s")
    return {"exit": proc.returncode, "seconds": seconds, "timed_out": timed_out, "result": result,
            "tail": [line[:500] for line in lines[-15:]]}


def stage_argv(stage: str, args: argparse.Namespace, data_dir: str, work: Path) -> list[str]:
    py = sys.executable
    device = "cpu" if args.smoke else "cuda"
    if stage == "machine":
        return [py, str(Path(__file__)), "--machine-info"]
    if stage == "tests":
        return [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py"]
    if stage == "speed":
        sizes = ["--batch-size", "16", "--steps", "2", "--rounds", "1", "--engine-batch-sizes", "32"] if args.smoke \
            else ["--batch-size", "128", "--rounds", "3", "--engine-batch-sizes", "512", "1024", "--workers", "8"]
        return [py, "bench/train_speed.py", "--device", device, "--models", "resnet20", "--variants", "channels-last",
                "--data-dir", data_dir, *sizes, "--json"]
    if stage == "accuracy":
        model = ["--model", "lenet5", "--epochs", "1"] if args.smoke else ["--model", "resnet9"]
        return [py, "bench/time_to_accuracy.py", *model, "--device", device, "--data-dir", data_dir,
                "--official-target", "0.94", "--run-to-end", "--home", str(work / "home"), "--json"]
    if stage == "shorter":
        model = ["--model", "lenet5", "--epochs", "1", "--ema", "0.9"] if args.smoke else \
            ["--model", "resnet9", "--epochs", "12", "--ema", "0.99"]
        return [py, "bench/time_to_accuracy.py", *model, "--device", device, "--data-dir", data_dir,
                "--official-target", "0.94", "--json"]
    if stage == "whitened":
        model = ["--model", "lenet5", "--epochs", "1"] if args.smoke else ["--model", "allcnn", "--epochs", "200"]
        return [py, "bench/time_to_accuracy.py", *model, "--normalize", "zca", "--device", device, "--data-dir",
                data_dir, "--target", "0.8845", "--run-to-end", "--home", str(work / "home"), "--json"]
    if stage == "zoo":
        return [py, str(Path(__file__)), "--zoo-worker", "--device", device, "--data-dir", data_dir,
                "--work", str(work), "--out", str(args.out)] + (["--smoke"] if args.smoke else []) + \
            (["--zoo-eager"] if args.zoo_eager else [])
    raise ValueError(stage)


def machine_info() -> dict:
    import platform

    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "cuda_available": torch.cuda.is_available(),
            "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                    memory_gib=round(props.total_memory / 2**30, 1), gpus=torch.cuda.device_count())
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            info["nvidia_smi"] = smi.stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            info["nvidia_smi"] = f"unavailable ({e})"
    return info


# --- the zoo stage -----------------------------------------------------------------------------------------


def zoo_worker(args: argparse.Namespace) -> int:
    """Train the zoo's missing CIFAR-10 entries in order, packing the whole zoo after each one."""
    from convnets import zoo
    from convnets.store import RunStore

    work = Path(args.work)
    zoo_dir = work / "zoo"
    if not zoo_dir.is_dir():  # the repository's zoo, so the archive is the whole updated zoo/
        if args.smoke:
            (zoo_dir / "runs").mkdir(parents=True)
        else:
            shutil.copytree(zoo.ZOO_DIR, zoo_dir)
    entries = smoke_entries() if args.smoke else zoo.ENTRIES
    store = RunStore(work / "home", zoo="")
    wanted = [e for e in entries if e.dataset == "cifar10"
              and not (zoo_dir / "runs" / e.config("jpeg").run_id).is_dir()]
    # Runs already finished here (the accuracy stage's ResNet-9, an earlier call's) ship first: seconds, not minutes.
    wanted.sort(key=lambda e: not getattr(store.get(e.config("jpeg").run_id), "finished", False))
    print(f"entries to train, in order: {', '.join(e.model for e in wanted) or 'none'}", flush=True)

    def shipped(entry, rows: list[dict]) -> None:
        row = next(r for r in rows if (r["model"], r["dataset"]) == (entry.model, entry.dataset))
        print(json.dumps({"shipped": entry.model, **{k: row.get(k) for k in (
            "run_id", "test_accuracy", "target", "target_met", "weights", "train_seconds", "images_per_second",
            "device")}}), flush=True)
        pack(zoo_dir, Path(args.out))

    for entry in wanted:
        try:
            zoo.build([zoo.entry_name(entry)], entries=entries, data_dir=args.data_dir, device=args.device,
                      zoo_dir=zoo_dir, store=store, compile=False if args.zoo_eager else None, shipped=shipped)
        except Exception as e:  # a recipe that diverges costs its own entry, not the ones after it
            print(f"{entry.model}: {type(e).__name__}: {e}", flush=True)
    return 0


def smoke_entries() -> list:
    """Two tiny entries standing in for the zoo's in --smoke; the second is the smoke accuracy stage's run."""
    from convnets.zoo import Entry

    return [Entry("ref_lenet", "cifar10", (("epochs", 1), ("batch_size", 50))),
            Entry("lenet5", "cifar10", (("epochs", 1),))]


def pack(zoo_dir: Path, out: Path) -> list[str]:
    """zoo_dir as one gzipped tar cut into parts the device tool brings back; written under temporary names and
    renamed, so an archive cut short by the time box never replaces the previous one."""
    tmp = out / ".zoo.tar.gz.tmp"
    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        tar.add(zoo_dir, arcname="zoo", filter=lambda t: None if "/." in t.name else t)
    blob = tmp.read_bytes()
    tmp.unlink()
    parts = [blob[i : i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)]
    names = [f"zoo.tar.gz.part{i:02d}" for i in range(len(parts))]
    for name, part in zip(names, parts):
        (out / f".{name}.tmp").write_bytes(part)
    for old in out.glob("zoo.tar.gz.part*"):
        old.unlink()
    for name in names:
        (out / f".{name}.tmp").rename(out / name)
    return names


def pack_run(home: Path, result: dict | None, out: Path) -> str | None:
    """The finished run a stage reported, whole, as ``RUN_ID.tar.gz`` in ``out`` (None when it did not finish)."""
    folder = home / "runs" / result["run_id"] if result else None
    if folder is None or not (folder / "model.safetensors").is_file():
        return None
    name = f"{folder.name}.tar.gz"
    with tarfile.open(out / f".{name}.tmp", "w:gz", compresslevel=6) as tar:
        tar.add(folder, arcname=folder.name, filter=lambda t: None if "/." in t.name else t)
    (out / f".{name}.tmp").rename(out / name)
    return name


# --- synthetic data for --smoke -----------------------------------------------------------------------------


def smoke_data(root: Path) -> Path:
    """A small synthetic CIFAR-10 JPEG copy in its scans form (the form the GPU machine gets), without the tree."""
    import numpy as np
    from train_speed import write_cifar_jpeg

    from convnets import data as datamod

    folder = write_cifar_jpeg(root / "tree", 600, 200)
    source = datamod.Source("cifar10", "jpeg", "cifar-folder", folder)
    items = {split: datamod.encoded_images(source, split) for split in ("train", "test")}
    header = os.path.commonprefix([blob for split in items.values() for blob, _, _ in split])
    classes = np.array(datamod.get_dataset("cifar10").classes)
    arrays = {"header": np.frombuffer(header, np.uint8), "classes": classes}
    for split, split_items in items.items():
        scans = [blob[len(header):] for blob, _, _ in split_items]
        arrays[f"{split}_scan"] = np.frombuffer(b"".join(scans), np.uint8)
        arrays[f"{split}_off"] = np.cumsum([0] + [len(s) for s in scans])
        arrays[f"{split}_y"] = np.array([label for _, label, _ in split_items], np.uint8)
    data_dir = root / "data"
    data_dir.mkdir()
    np.savez(data_dir / datamod.JPEG_SCANS, **arrays)
    shutil.rmtree(root / "tree")
    return data_dir


# --- the run ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT"), help="where results go (default: $OUT)")
    p.add_argument("--data-dir", help="CIFAR-10 (the JPEG copy in any form: tree, pack or scans)")
    p.add_argument("--budget", type=float, default=540, help="seconds for the whole run (default 540)")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    p.add_argument("--work", help="working folder kept between calls (default /tmp/convnets-gpu)")
    p.add_argument("--zoo-eager", action="store_true", help="train the zoo eagerly (default: the engine's "
                   "choice, CUDA graphs on a GPU: 3.4x as fast for ResNet-20 on one H200, for 15-25 s of compiling)")
    p.add_argument("--smoke", action="store_true", help="every stage on the CPU with tiny sizes and synthetic data")
    p.add_argument("--machine-info", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--zoo-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--device", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.machine_info:
        print(json.dumps(machine_info()))
        return 0
    if args.zoo_worker:
        return zoo_worker(args)
    if not args.out:
        p.error("--out is required where $OUT is not set")
    with tempfile.TemporaryDirectory(prefix="convnets-gpu-smoke-") as scratch:
        return run(args, Path(scratch))


def run(args: argparse.Namespace, scratch: Path) -> int:
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.out = str(out.resolve())
    work = Path(args.work or (scratch / "work" if args.smoke else "/tmp/convnets-gpu"))
    work.mkdir(parents=True, exist_ok=True)
    log = Log(out / "gpu_run.log")
    data_dir = str(smoke_data(scratch)) if args.smoke else args.data_dir
    if not data_dir:
        log("no --data-dir: the speed, accuracy and zoo stages need the CIFAR-10 JPEG copy")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CONVNETS_OFFLINE": "1", "CONVNETS_HOME": str(work / "home"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "bench"), os.environ.get("PYTHONPATH", "")])}
    summary: dict = {"started": datetime.datetime.now().isoformat(timespec="seconds"), "smoke": args.smoke,
                     "budget_seconds": args.budget, "data_dir": data_dir, "stages": {}}
    write = _writer(out / "summary.json", summary)
    boxes = SMOKE_BOXES if args.smoke else BOXES
    for stage in args.stages:
        left = args.budget - (time.perf_counter() - started) - MARGIN
        box = min(boxes.get(stage, left), left)
        if box < 5 or (stage in NEEDS_DATA and not data_dir):
            summary["stages"][stage] = {"skipped": "no time left" if box < 5 else "no --data-dir"}
            write()
            continue
        summary["stages"][stage] = run_stage(stage, stage_argv(stage, args, data_dir, work), box, env, log)
        if stage == "whitened":
            summary["stages"][stage]["packed"] = pack_run(work / "home", summary["stages"][stage]["result"], out)
        write()
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write()
    log(f"done in {summary['seconds']} s; results in {out}")
    return 0


def _writer(path: Path, summary: dict) -> Callable[[], None]:
    def write() -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(path)

    return write


if __name__ == "__main__":
    sys.exit(main())
