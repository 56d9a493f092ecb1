"""``python -m convnets``: list models, train (or fetch from the cache), list runs, re-evaluate, compare, measure
robustness, attack, predict, explain, export a run, prepare the runs' fast inference, write an offline report.

A contract other tools rely on: with ``--json`` the last line of stdout is one JSON document; bad input
prints one ``error: ...`` line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

from . import data as datamod
from .config import CHOICES, Recipe, RunConfig, reproduce_command
from .datasets import BUILTIN, dataset_names, get_dataset
from .errors import ConvnetsError
from .folders import SIZES, resolve
from .models import REGISTRY, default_recipe
from .reporting import pct
from .schema import Phase, State

EXIT_ERROR = 2
DATASET_HELP = f"a dataset's name ({', '.join(BUILTIN)}) or an image folder's path"
EXIT_CANCELLED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m convnets", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    m = sub.add_parser("models", help="the model registry")
    m.add_argument("--json", action="store_true")

    t = sub.add_parser("train", help="train a model, or return its cached run")
    t.add_argument("--config", type=Path, help="a run configuration file (JSON, as the dashboard's jobs write): "
                   "train exactly it; the options below then do not apply")
    t.add_argument("--model")
    t.add_argument("--dataset", help=DATASET_HELP)
    t.add_argument("--image-size", type=int, choices=SIZES, help="an image folder's images are fitted to this side "
                   "(default: 28 for a greyscale folder, else 32)")
    for field in dataclasses.fields(Recipe):
        flag = f"--{field.name.replace('_', '-')}"
        if field.type == "bool":
            t.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=RECIPE_HELP[field.name])
        else:
            t.add_argument(flag, type=int if field.type == "int" else float if field.type == "float" else str,
                           choices=CHOICES.get(field.name), help=RECIPE_HELP[field.name])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model, with CUDA graphs on a GPU (default: on for one CUDA GPU, off "
                   "elsewhere); --no-compile trains eagerly")
    t.add_argument("--sync-bn", action="store_true", help="under torchrun on GPUs: batch norm over the global batch")
    t.add_argument("--queue", type=Path, help=argparse.SUPPRESS)  # the background jobs' shared queue lock
    _common(t, device=True, data=True)

    r = sub.add_parser("runs", help="every run in the store and the shipped zoo")
    r.add_argument("--dataset", help=DATASET_HELP)
    r.add_argument("--json", action="store_true")

    e = sub.add_parser("eval", help="re-evaluate a run on the test split")
    e.add_argument("run_id")
    e.add_argument("--tta", action=argparse.BooleanOptionalAction,
                   help="with (or without) test-time flips, whatever the run's recipe says: what they are worth "
                   "(default: as the run was trained)")
    _common(e, device=True, data=True)

    c = sub.add_parser("compare", help="two runs on the same test images: 2×2 table and McNemar's exact test")
    c.add_argument("run_a")
    c.add_argument("run_b")
    _common(c, device=True, data=True)

    rb = sub.add_parser("robustness", help="a run's test accuracy under corruptions at five severities")
    rb.add_argument("run_id")
    _common(rb, device=True, data=True)

    at = sub.add_parser("attack", help="a run's test accuracy under adversarial attacks of growing size ε")
    at.add_argument("run_id")
    at.add_argument("--method", default="fgsm", help="fgsm (default), one step, or pgd, projected gradient descent "
                    "(checked by the attack module, so that listing models need not import Captum)")
    at.add_argument("--eps", nargs="+", type=int, metavar="E", help="sizes in grey levels, ε/255 of the pixel range "
                    "(default: 0 1 2 4 8)")
    _common(at, device=True, data=True)

    pr = sub.add_parser("predict", help="every finished model's prediction for image files")
    pr.add_argument("images", nargs="+", type=Path, help="image files, or folders standing for the images in them")
    pr.add_argument("--dataset", required=True, help=DATASET_HELP)
    pr.add_argument("--best-per-model", action="store_true",
                    help="only the best run of each model (the highest test accuracy), as the dashboard shows")
    pr.add_argument("--include-chance", action="store_true",
                    help="also the runs that ended at chance level, which are left out by default")
    pr.add_argument("--json", action="store_true")

    ex = sub.add_parser("explain", help="where every finished model looks in image files (Grad-CAM or integrated "
                        "gradients)")
    ex.add_argument("images", nargs="+", type=Path)
    ex.add_argument("--dataset", required=True, help=DATASET_HELP)
    ex.add_argument("--run", nargs="+", action="extend", dest="runs", default=[], metavar="RUN_ID",
                    help="only these runs (default: every finished model of the dataset)")
    ex.add_argument("--method", default="gradcam", help="gradcam (default) or ig, integrated gradients (checked by "
                    "the explain module, so that listing models need not import Captum)")
    ex.add_argument("--json", action="store_true")

    ds = sub.add_parser("datasets", help="which copy of each dataset is in the data folder, and its class counts")
    ds.add_argument("--write-sample", type=Path, metavar="FILE",
                    help="write the repository's sample (10 test images per class of each dataset) from the data")
    _common(ds, device=False, data=True)

    xp = sub.add_parser("export", help="a finished run as a folder to take elsewhere: fp32 weights for PyTorch or an "
                        "ONNX model for onnxruntime, with its classes, a model card and a loading snippet")
    xp.add_argument("run_id")
    xp.add_argument("--format", required=True, choices=("safetensors", "onnx"), dest="fmt")
    xp.add_argument("--out", required=True, type=Path, metavar="DIR", help="the folder to write (created)")
    _common(xp, device=False, data=True)

    pi = sub.add_parser("prepare-inference", help="convert finished runs to ONNX graphs, which answer one drawing or "
                        "photo in half PyTorch's CPU time (the dashboard starts this itself when it needs them)")
    pi.add_argument("--runs", nargs="+", metavar="RUN_ID", help="only these runs (default: every finished run)")
    pi.add_argument("--low-priority", action="store_true", help="behind everything else on the machine")
    pi.add_argument("--json", action="store_true")

    rp = sub.add_parser("report", help="the leaderboard, curves, confusion matrices, a comparison, calibration and "
                        "robustness as one self-contained HTML file, to open without network or server")
    rp.add_argument("--dataset", help=DATASET_HELP)
    rp.add_argument("--runs", nargs="+", metavar="RUN_ID", help="only these runs (default: every finished run); the "
                    "first two of a dataset are the ones compared")
    rp.add_argument("--out", required=True, type=Path, metavar="FILE")
    _common(rp, device=False, data=True)

    z = sub.add_parser("zoo", help="train (or reuse) the shipped zoo's entries and write its results table")
    z.add_argument("--only", nargs="+", metavar="NAME", help="model or model/dataset names")
    z.add_argument("--cpu-friendly", action="store_true", help="only the entries sized for a CPU (up to hours)")
    _common(z, device=True, data=True)

    hp = sub.add_parser("hash-password", help="the trainer's password of a shared dashboard, hashed: the line to "
                        "paste into .streamlit/secrets.toml (the password is read from stdin, or asked for)")
    hp.add_argument("--json", action="store_true")
    return p


def _common(p: argparse.ArgumentParser, device: bool, data: bool) -> None:
    if device:
        p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    if data:
        p.add_argument("--data-dir", help="dataset folder (default: $CONVNETS_DATA or ~/.convnets/data)")
    p.add_argument("--json", action="store_true")


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse has already printed its one line (or the help)
        return int(e.code or 0)
    try:
        if getattr(args, "dataset", None) and args.command != "train":  # train resolves it with its image size
            args.dataset = resolve(args.dataset)
        return COMMANDS[args.command](args)
    except ConvnetsError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except OSError as e:  # a full disk or a permission problem is the user's to fix, not a crash
        print(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_ERROR


def cmd_models(args) -> int:
    rows = [
        {"name": s.name, "family": s.family, "kind": s.kind, "datasets": list(s.datasets),
         "params": {d: s.num_params(d) for d in s.datasets}, "paper_accuracy": s.paper_accuracy,
         "reference_accuracy": s.reference_accuracy, "citation": s.citation}
        for s in REGISTRY.values()
    ]
    if args.json:
        print(json.dumps(rows))
        return 0
    table = [("model", "kind", "datasets", "params", "paper acc.", "reference acc.")]
    for r in rows:
        table.append((r["name"], r["kind"], ",".join(r["datasets"]),
                      " / ".join(f"{v / 1e6:.3f}M" for v in r["params"].values()),
                      _pcts(r["paper_accuracy"]), _pcts(r["reference_accuracy"])))
    _print_table(table)
    return 0


def _pcts(accs: dict) -> str:
    return ", ".join(f"{d} {pct(a)}" for d, a in accs.items()) or "-"


RECIPE_HELP = {
    "epochs": "length of the schedule", "batch_size": "without --lr, the peak learning rate scales with it",
    "optimizer": None, "lr": "peak learning rate", "momentum": "SGD momentum (Adam: first beta)",
    "nesterov": "Nesterov momentum (SGD)", "weight_decay": None, "label_smoothing": None, "schedule": None,
    "warmup": "fraction of the steps spent warming up (one-cycle schedules)", "augment": None,
    "normalize": "input standardisation: per channel, per pixel, /255, or zca (per channel, then a 5x5 whitening "
                 "filter fit on the training images, as the All-CNN paper's whitened data)",
    "tta": "evaluate and predict on each image and its mirror, averaging (mirrored augmentations only)",
    "ema": "evaluate and store a moving average of the weights with this decay per step, e.g. 0.99 (0: none)",
    "norm_lr": "batch norm's scales and biases learn at this multiple of the rate, their weight decay divided by it "
               "so that it shrinks them as much per step (default 1)",
}


def config_from_args(args) -> RunConfig:
    """The run configuration a `train` command asks for, checked: from --config, or the model's default recipe
    with the given fields changed; the data copy is the one in the data folder."""
    if args.config is not None:
        config = RunConfig.read(args.config)
    else:
        if not args.model or not args.dataset:
            raise ConvnetsError("train needs --model and --dataset (or --config FILE)")
        changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)}
        dataset = resolve(args.dataset, args.image_size)
        recipe = default_recipe(args.model, dataset).customised(**changes)
        copy = datamod.find_source(dataset, args.data_dir).copy
        config = RunConfig(args.model, dataset, recipe, seed=args.seed, data_copy=copy)
    default_recipe(config.model, config.dataset)  # the model exists and takes the dataset
    return config.check()


def cmd_train(args) -> int:
    from .train import Cancelled, dist_from_env, train_run

    config = config_from_args(args)
    main_rank = dist_from_env().main
    stop = {"requested": False}

    def on_term(*_):
        stop["requested"] = True

    signal.signal(signal.SIGTERM, on_term)
    bar = (_ProgressBar() if sys.stderr.isatty() and not args.json else _EpochLog(config)) if main_rank else None
    command = reproduce_command(config, args.data_dir)
    try:
        run, cached = train_run(config, data_dir=args.data_dir, device=args.device, progress=bar,
                                cancel=lambda: stop["requested"], compile=args.compile, command=command,
                                queue=args.queue, sync_bn=args.sync_bn)
    except Cancelled:
        print("cancelled: the run keeps its last completed epoch and resumes from there", file=sys.stderr)
        return EXIT_CANCELLED
    finally:
        if bar:
            bar.close()
    if not main_rank:  # under torchrun, rank 0 alone reports
        return 0
    summary = {**run.summary(), "cached": cached}
    if args.json:
        print(json.dumps(summary))
    else:
        verb = "cached" if cached else "trained"
        print(f"{verb} {summary['run_id']}: test accuracy {pct(summary['test_accuracy'])} after "
              f"{summary['epochs']} epochs, {summary['train_seconds']:.1f} s of training on {summary['device']}")
    if summary["at_chance"]:
        print(f"warning: {summary['run_id']} is at chance level (a guess scores "
              f"{1 / len(get_dataset(config.dataset).classes):.0%}): it learned nothing, so predictions and the best "
              "scores leave it out; try a lower learning rate", file=sys.stderr)
    return 0


def cmd_runs(args) -> int:
    from .store import RunStore

    rows = [r.summary() for r in RunStore().runs(args.dataset)]
    if args.json:
        print(json.dumps(rows))
        return 0
    table = [("run", "state", "epochs", "test acc.", "train s", "device")]
    for r in rows:
        acc = r.get("test_accuracy")
        state = f"{r['state']} (at chance)" if r.get("at_chance") else r["state"]
        table.append((r["run_id"] + (" (zoo)" if r["zoo"] else ""), state, str(r.get("epochs_done", "")),
                      pct(acc), str(r.get("train_seconds", "")),
                      r.get("device") or ""))
    _print_table(table)
    return 0


def cmd_eval(args) -> int:
    from .calibration import BINS, reliability
    from .device import pick_device
    from .evaluate import final_report
    from .store import RunStore

    device = pick_device(args.device)
    run = RunStore().require(args.run_id)
    status = run.status()
    if status["state"] != State.FINISHED:  # say why there is no model, rather than fail to read one
        what = "failed" if status["state"] == State.FAILED else f"is {status['state']}"
        reason = f" ({status['error']})" if status.get("error") else ""
        raise ConvnetsError(f"run {run.run_id} {what}{reason}: only a finished run has a model to evaluate")
    config = run.config
    tta = config.recipe.tta if args.tta is None else args.tta
    try:  # the recipe's own rule: flips only for a net trained on mirrored images
        config.recipe.replace(tta=tta).check()
    except ConvnetsError as e:
        raise ConvnetsError(f"run {run.run_id} cannot be evaluated with test-time flips: {e}") from None
    test = datamod.load_test_copy(config.dataset, config.data_copy, args.data_dir)
    model = run.load_model(device)
    model.tta = tta
    classes = config_classes(config)
    report, _, predictions = final_report(model, test, classes, device)
    stored = (run.evaluation() or {}).get("test_accuracy")
    ece = reliability(predictions.confidence, predictions.correct)["ece"]
    out = {"run_id": run.run_id, "test_accuracy": report["test_accuracy"], "stored_test_accuracy": stored,
           "tta": tta, "stored_tta": config.recipe.tta, "calibration_error": ece,
           "confusion_matrix": report["confusion_matrix"], "data_copy": config.data_copy}
    if args.json:
        print(json.dumps(out))
    else:
        flips = {True: " with test-time flips", False: " without test-time flips"}
        ours, theirs = (flips[tta], flips[config.recipe.tta]) if tta != config.recipe.tta else ("", "")
        stored_text = f" (stored{theirs}: {pct(stored)})" if stored is not None else ""
        print(f"{run.run_id}: test accuracy {pct(report['test_accuracy'])}{ours} on {config.data_copy} {config.dataset}"
              f"{stored_text}, expected calibration error {pct(ece)} ({BINS} bins)")
        _print_table([("", *classes)] + [
            (name, *map(str, row)) for name, row in zip(classes, report["confusion_matrix"])])
    return 0


def config_classes(config: RunConfig) -> list[str]:
    return list(get_dataset(config.dataset).classes)


def cmd_compare(args) -> int:
    from .compare import compare, predictions_of
    from .store import RunStore

    store = RunStore()
    a, b = store.require(args.run_a), store.require(args.run_b)
    for run in (a, b):
        if not run.finished:
            raise ConvnetsError(f"run {run.run_id} is {run.status()['state']}, not finished")
    result = {"run_a": a.run_id, "run_b": b.run_id,
              **compare(*(predictions_of(r, args.data_dir, args.device) for r in (a, b)))}
    if args.json:
        print(json.dumps(result))
        return 0
    t = result["table"]
    print(f"A {a.run_id}: {pct(result['accuracy_a'])}   B {b.run_id}: {pct(result['accuracy_b'])}   "
          f"({result['images']:,} test images)")
    _print_table([("", "B right", "B wrong"), ("A right", t["both_right"], t["only_a"]),
                  ("A wrong", t["only_b"], t["both_wrong"])])
    print(f"McNemar's exact test: p = {result['mcnemar_p']:.3g} (the chance of a split at least this uneven of the "
          f"{t['only_a'] + t['only_b']:,} disagreements if both runs were equally good)")
    return 0


def cmd_robustness(args) -> int:
    from .robustness import robustness_of
    from .store import RunStore

    run = RunStore().require(args.run_id)
    if not run.finished:
        raise ConvnetsError(f"run {run.run_id} is {run.status()['state']}, not finished")
    result = {"run_id": run.run_id, **robustness_of(run, args.data_dir, args.device)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{run.run_id}: {result['subset']:,} test images, {pct(result['clean_accuracy'])} clean, "
          f"{pct(result['mean_accuracy'])} on average under corruption")
    severities = range(1, len(next(iter(result["accuracy"].values()))) + 1)
    _print_table([("corruption", *(f"severity {s}" for s in severities))] +
                 [(name, *map(pct, row)) for name, row in result["accuracy"].items()])
    return 0


def cmd_attack(args) -> int:
    from .attack import METHODS, attack_of
    from .store import RunStore

    run = RunStore().require(args.run_id)
    if not run.finished:
        raise ConvnetsError(f"run {run.run_id} is {run.status()['state']}, not finished")
    result = {"run_id": run.run_id, **attack_of(run, args.method, args.eps, args.data_dir, args.device)}
    if args.json:
        print(json.dumps(result))
        return 0
    how = f", {result['steps']} steps of {result['step_size']:g} ε" if result["steps"] > 1 else ""
    print(f"{run.run_id}: {METHODS[result['method']]}{how} on {result['subset']:,} test images, {result['source']}")
    _print_table([("ε (/255)", "accuracy", "seconds")] +
                 [(e, pct(a), f"{s:.1f}") for e, a, s in zip(result["eps"], result["accuracy"], result["seconds"])])
    return 0


def cmd_predict(args) -> int:
    """Every file gets its answer: the models' predictions, or one error line; status 2 at the end if any failed."""
    from .predict import choose_runs, predict
    from .store import RunStore

    inputs = [(path, *_prepared(path, args.dataset)) for path in _image_paths(args.images)]
    good = [image for _, image, _ in inputs if image is not None]
    answers: list[list] = []
    if good:
        store = RunStore()
        ids = choose_runs([r.summary() for r in store.finished(args.dataset)], best_per_model=args.best_per_model,
                          at_chance=args.include_chance)
        answers = predict(good, args.dataset, store, ids)
        if not any(answers):
            _print_errors(inputs)
            raise ConvnetsError(f"no finished {args.dataset} model in the store; train one first "
                                f"(python -m convnets train --model ... --dataset {args.dataset})")
    results = iter(answers)
    rows = [{"image": str(path), "error": error} if error is not None else
            {"image": str(path), "predictions": next(results)} for path, _, error in inputs]
    if args.json:
        _print_errors(inputs)
        print(json.dumps([{**r, "predictions": [x.to_dict() for x in r["predictions"]]} if "predictions" in r else r
                          for r in rows]))
    else:
        width = max((len(x.name) for preds in answers for x in preds), default=0)
        for row in rows:
            if "error" in row:
                sys.stdout.flush()
                print(f"error: {row['error']}", file=sys.stderr, flush=True)
                continue
            print(row["image"])
            for x in row["predictions"]:
                print(f"  {x.name:<{width}}  {x.class_name:<12} {x.probability:.1%}")
    return EXIT_ERROR if any("error" in r for r in rows) else 0


def _image_paths(paths: list[Path]) -> list[Path]:
    """The files to read: each file as given, and for each folder its image files (by extension), by name."""
    from .imaging import is_image_name

    out = []
    for path in paths:
        if path.is_dir():
            found = sorted(f for f in path.iterdir() if f.is_file() and is_image_name(f.name))
            out += found or [path]  # an empty folder stays, to be reported
        else:
            out.append(path)
    return out


def _prepared(path: Path, dataset: str) -> tuple[object, str | None]:
    """One file as a model input, or None and the one-line reason it cannot be one."""
    from .predict import prepare_for

    if path.is_dir():
        return None, f"{path}: no image files in this folder (PNG, JPEG, WebP, GIF, BMP or TIFF)"
    try:
        blob = path.read_bytes()
    except OSError as e:
        return None, f"cannot read {path}: {e.strerror}"
    try:
        image, reason = prepare_for(blob, get_dataset(dataset))
    except ConvnetsError as e:
        return None, f"{path}: {e}"
    return (image, None) if image is not None else (None, f"{path}: {reason}")


def _print_errors(inputs: list[tuple]) -> None:
    for _, _, error in inputs:
        if error is not None:
            print(f"error: {error}", file=sys.stderr)


def _read_inputs(paths: list[Path], dataset: str) -> list:
    """Every image file (a folder stands for its images) as a model input, or a ConvnetsError naming the first
    that cannot be one: an explanation needs every input it was asked for."""
    inputs = []
    for path in paths:
        image, error = _prepared(path, dataset)
        if error is not None:
            raise ConvnetsError(error)
        inputs.append(image)
    return inputs


def cmd_explain(args) -> int:
    from .explain import METHODS, Explainer, explain, runs_to_explain

    paths = _image_paths(args.images)
    inputs = _read_inputs(paths, args.dataset)
    explainers = [Explainer.load(run) for run in runs_to_explain(args.dataset, run_ids=args.runs)]
    results = explain(explainers, inputs, args.method)
    if args.json:
        print(json.dumps([{"image": str(p), "method": args.method, "explanations": [x.to_dict() for x in row]}
                          for p, row in zip(paths, results)]))
        return 0
    for path, row in zip(paths, results):
        print(f"{path} ({METHODS[args.method]}: the brighter, the more the model looks there)")
        for x in row:
            print(f"  {x.prediction.name:<36} {x.prediction.class_name:<12} {x.prediction.probability:.1%}")
            print("\n".join(f"    {line}" for line in _shades(x.heatmap)))
    return 0


_SHADES = " .:-=+*#%@"


def _shades(heatmap) -> list[str]:
    """A map as text, one character per two pixels across and per two down (the terminal's cells are tall)."""
    small = heatmap[::2, ::2]
    return ["".join(_SHADES[min(int(v * len(_SHADES)), len(_SHADES) - 1)] for v in row) for row in small]


def cmd_datasets(args) -> int:
    from .overview import overview, write_sample

    if args.write_sample:
        path = write_sample(args.data_dir or datamod.default_data_dir(), args.write_sample)
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    rows = []
    for dataset in dataset_names():
        view = overview(dataset, args.data_dir)
        rows.append({"dataset": dataset, "full": view.full, "copy": view.copy, "where": view.where,
                     "hint": view.hint, "classes": view.classes, "counts": view.counts})
    if args.json:
        print(json.dumps(rows))
        return 0
    for r in rows:
        counts = ", ".join(f"{split} {sum(n):,}" for split, n in r["counts"].items())
        print(f"{r['dataset']}: {r['where']} ({counts})" + (f"\n  {r['hint']}" if r["hint"] else ""))
    return 0


def cmd_zoo(args) -> int:
    from . import zoo

    only = args.only or ([zoo.entry_name(e) for e in zoo.ENTRIES if e.cpu_friendly] if args.cpu_friendly else None)
    bar = _ProgressBar() if sys.stderr.isatty() and not args.json else None
    rows = zoo.build(only, data_dir=args.data_dir, device=args.device, progress=bar)
    if args.json:
        print(json.dumps(rows))
    else:
        print(zoo.results_markdown(rows), end="")
    return 0


def cmd_export(args) -> int:
    from .export import export_run
    from .store import RunStore

    result = export_run(RunStore().require(args.run_id), args.fmt, args.out, args.data_dir)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"wrote {result['folder']}: {', '.join(result['files'])}; {result['agreement']:.2%} class agreement "
              f"with the run on {result['images']:,} images ({result['source']}), probabilities within "
              f"{result['max_difference']:.1e}")
    return 0


def cmd_prepare_inference(args) -> int:
    from .inference import prepare
    from .store import RunStore

    store = RunStore()
    runs = [store.require(r) for r in args.runs] if args.runs else store.finished()
    if args.low_priority:  # the dashboard's background conversion: clicks come first
        os.nice(10)
    records = prepare(store, runs)
    if args.json:
        print(json.dumps(records))
    else:
        for r in records:
            done = f"converted in {r['seconds']:.1f} s" if "graph" in r else f"failed: {r['error']}"
            print(f"{r['run_id']}: {done}")
        print(f"{sum('graph' in r for r in records)} of {len(runs)} runs converted ({len(runs) - len(records)} had a "
              "graph, or a failed try, already)")
    return 0 if all("graph" in r for r in records) else EXIT_ERROR


def cmd_report(args) -> int:
    try:  # the report draws with the dashboard's figures: plotly and pandas (the one command that needs them)
        from dashboard.report import write_report
    except ImportError as e:
        raise ConvnetsError(f"the report needs the dashboard's libraries ({e.name} is missing): "
                            "pip install -r requirements.txt") from None
    result = write_report(args.out, dataset=args.dataset, run_ids=args.runs, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"wrote {result['path']} ({result['bytes'] / 2**20:.1f} MiB, {result['runs']} runs, "
              f"{result['charts']} charts)")
    return 0


def _print_table(rows: list[tuple]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


class _EpochLog:
    """Progress as lines on stderr where it is no terminal (a background job's log, a redirected run): one when
    training begins and one per epoch, so that a job's log says what it is doing while it runs."""

    def __init__(self, config) -> None:
        self.config, self.started = config, False

    def __call__(self, p) -> None:
        if p.phase == Phase.EVALUATING:
            print("evaluating the final model on the test split", file=sys.stderr, flush=True)
            return
        if not self.started:
            self.started = True
            recipe = self.config.recipe
            print(f"training {self.config.run_id}: {self.config.model} on {self.config.dataset}, {p.epochs} epochs "
                  f"of {p.steps} steps at batch {recipe.batch_size}", file=sys.stderr, flush=True)
        if p.step == p.steps:
            print(f"epoch {p.epoch}/{p.epochs}: train loss {p.loss:.3f}, train accuracy {p.accuracy:.1%}, "
                  f"{p.images_per_second:,.0f} img/s, ETA {p.eta_seconds:,.0f} s", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class _ProgressBar:
    """A one-line progress bar on stderr (the terminal), redrawn in place."""

    def __call__(self, p) -> None:
        done = (p.epoch - 1 + p.step / p.steps) / p.epochs
        bar = "#" * int(done * 30)
        sys.stderr.write(f"\r[{bar:<30}] epoch {p.epoch}/{p.epochs} loss {p.loss:.3f} acc {p.accuracy:.1%} "
                         f"{p.images_per_second:,.0f} img/s ETA {p.eta_seconds:,.0f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def cmd_hash_password(args) -> int:
    from getpass import getpass

    from .sharing import hash_password

    if sys.stdin.isatty():
        password = getpass("Trainer password: ")
        if getpass("Once more: ") != password:
            raise ConvnetsError("the two passwords differ")
    else:  # piped: the first line, without its line break
        password = sys.stdin.readline().rstrip("\r\n")
    hashed = hash_password(password)
    if args.json:
        print(json.dumps({"trainer_password_hash": hashed}))
    else:
        print(f'trainer_password_hash = "{hashed}"')
        print("paste it under [convnets] in .streamlit/secrets.toml (or set CONVNETS_TRAINER_PASSWORD_HASH to "
              "the part in quotes)", file=sys.stderr)
    return 0


COMMANDS = {"models": cmd_models, "train": cmd_train, "runs": cmd_runs, "eval": cmd_eval, "compare": cmd_compare,
            "robustness": cmd_robustness, "attack": cmd_attack, "predict": cmd_predict, "explain": cmd_explain,
            "datasets": cmd_datasets, "zoo": cmd_zoo, "hash-password": cmd_hash_password,
            "export": cmd_export, "prepare-inference": cmd_prepare_inference, "report": cmd_report}
