"""The offline report: the leaderboard and its charts, the training curves, each run's confusion matrix, a comparison
of two runs, calibration and robustness, as one HTML file to send to someone without the dashboard.

Self-contained: plotly's JavaScript is inlined once and the figures share it, images are data URIs, and nothing in
the file refers to another host, so it opens from disk in a browser with the network off. The figures and tables
are the dashboard's own (figures.py, tables.py), so the report shows what the pages show.
"""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.offline
from PIL import Image

from convnets import data as datamod
from convnets.calibration import reliability
from convnets.compare import compare, only_right
from convnets.datasets import get_dataset
from convnets.errors import ConvnetsError
from convnets.imaging import mosaic
from convnets.models import net_name
from convnets.reporting import pct, run_name
from convnets.schema import Predictions
from convnets.store import Run, RunStore
from dashboard import figures, tables

SHOWN = 30  # images per gallery of disagreements, as on the Compare page
GALLERY_COLUMNS, GALLERY_SCALE = 10, 3
CONFIG = {"displaylogo": False, "responsive": True}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #212121; }
h1, h2, h3 { font-weight: 600; } h2 { border-bottom: 1px solid #c5cae9; padding-bottom: .2rem; margin-top: 2.5rem; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0 1rem; }
th, td { border-bottom: 1px solid #e0e0e0; padding: .25rem .5rem; text-align: right; white-space: nowrap; }
th { background: #e8eaf6; } td:first-child, th:first-child { text-align: left; }
.scroll { overflow-x: auto; } .caption { color: #616161; font-size: .9rem; } img.gallery { image-rendering: pixelated; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 1rem; }
"""


class Report:
    """The HTML being written: its sections, and how many charts they hold."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.charts = 0

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def heading(self, level: int, text: str) -> None:
        self.add(f"<h{level}>{html.escape(text)}</h{level}>")

    def caption(self, text: str) -> None:
        self.add(f'<p class="caption">{html.escape(text)}</p>')

    def chart(self, fig: go.Figure) -> str:
        """The figure as a div drawn by the one inlined plotly.js, returned for the caller to place."""
        self.charts += 1
        return fig.to_html(full_html=False, include_plotlyjs=False, config=CONFIG, div_id=f"chart-{self.charts}")

    def table(self, frame: pd.DataFrame, index: bool = False) -> None:
        markup = frame.to_html(index=index, na_rep="–", border=0, float_format=lambda v: f"{v:,.2f}")
        self.add(f'<div class="scroll">{markup}</div>')

    def page(self, title: str) -> str:
        body = "\n".join(self.parts)
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                f"<style>{STYLE}</style>\n<script>{plotly.offline.get_plotlyjs()}</script></head>\n"
                f"<body>\n{body}\n</body></html>\n")


def write_report(out: Path, dataset: str | None = None, run_ids: list[str] | None = None,
                 data_dir: str | None = None, store: RunStore | None = None) -> dict:
    """Write the report of the finished runs (of ``dataset``, or those named) to ``out``; returns its path, size
    and what it holds. Each dataset compares its first two runs as named, else its two best; the galleries show
    the test images where the data folder has them, else the answers as a table."""
    store = store or RunStore()
    runs = chosen_runs(store, dataset, run_ids)
    report = Report()
    summaries = [r.summary() for r in runs]
    if not run_ids:  # the best first, so that each dataset compares its two best runs
        order = sorted(range(len(runs)), key=lambda i: -(summaries[i].get("test_accuracy") or 0))
        runs, summaries = [runs[i] for i in order], [summaries[i] for i in order]
    report.heading(1, "convnets report")
    report.caption(f"{len(runs)} finished runs, written {time.strftime('%Y-%m-%d %H:%M')}. Every chart is "
                   "interactive (hover, zoom, click a legend entry) and works offline.")
    _leaderboard(report, summaries)
    by_dataset: dict[str, list[tuple[Run, dict]]] = {}
    for run, summary in zip(runs, summaries):
        by_dataset.setdefault(summary["dataset"], []).append((run, summary))
    for name, members in by_dataset.items():
        _dataset_section(report, name, members, data_dir)
    markup = report.page("convnets report")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markup, encoding="utf-8")
    except OSError as e:
        raise ConvnetsError(f"cannot write the report {out} ({e.strerror})") from None
    return {"path": str(out), "bytes": out.stat().st_size, "runs": len(runs), "charts": report.charts,
            "datasets": list(by_dataset)}


def chosen_runs(store: RunStore, dataset: str | None, run_ids: list[str] | None) -> list[Run]:
    """The named runs in the order given (each must be finished), else every finished run of the dataset (or all)."""
    if not run_ids:
        runs = store.finished(dataset)
        if not runs:
            raise ConvnetsError("no finished runs to report on" + (f" for {dataset}" if dataset else ""))
        return runs
    runs = [store.require(i) for i in dict.fromkeys(run_ids)]
    for run in runs:
        if not run.finished:
            raise ConvnetsError(f"run {run.run_id} is {run.status()['state']}, not finished")
        if dataset and run.config.dataset != dataset:
            raise ConvnetsError(f"run {run.run_id} is a {run.config.dataset} run, not {dataset}")
    return runs


def _label(summary: dict) -> str:
    return run_name(net_name(summary["model"]), summary["epochs"], summary["run_id"], summary["zoo"],
                    tables.recipe_changes(summary) or "", summary["seed"])


def _leaderboard(report: Report, summaries: list[dict]) -> None:
    board = tables.leaderboard(summaries)
    report.heading(2, "Leaderboard")
    report.table(tables.without_empty_columns(board, tables.PUBLISHED))
    published = tables.published_points(board)
    report.add(report.chart(figures.accuracy_scatter(board, "Params", True, "parameters (log scale)",
                                                     published=published)))
    report.caption("Filled: our runs, by kind of net. Open: the paper's figure (circle) and the study's (diamond).")
    report.add(report.chart(figures.accuracy_scatter(board, "Train s", True, "training time (s, log scale)",
                                                     published=published, by_device=True)))
    report.caption("Training times compare like with like only on one device in one precision: one row each.")


def _dataset_section(report: Report, dataset: str, members: list[tuple[Run, dict]], data_dir: str | None) -> None:
    spec = get_dataset(dataset)
    classes = list(spec.classes)
    report.heading(2, spec.label)
    report.heading(3, "Training curves")
    report.add(report.chart(figures.training_curves([(_label(s), run.history()) for run, s in members])))
    report.caption("Test solid, train dotted.")

    report.heading(3, "Confusion matrices")
    cells = []
    for run, s in members:
        evaluation = run.evaluation() or {}
        if "confusion_matrix" in evaluation:
            fig = figures.confusion(evaluation["confusion_matrix"], evaluation.get("classes", classes), False)
            fig.update_layout(title={"text": _label(s), "font": {"size": 13}}, height=420)
            cells.append(f"<div>{report.chart(fig)}</div>")
    report.add(f'<div class="grid">{"".join(cells)}</div>')
    report.caption("Rows: the true classes; columns: what the run said.")

    predictions = [(run, s, run.predictions()) for run, s in members]
    with_predictions = [(run, s, p) for run, s, p in predictions if p is not None]
    if len(with_predictions) >= 2:
        _comparison(report, with_predictions[0], with_predictions[1], classes, data_dir)

    report.heading(3, "Calibration")
    calibrations = [(_label(s), reliability(p.confidence, p.correct)) for _, s, p in with_predictions]
    if calibrations:
        report.add(report.chart(figures.reliability(calibrations)))
        report.caption("Accuracy against confidence over 15 bins: on the diagonal a run is right exactly as often as "
                       "it is sure; below it, over-confident. ECE: the gap averaged over the test images.")
    else:
        report.caption("No run of this dataset kept its per-image predictions.")

    report.heading(3, "Robustness")
    measured = [(s, r) for run, s in members if (r := run.robustness()) is not None]
    if measured:
        report.table(tables.robustness(measured))
        report.add(report.chart(figures.robustness([(_label(s), r) for s, r in measured])))
        report.caption("Test accuracy under the corruptions, mean over them, at five severities (0: clean).")
    else:
        report.caption("No run of this dataset was measured under corruptions yet (python -m convnets robustness).")


def _comparison(report: Report, first: tuple, second: tuple, classes: list[str], data_dir: str | None) -> None:
    """The first two runs side by side, as the Compare page sets them: 2×2 table, McNemar's p, the galleries."""
    (run_a, a, pa), (_, b, pb) = first, second
    report.heading(3, f"Compared: A {_label(a)} and B {_label(b)}")
    try:
        result = compare(pa, pb)
    except ConvnetsError as e:
        report.caption(str(e))
        return
    t = result["table"]
    report.caption(f"A {pct(result['accuracy_a'])}, B {pct(result['accuracy_b'])} on the same {result['images']:,} "
                   f"test images; they disagree on {t['only_a'] + t['only_b']:,}: A alone is right on "
                   f"{t['only_a']:,}, B alone on {t['only_b']:,}. McNemar's exact test: p = {result['mcnemar_p']:.2g} "
                   "(the chance of a split at least this uneven if both runs were equally good).")
    report.table(tables.two_by_two(t, "A", "B"), index=True)
    images, why = _test_images(run_a, pa, data_dir)
    if images is None:
        report.caption(f"{why} The disagreements are listed without their images.")
    for title, indices in ((f"Only A right ({len(only_right(pa, pb)):,})", only_right(pa, pb)),
                           (f"Only B right ({len(only_right(pb, pa)):,})", only_right(pb, pa))):
        report.heading(4, title)
        shown = indices[:SHOWN]
        if not len(shown):
            report.caption("None.")
            continue
        if images is not None:
            tiles = images.take(shown).transpose(0, 2, 3, 1).astype(np.float32) / 255
            picture = _png(mosaic(tiles, GALLERY_COLUMNS, GALLERY_SCALE))
            report.add(f'<img class="gallery" alt="{html.escape(title)}" src="{picture}">')
        report.table(pd.DataFrame({"test image": shown, "true": [classes[pa.labels[i]] for i in shown],
                                   "A": [_answer(pa, i, classes) for i in shown],
                                   "B": [_answer(pb, i, classes) for i in shown]}))
        if len(indices) > SHOWN:
            report.caption(f"The first {SHOWN} of {len(indices):,}, the other run's most confident mistakes first.")


def _answer(p: Predictions, i: int, classes: list[str]) -> str:
    return f"{classes[p.predicted[i]]} {float(p.confidence[i]):.0%}"


def _test_images(run: Run, predictions: Predictions,
                 data_dir: str | None) -> tuple[datamod.SplitImages | None, str]:
    """The test images the predictions were made on when the data folder holds them (never a download), else None
    and why not."""
    config = run.config
    if datamod.find_source(config.dataset, data_dir).kind == "download":
        return None, f"The {config.dataset} test images are not in the data folder."
    try:
        images = datamod.split_images(config.dataset, "test", data_dir)
    except ConvnetsError as e:
        return None, f"The {config.dataset} test images cannot be read: {e}."
    why = images.mismatch(config.dataset, config.data_copy, predictions.labels)
    return (None, why) if why else (images, "")


def _png(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
