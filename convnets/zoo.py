"""The shipped model zoo: pinned recipes, trained by the project on the real data, kept read-only in ``zoo/``.

``build`` trains each entry (or takes it from the user's store), then copies the run into the zoo with its
weights in the most compact form (int8, fp16) that moves test accuracy by at most 0.05 points, and writes the
results table.
The dashboard is alive on a fresh machine without data, network or training because of this folder.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import attack
from . import data as datamod
from .compare import predictions_of
from .config import RunConfig, reproduce_command
from .config import train_command as config_train_command
from .device import pick_device
from .errors import ConvnetsError
from .evaluate import final_report, predict_probs
from .models import get_model
from .reporting import copy_cost, official_equivalent, pct
from .robustness import measure, robustness_of
from .store import WEIGHT_FORMS, ZOO_DIR, Run, RunStore
from .study import STUDY_NETS, study_row, zoo_figures


@dataclass(frozen=True)
class Entry:
    model: str
    dataset: str
    overrides: tuple[tuple[str, object], ...] = ()  # pinned changes to the model's default recipe
    cpu_friendly: bool = True  # trained on 2 CPU cores (minutes to a few hours); the others need a GPU
    target: float | None = None  # the accuracy to reach, where the published figure does not set it

    def config(self, data_copy: str) -> RunConfig:
        recipe = get_model(self.model).recipes[self.dataset].replace(**dict(self.overrides))
        return RunConfig(self.model, self.dataset, recipe, seed=0, data_copy=data_copy)


# The linear one-cycle ("onecycle", warm-up 0.2) that the CPU entries were trained with, before the registry's
# CIFAR-10 recipes moved to PyTorch's OneCycleLR shape ("onecycle-cos", warm-up 0.3).
_LINEAR_CYCLE = (("schedule", "onecycle"), ("warmup", 0.2))
# GPU recipes: batch 256 with twice the registry's learning rate for the nets with batch norm (the linear rule),
# weight decay 5e-4 and label smoothing 0.1, the recipe on which a plain PyTorch loop reached 87.2 % with ResNet-20
# in 40 epochs (JPEG copy); the nets without batch norm keep batch 128 and their rate.
_GPU_BN = (("batch_size", 256), ("lr", 0.2), ("weight_decay", 5e-4), ("label_smoothing", 0.1))

ENTRIES = [
    Entry("lenet5", "mnist", (("epochs", 5), ("lr", 0.1)), target=0.99),
    Entry("ref_lenet_mnist", "mnist", (("epochs", 5),)),
    Entry("ref_vgg_mnist", "mnist", (("epochs", 8), ("augment", "shift")), target=0.995),
    Entry("lenet5", "cifar10", (("epochs", 20), *_LINEAR_CYCLE)),
    # The study's own optimiser (Adam) on one cycle over a quarter of its 20 epochs, with mirroring (the notebook
    # had no augmentation: 76.34 % that way); SGD with crop-flip reached only 62.0 % in those 5 epochs.
    Entry("ref_lenet", "cifar10", (("epochs", 5), ("optimizer", "adam"), ("lr", 2e-3), ("batch_size", 64),
                                   ("weight_decay", 0.0), ("label_smoothing", 0.1), ("augment", "flip"),
                                   ("normalize", "channel"), *_LINEAR_CYCLE)),
    # In the zoo issue's order: the study's nets (at most a quarter of its 200 epochs), then the papers' nets; all but
    # the study's ALL-CNN (87.23 % with test-time flips, 86.89 % without: 35 minutes on 2 AMX cores in bf16), the
    # study's WRN-14-2 (89.15 % with flips at batch 128: 2.1 hours; 87.97 % at batch 256 on the GPU), ResNet-20,
    # ResNet-56, WRN-16-4 and ResNet-9 need a GPU. ResNet-20, its blocks starting with every BN gamma at 1,
    # reached 88.01 % on 2 CPU cores in 96 minutes (87.79 % when retrained with its live snapshots, bf16, 2.1 hours
    # on shared cores; 85.68 % on the GPU with zero-initialised last gammas; 85.04 % in
    # 60 linear-cycle epochs); ResNet-56 90.10 % in 3.4 hours on 2 AMX cores in bf16, ResNet-9 91.28 % in 2.7 hours,
    # WRN-16-4 91.11 % in 2.9 hours (90.68 % in 50 epochs, 57 s on one H200); ALL-CNN-C 86.01 % in 200 epochs, 5.5
    # hours on 2 AMX cores in bf16 (84.69 % in 100 epochs, 5.8 hours on shared cores), ResNet-110 90.12 % in 4.7 hours.
    Entry("ref_vgg", "cifar10", (("epochs", 50),), cpu_friendly=False),
    Entry("ref_allcnn", "cifar10", (("epochs", 50), ("tta", True))),
    Entry("ref_resnet20", "cifar10", (("epochs", 50), *_GPU_BN), cpu_friendly=False),
    Entry("ref_wrn14_2", "cifar10", (("epochs", 50), ("weight_decay", 5e-4), ("label_smoothing", 0.1), ("tta", True))),
    Entry("resnet20", "cifar10", (("epochs", 50), *_GPU_BN)),
    Entry("allcnn", "cifar10", (("epochs", 200),), cpu_friendly=False),
    Entry("resnet56", "cifar10", (("epochs", 60), *_GPU_BN)),
    Entry("wrn16_4", "cifar10", (("epochs", 60), *_GPU_BN)),
    Entry("resnet9", "cifar10"),
    Entry("vgg16", "cifar10", (("epochs", 40),), cpu_friendly=False),
    Entry("resnet110", "cifar10", (("epochs", 60), *_GPU_BN), cpu_friendly=False),
]


def study_entries() -> list[Entry]:
    """The zoo's entries of the study's nets, in the study's order."""
    entries = {e.model: e for e in ENTRIES if e.dataset == "cifar10"}
    return [entries[model] for model in STUDY_NETS]


def study_configs(data_copy: str, seed: int) -> list[RunConfig]:
    """The study's five nets with the zoo's pinned recipes, as runs of ``seed``: a seed other than the zoo's 0
    makes them new runs, trained on the user's own device, rather than the zoo's cached ones."""
    return [dataclasses.replace(entry.config(data_copy), seed=seed) for entry in study_entries()]


def shipped_runs(runs_dir: Path | None) -> dict[tuple[str, str], Run]:
    """The zoo's finished runs by (model, dataset), whatever copy of the data each was trained on: a clone without
    the data, which would train on another copy, still finds them."""
    if runs_dir is None or not runs_dir.is_dir():
        return {}
    runs = [Run(p, readonly=True) for p in sorted(runs_dir.glob("*-*-*")) if p.is_dir()]
    return {(r.config.model, r.config.dataset): r for r in runs if r.finished}


def study_rows(store: RunStore) -> list[dict]:
    """One row per study net, in the study's order (``study.study_row``), from the shipped zoo's runs; the study
    page's first paint reads the same rows from the zoo's results.json (``study.rows_from_results``)."""
    shipped = shipped_runs(store.zoo_dir)
    rows = []
    for entry in study_entries():
        spec = get_model(entry.model)
        study = spec.reference_accuracy[entry.dataset]
        run = shipped.get((entry.model, entry.dataset))
        zoo = None if run is None else zoo_figures(run.summary(), run.config.recipe.tta, study)
        rows.append({**study_row(entry.model, entry.dataset, zoo["params"] if zoo else spec.num_params(entry.dataset),
                                 study, zoo), "family": spec.family})
    return rows


def study_table(store: RunStore, data_copy: str, seed: int) -> list[dict]:
    """``study_rows`` with the user's runs of ``seed`` on ``data_copy``: the run id, its state, accuracy, time and
    device so far, and the difference in official-data terms; rows fill in as the runs train."""
    rows = study_rows(store)
    for row, config in zip(rows, study_configs(data_copy, seed)):
        row.update(run_id=config.run_id, epochs=config.recipe.epochs, tta=config.recipe.tta, state=None,
                   epochs_done=0, test_accuracy=None, official_equivalent=None, difference=None, train_seconds=None,
                   device=None)
        run = store.get(config.run_id)
        if run is not None:
            s = run.summary()
            row.update(state=s["state"], epochs_done=s.get("epochs_done", 0), test_accuracy=s.get("test_accuracy"),
                       train_seconds=s.get("train_seconds"), device=s.get("device"))
            row["official_equivalent"] = official_equivalent(row["test_accuracy"], data_copy)
            if row["official_equivalent"] is not None:
                row["difference"] = row["official_equivalent"] - row["study_accuracy"]
    return rows


def entry_name(entry: Entry) -> str:
    return f"{entry.model}/{entry.dataset}"


def untrained(trained: Iterable[tuple[str, str]], dataset: str | None = None) -> list[Entry]:
    """The entries (of ``dataset``, or all) without a finished run among ``trained`` (model, dataset) pairs, the
    shipped zoo's and the user's own: a comparison says what it still lacks rather than leave it out silently."""
    have = set(trained)
    return [e for e in ENTRIES if (e.model, e.dataset) not in have and dataset in (None, e.dataset)]


def select(only: list[str] | None, entries: list[Entry] | None = None) -> list[Entry]:
    entries = ENTRIES if entries is None else entries
    if not only:
        return entries
    names = {entry_name(e): e for e in entries}
    chosen = [e for e in entries if e.model in only or entry_name(e) in only]
    unknown = [o for o in only if o not in names and not any(e.model == o for e in entries)]
    if unknown:
        raise ConvnetsError(f"not in the zoo: {', '.join(unknown)}; choose from: {', '.join(names)}")
    return chosen


def build(
    only: list[str] | None = None,
    *,
    entries: list[Entry] | None = None,
    data_dir: str | None = None,
    device: str | None = None,
    zoo_dir: Path = ZOO_DIR,
    store: RunStore | None = None,
    progress: Callable | None = None,
    compile: bool | None = None,
    shipped: Callable[[Entry, list[dict]], None] | None = None,
) -> list[dict]:
    """Train (or reuse) the chosen entries (of ``entries``, by default the zoo's own), copy each into the zoo as
    it finishes, and rewrite the results table; ``shipped(entry, rows)`` is told after each one. An entry shipped
    before per-image predictions, robustness or FGSM figures were kept gets them, from the weights it ships."""
    from .train import train_run

    store = store or RunStore(zoo="")
    for entry in select(only, entries):
        copy = datamod.find_source(entry.dataset, data_dir).copy
        config = entry.config(copy)
        if (zoo_dir / "runs" / config.run_id).is_dir():
            complete = Run(zoo_dir / "runs" / config.run_id)  # writable: the zoo's own files are written here
            predictions_of(complete, data_dir, device)
            robustness_of(complete, data_dir, device)
            if complete.attack("fgsm") is None:
                attack.attack_of(complete, "fgsm", data_dir=data_dir, device=device)
            continue
        least = _least_size(entry)
        _require_room(zoo_dir, config, least, f"its {least:,} weights take at least {least / 1e6:.1f} MB even in int8")
        run, _ = train_run(config, store=store, data_dir=data_dir, device=device, progress=progress,
                           compile=compile, command=reproduce_command(config, data_dir))
        _ship(run, zoo_dir, datamod.load(entry.dataset, data_dir), pick_device(device))
        _drop_superseded(zoo_dir, config)
        if shipped is not None:
            shipped(entry, write_results(zoo_dir, entries))
    return write_results(zoo_dir, entries)


def _drop_superseded(zoo_dir: Path, config: RunConfig) -> None:
    """When an entry's pinned recipe changes, its new run replaces the old one: one run per entry."""
    for path in (zoo_dir / "runs").glob(f"{config.model}-{config.dataset}-*"):
        if path.name != config.run_id:
            shutil.rmtree(path)


def _bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _room_for(zoo_dir: Path, model: str, dataset: str) -> int:
    """Bytes an entry may take: SIZE_BUDGET less the zoo's files, counting neither the runs it would replace (its
    entry's earlier runs) nor half-written copies."""
    runs = zoo_dir / "runs"
    left_out = [*runs.glob(f"{model}-{dataset}-*"), *runs.glob(".*")]
    used = _bytes(zoo_dir) - sum(_bytes(p) for p in left_out) if zoo_dir.is_dir() else 0
    return SIZE_BUDGET - used


def _least_size(entry: Entry) -> int:
    """The fewest bytes an entry's run can ship in: its weights in int8, a byte each, and nothing else."""
    return get_model(entry.model).num_params(entry.dataset)


def too_big(entry: Entry, zoo_dir: Path = ZOO_DIR) -> bool:
    """Whether the entry cannot ship even in int8, so that ``build`` refuses it: it can still be trained into a
    user's own store (``train_command``)."""
    return _least_size(entry) > _room_for(zoo_dir, entry.model, entry.dataset)


def train_command(entry: Entry) -> str:
    """The short command that trains an entry's pinned recipe into the user's own store: the model's default
    recipe plus the entry's overrides, which is the same run as the zoo's."""
    return config_train_command(entry.model, entry.dataset, entry.overrides, "--data-dir", "DIR")


def _require_room(zoo_dir: Path, config: RunConfig, size: int, why: str) -> None:
    """Refuse an entry that would take the zoo past SIZE_BUDGET; before training it is told the least the entry can
    take, so that no device time goes to a model that cannot ship."""
    room = _room_for(zoo_dir, config.model, config.dataset)
    if size > room:
        raise ConvnetsError(f"{config.model} ({config.dataset}) does not fit the zoo: {why}, and the zoo has "
                            f"{max(room, 0) / 1e6:.1f} MB left of its {SIZE_BUDGET / 2**20:.0f} MiB budget")


def _ship(run: Run, zoo_dir: Path, data: datamod.Dataset, device: torch.device) -> None:
    """Copy a finished run into the zoo in its smallest weight form (int8, then fp16, else fp32) whose test
    accuracy stays within SHIP_TOLERANCE of the trained weights'; the zoo's evaluation and mistakes are those of
    the weights it ships (predictions and robustness too), so what the dashboard shows is what those weights do."""
    target = zoo_dir / "runs" / run.run_id
    tmp = target.with_name(f".{run.run_id}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("config.json", "status.json", "history.json"):
        shutil.copy2(run.path / name, tmp / name)
    if (run.path / "snapshots.npz").exists():  # its live snapshots: the replay on Training curves
        shutil.copy2(run.path / "snapshots.npz", tmp / "snapshots.npz")
    test = data.test.to(device)
    trained = run.load_model(device)
    accuracy = _accuracy(trained, test, device)
    shipped = Run(tmp)
    for form in WEIGHT_FORMS[::-1]:  # smallest first
        shipped.save_model(trained, form)
        model = shipped.load_model(device)
        if form == "fp32" or abs(_accuracy(model, test, device) - accuracy) <= SHIP_TOLERANCE:
            break
    report, mistake_images, predictions = final_report(model, data.test, data.classes, device)
    shipped.write("evaluation.json", {**report, "weights": form, "trained_weights_test_accuracy": accuracy})
    shipped.save_mistakes(mistake_images)
    shipped.save_predictions(predictions)
    shipped.write("robustness.json", measure(model, data.test, data.name, device).to_dict())
    shipped.write("attack-fgsm.json", attack.measure(model, data.test, "fgsm", attack.EPS, device).to_dict())
    size = _bytes(tmp)
    try:
        _require_room(zoo_dir, run.config, size, f"it takes {size / 1e6:.1f} MB in {form}; the trained run stays "
                      f"in your store ({run.path})")
    except ConvnetsError:
        shutil.rmtree(tmp)
        raise
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def _accuracy(model: torch.nn.Module, test: datamod.Split, device: torch.device) -> float:
    return (predict_probs(model, test, device).argmax(1) == test.labels).float().mean().item()


def target(entry: Entry, data_copy: str) -> float | None:
    """The test accuracy an entry must reach on the data it was trained on: its own pinned figure, else the
    study's figure for the study's nets and the paper's minus one point for the others, less the JPEG copy's
    measured cost on that copy."""
    if entry.target is not None:
        return entry.target
    spec = get_model(entry.model)
    if spec.kind == "reference":
        published = spec.reference_accuracy.get(entry.dataset)
    else:
        paper = spec.paper_accuracy.get(entry.dataset)
        published = None if paper is None else paper - (0.01 if spec.kind == "paper" else 0.0)
    if published is None:
        return None
    return published - copy_cost(data_copy)


def write_results(zoo_dir: Path = ZOO_DIR, entries: list[Entry] | None = None) -> list[dict]:
    """The results table of every zoo entry (shipped or still missing), as JSON and markdown."""
    shipped = shipped_runs(zoo_dir / "runs")
    rows = []
    for entry in ENTRIES if entries is None else entries:
        spec = get_model(entry.model)
        run = shipped.get((entry.model, entry.dataset))
        row = {"model": entry.model, "dataset": entry.dataset, "kind": spec.kind,
               "params": spec.num_params(entry.dataset), "paper_accuracy": spec.paper_accuracy.get(entry.dataset),
               "reference_accuracy": spec.reference_accuracy.get(entry.dataset), "shipped": run is not None}
        copy = "jpeg" if entry.dataset == "cifar10" else "official"  # the copy this project's data has
        if run is not None:
            s = run.summary()
            copy = s["data_copy"]
            row.update({k: s[k] for k in ("run_id", "data_copy", "epochs", "test_accuracy", "best_test_accuracy",
                                          "train_seconds", "images_per_second", "device", "command")})
            row["weights"] = run.weights_form()
            row["tta"] = run.config.recipe.tta  # the figure averages each test image with its mirror
            if copy == "jpeg":
                row["official_equivalent"] = official_equivalent(s["test_accuracy"], copy)
            row.update(_calibration_and_robustness(run))
        row["target"] = target(entry, copy)
        if run is not None and row["target"] is not None:
            row["target_met"] = row["test_accuracy"] >= row["target"] - 1e-9
        rows.append(row)
    zoo_dir.mkdir(parents=True, exist_ok=True)
    markdown = results_markdown(rows)
    (zoo_dir / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    (zoo_dir / "results.md").write_text(markdown)
    for document in (zoo_dir.parent / name for name in RESULTS_DOCUMENTS):
        if document.is_file():
            document.write_text(replace_tables(document.read_text(), markdown))
    return rows


def _calibration_and_robustness(run: Run) -> dict:
    """How calibrated and how robust a shipped run is, for the second table (nothing before they were kept)."""
    calibration, robustness = run.calibration(), run.robustness()
    found = {} if calibration is None else {"ece": calibration["ece"]}
    if robustness is not None:
        found.update({"clean_accuracy": robustness["clean_accuracy"],
                      "corrupted_accuracy": robustness["mean_accuracy"], "robustness_seconds": robustness["seconds"]})
    return found


def replace_tables(document: str, markdown: str) -> str:
    """``document`` with each of ``markdown``'s tables in place of the table under the same header line, so that
    shipping an entry rewrites the README's tables too; a table the document does not have is not added (where
    it goes among the prose is for a person to decide)."""
    lines = document.splitlines(keepends=True)
    for table in filter(None, (block.strip() for block in markdown.split("\n\n"))):
        rows = [row + "\n" for row in table.splitlines()]
        if rows[0] not in lines:
            continue
        start = lines.index(rows[0])
        end = start
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        lines[start:end] = rows
    return "".join(lines)


RESULTS_DOCUMENTS = ("README.md", "docs/results.md")  # beside the zoo: the documents whose tables it rewrites
SHIP_TOLERANCE = 0.0005  # a compact weight form may move test accuracy by at most 0.05 points
# The whole zoo/ stays under 32 MiB: the checkout plus the 18 MiB CIFAR-10 pack must fit the 64 MiB that the GPU
# machine is sent.
SIZE_BUDGET = 32 * 2**20


def results_markdown(rows: list[dict]) -> str:
    columns = ("model", "dataset", "data", "params", "epochs", "test flips", "test acc. (final epoch)", "≈ official",
               "target (this data)", "paper", "reference notebooks", "weights", "train s", "images/s", "device")
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    lines = []
    for r in rows:
        goal = pct(r["target"]) + ("" if "target_met" not in r else " ✓" if r["target_met"] else " ✗")
        published = f"{pct(r['paper_accuracy'])} | {pct(r['reference_accuracy'])}"
        if not r["shipped"]:
            lines.append(f"| {r['model']} | {r['dataset']} | – | {r['params']:,} | – | – | not trained yet | – | "
                         f"{goal} | {published} | – | – | – | – |")
            continue
        data = "CIFAR-10 JPEG copy" if r["data_copy"] == "jpeg" else "official"
        lines.append(
            f"| {r['model']} | {r['dataset']} | {data} | {r['params']:,} | {r['epochs']} | "
            f"{'yes' if r['tta'] else 'no'} | "
            f"{pct(r['test_accuracy'])} | {pct(r.get('official_equivalent', r['test_accuracy']))} | {goal} | "
            f"{published} | {r['weights']} | {r['train_seconds']:,.0f} | {r['images_per_second']:,.0f} | "
            f"{r['device']} |")
    return head + "\n".join(lines) + "\n\n" + calibration_markdown(rows)


def calibration_markdown(rows: list[dict]) -> str:
    """The shipped entries' calibration (ECE over the whole test split) and robustness (a fixed test subset)."""
    head = ("| model | dataset | ECE (15 bins) | clean (1,000 images) | under corruption (mean) | robustness measured "
            "in |\n|---|---|---|---|---|---|\n")
    lines = [f"| {r['model']} | {r['dataset']} | {pct(r['ece'])} | {pct(r['clean_accuracy'])} | "
             f"{pct(r['corrupted_accuracy'])} | {r['robustness_seconds']:,.0f} s |"
             for r in rows if r["shipped"] and "ece" in r and "clean_accuracy" in r]
    return head + "\n".join(lines) + "\n"
