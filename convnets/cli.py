"""``python -m convnets``: list models, train (or fetch from the cache), list runs, re-evaluate, predict.

A contract other tools rely on: with ``--json`` the last line of stdout is one JSON document; bad input
prints one ``error: ...`` line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
from pathlib import Path

from . import data as datamod
from .config import AUGMENTATIONS, DATASETS, OPTIMIZERS, SCHEDULES, RunConfig
from .errors import ConvnetsError
from .models import REGISTRY, get_model

EXIT_ERROR = 2
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
    t.add_argument("--model", required=True)
    t.add_argument("--dataset", required=True, choices=DATASETS)
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float, help="peak learning rate")
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--label-smoothing", type=float)
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--schedule", choices=SCHEDULES)
    t.add_argument("--augment", choices=AUGMENTATIONS)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model, with CUDA graphs on a GPU (default: on for one CUDA GPU, off "
                   "elsewhere); --no-compile trains eagerly")
    t.add_argument("--sync-bn", action="store_true", help="under torchrun on GPUs: batch norm over the global batch")
    t.add_argument("--queue", type=Path, help=argparse.SUPPRESS)  # the background jobs' shared queue lock
    _common(t, device=True, data=True)

    r = sub.add_parser("runs", help="every run in the store and the shipped zoo")
    r.add_argument("--dataset", choices=DATASETS)
    r.add_argument("--json", action="store_true")

    e = sub.add_parser("eval", help="re-evaluate a run on the test split")
    e.add_argument("run_id")
    _common(e, device=True, data=True)

    pr = sub.add_parser("predict", help="every finished model's prediction for image files")
    pr.add_argument("images", nargs="+", type=Path)
    pr.add_argument("--dataset", required=True, choices=DATASETS)
    pr.add_argument("--json", action="store_true")
    z = sub.add_parser("zoo", help="train (or reuse) the shipped zoo's entries and write its results table")
    z.add_argument("--only", nargs="+", metavar="NAME", help="model or model/dataset names")
    z.add_argument("--cpu-friendly", action="store_true", help="only the entries sized for a CPU (up to hours)")
    _common(z, device=True, data=True)
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
    return ", ".join(f"{d} {a:.2%}" for d, a in accs.items()) or "-"


def config_from_args(args) -> RunConfig:
    spec = get_model(args.model)
    if args.dataset not in spec.datasets:
        raise ConvnetsError(f"{args.model} applies to {', '.join(spec.datasets)}, not {args.dataset}")
    default = spec.recipes[args.dataset]
    lr = args.lr
    if lr is None and args.batch_size:  # the linear scaling rule (Goyal et al. 2017): lr grows with the batch
        lr = default.lr * args.batch_size / default.batch_size
    recipe = default.replace(
        epochs=args.epochs, batch_size=args.batch_size, lr=lr, weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing, optimizer=args.optimizer, schedule=args.schedule, augment=args.augment,
    )
    if recipe.epochs < 1 or recipe.batch_size < 1 or not recipe.lr > 0:
        raise ConvnetsError("epochs and batch size must be at least 1 and the learning rate above 0")
    copy = datamod.find_source(args.dataset, args.data_dir).copy
    return RunConfig(args.model, args.dataset, recipe, seed=args.seed, data_copy=copy)


def reproduce_command(config: RunConfig, data_dir: str | None) -> str:
    """The full command that makes this exact run, recorded with it (defaults can change; this cannot)."""
    r = config.recipe
    argv = ["train", "--model", config.model, "--dataset", config.dataset, "--epochs", r.epochs,
            "--batch-size", r.batch_size, "--lr", r.lr, "--weight-decay", r.weight_decay,
            "--label-smoothing", r.label_smoothing, "--optimizer", r.optimizer, "--schedule", r.schedule,
            "--augment", r.augment, "--seed", config.seed] + (["--data-dir", data_dir] if data_dir else [])
    return "python -m convnets " + shlex.join(map(str, argv))


def cmd_train(args) -> int:
    from .train import Cancelled, dist_from_env, train_run

    config = config_from_args(args)
    main_rank = dist_from_env().main
    stop = {"requested": False}

    def on_term(*_):
        stop["requested"] = True

    signal.signal(signal.SIGTERM, on_term)
    bar = _ProgressBar() if sys.stderr.isatty() and not args.json and main_rank else None
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
        print(f"{verb} {summary['run_id']}: test accuracy {summary['test_accuracy']:.2%} after "
              f"{summary['epochs']} epochs, {summary['train_seconds']:.1f} s of training on {summary['device']}")
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
        table.append((r["run_id"] + (" (zoo)" if r["zoo"] else ""), r["state"], str(r.get("epochs_done", "")),
                      f"{acc:.2%}" if acc is not None else "-", str(r.get("train_seconds", "")),
                      r.get("device") or ""))
    _print_table(table)
    return 0


def cmd_eval(args) -> int:
    from .evaluate import final_report
    from .store import RunStore
    from .train import pick_device

    run = RunStore().require(args.run_id)
    config = run.config
    data = datamod.load(config.dataset, args.data_dir)
    if data.copy != config.data_copy:
        raise ConvnetsError(f"{run.run_id} was trained on the {config.data_copy} copy; {args.data_dir} has the "
                            f"{data.copy} copy")
    device = pick_device(args.device)
    report, _ = final_report(run.load_model(device), data, device)
    stored = (run.evaluation() or {}).get("test_accuracy")
    out = {"run_id": run.run_id, "test_accuracy": report["test_accuracy"], "stored_test_accuracy": stored,
           "confusion_matrix": report["confusion_matrix"], "data_copy": data.copy}
    if args.json:
        print(json.dumps(out))
    else:
        stored_text = f" (stored: {stored:.2%})" if stored is not None else ""
        print(f"{run.run_id}: test accuracy {report['test_accuracy']:.2%} on {data.copy} {config.dataset}{stored_text}")
        _print_table([("", *config_classes(config))] + [
            (name, *map(str, row)) for name, row in zip(config_classes(config), report["confusion_matrix"])])
    return 0


def config_classes(config: RunConfig) -> list[str]:
    return datamod.CLASSES[config.dataset]


def cmd_predict(args) -> int:
    from .predict import predict, prepare_drawing, prepare_upload

    inputs = []
    for path in args.images:
        try:
            blob = path.read_bytes()
        except OSError as e:
            raise ConvnetsError(f"cannot read {path}: {e.strerror}") from None
        try:
            if args.dataset == "cifar10":
                inputs.append(prepare_upload(blob))
                continue
            drawing = prepare_drawing(prepare_upload(blob, size=112))
        except ConvnetsError as e:
            raise ConvnetsError(f"{path}: {e}") from None
        if drawing.image is None:
            raise ConvnetsError(f"{path}: {drawing.reason}")
        inputs.append(drawing.image)
    results = predict(inputs, args.dataset)
    if not any(results):
        raise ConvnetsError(f"no finished {args.dataset} model in the store; train one first "
                            f"(python -m convnets train --model ... --dataset {args.dataset})")
    if args.json:
        print(json.dumps([{"image": str(p), "predictions": [x.to_dict() for x in preds]}
                          for p, preds in zip(args.images, results)]))
        return 0
    for path, preds in zip(args.images, results):
        print(path)
        for x in preds:
            print(f"  {x.model:<16} {x.class_name:<12} {x.probability:.1%}")
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


def _print_table(rows: list[tuple]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


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


COMMANDS = {"models": cmd_models, "train": cmd_train, "runs": cmd_runs, "eval": cmd_eval, "predict": cmd_predict,
            "zoo": cmd_zoo}
