"""Plotly figures built from plain data (tables, histories, evaluations, predictions), so pages only place them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from convnets.predict import Prediction
from dashboard.tables import KINDS, NET, OFFICIAL

STATIC = {"displayModeBar": False}  # small charts: hover is enough, the toolbar only covers them
PALETTE = px.colors.qualitative.Plotly
# Past the palette's ten colours a run's line takes another dash and marker: twelve runs, twelve looks.
DASHES = ("solid", "dash", "dot", "dashdot")
SYMBOLS = ("circle", "square", "diamond", "triangle-up")
ACCENT, MUTED = "#3f51b5", "#c5cae9"
CHOSEN = "#ff6f00"  # the outline of the chosen cell of a confusion matrix
CURVE_X = {"epoch": "epoch", "wall_seconds": "training time (s, wall clock)"}
_METRICS = (("loss", ".4f"), ("accuracy", ".2%"))


def _compact_layout(height: int, top: int = 30) -> dict:
    return {"height": height, "margin": {"l": 10, "r": 10, "t": top, "b": 10}}


def _compact(fig: go.Figure, height: int, top: int = 30) -> go.Figure:
    fig.update_layout(**_compact_layout(height, top))
    return fig


PUBLISHED_SYMBOLS = {"paper": "circle-open", "study": "diamond-open"}
# Our runs of a kind wear the shape of that kind's published figure, filled, so a net sits beside its paper's or
# the study's figure in the same shape.
KIND_SYMBOLS = {KINDS["paper"]: "circle", KINDS["reference"]: "diamond", KINDS["modern"]: "star"}
OTHER_SYMBOLS = ["square", "triangle-up", "cross", "x", "pentagon"]
ROW_HEIGHT = 190
AXIS_FOOT = 56  # pixels below a chart's plotting area for its tick labels and axis title, above the legend


def device_order(devices: Sequence[str]) -> list[str]:
    """Accelerators first, the study's GPU beside them (its times are the ones ours on a GPU answer), CPUs last."""
    return sorted(devices, key=lambda d: (d.startswith("cpu"), d.startswith("the study"), d))


def accuracy_scatter(frame: pd.DataFrame, x: str, log_x: bool, x_title: str,
                     published: pd.DataFrame | None = None, by_device: bool = False) -> go.Figure:
    """Accuracy in official-data terms against a cost: one colour per family, the kind of net (paper, study,
    modern) as the marker, filled for our runs and open for the published figures. `by_device` gives each device
    and precision a row of its own, for a cost (time) that only compares like with like."""
    ours = frame.assign(Marker=frame["Kind"].fillna("–"), Source="ours")
    if published is not None and not published.empty:
        shown = published[published[x].notna()]
        ours = pd.concat([ours, shown.assign(Marker=shown["Source"].map(lambda s: f"{s}'s figure"))],
                         ignore_index=True)
    markers = KIND_SYMBOLS | {f"{s}'s figure": shape for s, shape in PUBLISHED_SYMBOLS.items()}
    markers.update({m: OTHER_SYMBOLS[i % len(OTHER_SYMBOLS)]
                    for i, m in enumerate(sorted(set(ours["Marker"]) - set(markers)))})
    datasets = list(ours["Dataset"].unique())
    several = len(datasets) > 1
    if by_device:
        ours["Device"] = ours["Device"].fillna("–")
    rows = device_order(ours["Device"].unique()) if by_device else [None]
    spacing = 0.16 / len(rows)
    hover = {c: fmt for c, fmt in (("Model", True), ("Run", True), ("Device", True), ("Epochs", True),
                                   ("Test acc. %", ":.2f"), (OFFICIAL, ":.2f"), ("Params", ":,"), ("Marker", False))
             if c in ours}
    fig = px.scatter(
        ours, x=x, y=OFFICIAL, color="Family", symbol="Marker", symbol_map=markers, log_x=log_x,
        facet_col="Dataset" if several else None, facet_col_spacing=0.06,
        facet_row="Device" if by_device else None, facet_row_spacing=spacing,
        category_orders={"Device": rows, "Dataset": datasets, "Marker": list(markers)}, hover_data=hover,
        hover_name=NET if NET in ours else None,
        labels={x: x_title, OFFICIAL: "≈ official (%)" if by_device else "test accuracy, ≈ official (%)",
                "Marker": ""},
    )
    fig.update_traces(marker={"size": 12, "line": {"width": 1, "color": "white"}})
    fig.for_each_trace(lambda t: t.update(marker={"size": 14, "line": {"width": 2}})
                       if "figure" in t.name else None)
    legend = _legends(fig, [m for m in markers if m in set(ours["Marker"])], markers)
    # Room beyond the extreme points, so that no marker sits on a panel's edge beside the next panel's labels.
    low, high = ours[x].min(), ours[x].max()
    if low > 0:  # False for NaN too: no figure to frame then
        fig.update_xaxes(range=[math.log10(low / 1.6), math.log10(high * 1.6)] if log_x else [0, high * 1.1])
    # MNIST and CIFAR-10 accuracies are far apart: each dataset's panels get a scale of their own. Set, not left to
    # autorange, which plotly.js gets wrong (an empty 0-4 scale) once the axes of several rows are matched.
    fig.update_yaxes(matches=None, showticklabels=True)
    for column, dataset in enumerate(datasets, start=1):
        accuracy = ours.loc[ours["Dataset"] == dataset, OFFICIAL]
        pad = max(0.5, 0.08 * (accuracy.max() - accuracy.min()))
        fig.update_yaxes(range=[accuracy.min() - pad, accuracy.max() + pad], col=column)
    # Facet titles read "Dataset=cifar10": keep the value; a device's title goes across the top of its row,
    # where its whole name fits, rather than turned on its side at the right.
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    if by_device:
        half_row = (1 - spacing * (len(rows) - 1)) / len(rows) / 2
        fig.for_each_annotation(lambda a: a.update(textangle=0, x=0, xanchor="left", y=a.y + half_row,
                                                   yanchor="bottom") if a.textangle == 90
                                else a.update(yshift=20, font={"size": 14}))  # a dataset's, above its first device's
    top = (50 + 20 * several) if by_device else 30
    _compact(fig, legend + (80 + ROW_HEIGHT * len(rows) if by_device else 420), top=top)
    fig.update_layout(margin_b=legend + AXIS_FOOT)
    return fig


LEGEND_TITLE, LEGEND_ENTRY = 24, 19  # pixels: a legend group's title and each of its entries


def _legends(fig: go.Figure, shown: list[str], markers: dict[str, str]) -> int:
    """One short legend under the chart, two columns: the families' colours and the shapes (the kind of net, ours
    filled and the published figures open), in place of an entry per pair of them, which made a column of some
    twenty entries in a box that scrolled. Returns its height in pixels."""
    colours = {}
    for trace in fig.data:
        colours.setdefault(trace.name.split(", ", 1)[0], trace.marker.color)
    fig.update_traces(showlegend=False)
    for family, colour in colours.items():
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=family, legendgroup="family",
                                 legendgrouptitle_text="family", marker={"color": colour, "size": 12,
                                                                          "symbol": "square"}))
    for marker in shown:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=marker, legendgroup="marker",
                                 legendgrouptitle_text="marker",
                                 marker={"color": "#616161", "size": 12, "symbol": markers[marker],
                                         "line": {"width": 2, "color": "#616161"}}))
    # At the foot of the figure, below the axis titles, in a margin as tall as its longer column of entries.
    fig.update_layout(legend={"orientation": "h", "xref": "container", "x": 0.01, "xanchor": "left",
                              "yref": "container", "y": 0, "yanchor": "bottom", "title_text": "",
                              "itemclick": False, "itemdoubleclick": False})
    return LEGEND_TITLE + LEGEND_ENTRY * max(len(colours), len(shown))


def training_curves(histories: Sequence[tuple[str, list[dict]]], x: str = "epoch", height: int = 420) -> go.Figure:
    """Loss and accuracy side by side, one colour per run, test solid and train dotted. A history with standard
    deviations beside its figures (tables.mean_history of several seeds) gets a band of ± one of them."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.08)
    for i, (label, history) in enumerate(histories):
        colour = PALETTE[i % len(PALETTE)]
        xs = [h[x] for h in history]
        for col, (metric, fmt) in enumerate(_METRICS, start=1):
            for split, dash in (("test", "solid"), ("train", "dot")):
                key, group = f"{split}_{metric}", f"{label} · {split}"
                if history and f"{key}_std" in history[0]:
                    upper = [h[key] + h[f"{key}_std"] for h in history]
                    lower = [h[key] - h[f"{key}_std"] for h in history]
                    fig.add_trace(go.Scatter(x=xs + xs[::-1], y=upper + lower[::-1], fill="toself", mode="none",
                                             fillcolor=colour, opacity=0.18, legendgroup=group, showlegend=False,
                                             hoverinfo="skip"), row=1, col=col)
                fig.add_trace(go.Scatter(
                    x=xs, y=[h[key] for h in history], mode="lines+markers",
                    name=group, legendgroup=group, showlegend=col == 1,
                    line={"color": colour, "dash": dash}, hovertemplate=f"%{{y:{fmt}}}",
                ), row=1, col=col)
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    fig.update_xaxes(title_text=CURVE_X[x])
    fig.update_layout(hovermode="x unified", legend={"orientation": "h", "y": -0.25})
    return _compact(fig, height)


def confusion(matrix: list[list[int]], classes: list[str], normalised: bool,
              chosen: tuple[int, int] | None = None) -> go.Figure:
    """Rows are the true classes; normalised rows read as 'of the true Xs, this share was called Y'.

    A heatmap's cells cannot be selected by a click (plotly.js selects points, and a heatmap has none), so an
    invisible marker sits on each cell: with ``st.plotly_chart(on_select=..., selection_mode="points")`` a click
    selects the marker of its cell, whose ``point_index`` is true class × classes + predicted class
    (``clicked_cell``). ``chosen`` (true, predicted) is outlined."""
    values = np.asarray(matrix, dtype=float)
    if normalised:
        values = values / values.sum(axis=1, keepdims=True).clip(min=1)
    fig = px.imshow(values, x=classes, y=classes, color_continuous_scale="Blues", aspect="equal",
                    text_auto=".2f" if normalised else ".0f",
                    labels={"x": "predicted", "y": "true", "color": "share" if normalised else "images"})
    fig.update_traces(hoverinfo="skip", hovertemplate=None)  # the markers below answer instead
    n = len(classes)
    counts = np.asarray(matrix)
    fig.add_trace(go.Scatter(
        x=[classes[i % n] for i in range(n * n)], y=[classes[i // n] for i in range(n * n)], mode="markers",
        marker={"size": 1, "opacity": 0}, selected={"marker": {"opacity": 0}}, unselected={"marker": {"opacity": 0}},
        customdata=[counts[i // n, i % n] for i in range(n * n)], showlegend=False,
        hovertemplate="true %{y}, predicted %{x}: %{customdata:,} images (click: show them)<extra></extra>"))
    if chosen is not None:
        true, predicted = chosen
        fig.add_shape(type="rect", x0=predicted - 0.5, x1=predicted + 0.5, y0=true - 0.5, y1=true + 0.5,
                      line={"color": CHOSEN, "width": 3})
    # Every class named, a click anywhere in a cell taken by the marker at its centre, and no dragging the matrix
    # about (a chart whose points can be selected pans on a drag).
    fig.update_xaxes(type="category", side="top", tickmode="linear", dtick=1, fixedrange=True)
    fig.update_yaxes(type="category", tickmode="linear", dtick=1, fixedrange=True)
    fig.update_layout(hoverdistance=-1)
    return _compact(fig, 460, top=60)


def clicked_cell(selection: dict, classes: int) -> tuple[int, int] | None:
    """The (true, predicted) cell that a click on ``confusion``'s chart chose, from its selection state."""
    points = selection.get("points") or []
    index = points[0].get("point_index") if points else None
    return None if index is None else divmod(int(index), classes)


def per_class_accuracy(per_class: dict[str, float]) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(per_class), y=list(per_class.values()), marker_color=ACCENT,
                           text=[f"{v:.0%}" for v in per_class.values()], textposition="outside",
                           textfont={"size": 11},
                           hovertemplate="%{x}: %{y:.2%}<extra></extra>"))
    fig.update_yaxes(tickformat=".0%", range=[0, 1.12], title_text="test accuracy")
    fig.update_xaxes(type="category")
    return _compact(fig, 320, top=10)


def probabilities_spec(p: Prediction) -> dict:
    """Every class's probability, the predicted one highlighted, as plotly's figure dictionary."""
    label = p.label  # an argmax each time it is asked
    colours = [ACCENT if i == label else MUTED for i in range(len(p.classes))]
    return {"data": [{"type": "bar", "x": list(p.classes), "y": [float(v) for v in p.probabilities],
                      "marker": {"color": colours}, "hovertemplate": "%{x}: %{y:.2%}<extra></extra>"}],
            "layout": {**_compact_layout(150, top=12),
                       "xaxis": {"type": "category", "tickangle": 0, "dtick": 1, "tickfont": {"size": 10}},
                       "yaxis": {"tickformat": ".0%", "range": [0, 1], "tickvals": [0, 0.5, 1]}}}


def probabilities(p: Prediction) -> go.Figure:
    """``probabilities_spec`` as a figure, built without plotly's per-property validation: Draw shows one per model
    on every stroke, and validating three of them took a third of the server's CPU per stroke (5.3 against 1.3 ms
    each). tests/test_figures.py checks that the validated figure is the same."""
    return go.Figure(probabilities_spec(p), _validate=False)


def class_counts(counts: dict[str, list[int]], classes: list[str]) -> go.Figure:
    """Images per class, one bar per split side by side."""
    fig = go.Figure([go.Bar(x=classes, y=n, name=split, marker_color=colour,
                            hovertemplate="%{x}: %{y:,}<extra></extra>")
                     for (split, n), colour in zip(counts.items(), (ACCENT, MUTED))])
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text="images")
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": 1.12})
    return _compact(fig, 300)


def bin_marker_sizes(counts: Sequence[int], smallest: float = 4.0, largest: float = 14.0) -> list[float]:
    """Marker sizes growing with the logarithm of each bin's image count, as the bars below them: a bin of three
    images, whose accuracy can only be 0, 33, 67 or 100 %, draws a dot, not a point as heavy as a bin of thousands."""
    top = math.log1p(max(counts, default=1))
    return [smallest + (largest - smallest) * math.log1p(n) / top for n in counts]


def reliability(calibrations: Sequence[tuple[str, dict]], height: int = 440) -> go.Figure:
    """Accuracy against confidence per bin (perfect calibration on the diagonal), one colour per run, and below it
    how many test images fall in each bin."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.06)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"color": "#9e9e9e", "dash": "dash"},
                             name="perfectly calibrated", hoverinfo="skip"), row=1, col=1)
    for i, (label, c) in enumerate(calibrations):
        colour = PALETTE[i % len(PALETTE)]
        width = 1 / c["bins"]
        centres = [(k + 0.5) * width for k in range(c["bins"])]
        filled = [k for k, n in enumerate(c["count"]) if n]
        fig.add_trace(go.Scatter(
            x=[c["confidence"][k] for k in filled], y=[c["accuracy"][k] for k in filled], mode="lines+markers",
            name=f"{label} · ECE {c['ece']:.2%}", legendgroup=label, line={"color": colour},
            marker={"size": bin_marker_sizes([c["count"][k] for k in filled])},
            customdata=[c["count"][k] for k in filled],
            hovertemplate="confidence %{x:.1%}: accuracy %{y:.1%} (%{customdata:,} images)<extra></extra>",
        ), row=1, col=1)
        fig.add_trace(go.Bar(x=centres, y=c["count"], width=width / max(len(calibrations), 1), marker_color=colour,
                             offset=(i - len(calibrations) / 2) * width / max(len(calibrations), 1),
                             legendgroup=label, showlegend=False,
                             hovertemplate="%{y:,} images<extra></extra>"), row=2, col=1)
    fig.update_xaxes(range=[0, 1], tickformat=".0%", row=1, col=1)
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title_text="confidence (the top class's probability)", row=2,
                     col=1)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", title_text="accuracy", row=1, col=1)
    fig.update_yaxes(type="log", dtick=1, title_text="images", row=2, col=1)  # a tick per power of ten
    fig.update_layout(legend={"orientation": "h", "y": 1.12}, bargap=0)
    return _compact(fig, height, top=40)


def run_look(i: int) -> dict:
    """The line and marker of the i-th run of a chart of runs: a colour each up to the palette's ten, then the
    colours again with another dash and marker, so that no two runs of forty look alike."""
    turn = i // len(PALETTE) % len(DASHES)
    return {"line": {"color": PALETTE[i % len(PALETTE)], "dash": DASHES[turn]}, "marker": {"symbol": SYMBOLS[turn]}}


def robustness(rows: Sequence[tuple[str, dict]], corruption: str | None = None, height: int = 380) -> go.Figure:
    """Accuracy against severity (0: clean), one line per run: under one corruption, or the mean over all."""
    fig = go.Figure()
    for i, (label, r) in enumerate(rows):
        curves = [r["accuracy"][corruption]] if corruption else list(r["accuracy"].values())
        ys = [r["clean_accuracy"], *np.mean(curves, axis=0)]
        fig.add_trace(go.Scatter(x=list(range(len(ys))), y=ys, mode="lines+markers", name=label, **run_look(i),
                                 hovertemplate="severity %{x}: %{y:.2%}<extra>" + label + "</extra>"))
    fig.update_xaxes(title_text="severity (0: the test images as they are)", dtick=1)
    under = corruption.replace("_", " ") if corruption else "the corruptions (mean)"
    fig.update_yaxes(tickformat=".0%", title_text=f"test accuracy under {under}")
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return _compact(fig, height)


def attack(rows: Sequence[tuple[str, dict]], method: str, height: int = 380) -> go.Figure:
    """Accuracy against the attack's size ε (0: the test images as they are), one line per run (label, record)."""
    fig = go.Figure()
    for i, (label, r) in enumerate(rows):
        fig.add_trace(go.Scatter(x=r["eps"], y=r["accuracy"], mode="lines+markers", name=label, **run_look(i),
                                 hovertemplate="ε %{x}/255: %{y:.2%}<extra>" + label + "</extra>"))
    sizes = sorted({e for _, r in rows for e in r["eps"]})
    fig.update_xaxes(title_text="ε, in grey levels (/255; 0: the test images as they are)", tickvals=sizes)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", title_text=f"test accuracy under {method}")
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return _compact(fig, height)
