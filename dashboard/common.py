"""What every page shares: the page registry, the sidebar's choices, cached store reads, empty states,
formatting and the prediction cards, so each page file stays a short layout of these pieces."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import ImageFont

from convnets.compare import predictions_of
from convnets.data import default_data_dir
from convnets.datasets import STUDY, dataset_fields, dataset_names
from convnets.errors import ConvnetsError
from convnets.imaging import to_display
from convnets.models import net_name
from convnets.predict import Prediction, choose_runs
from convnets.reporting import duration, pct, run_name, short_id  # noqa: F401 - the pages' figures, written as everywhere
from convnets.schema import Predictions, State
from convnets.store import RunStore
from dashboard import figures, tables

ROOT = Path(__file__).resolve().parent.parent
FONTS = Path(st.__file__).parent / "static" / "static" / "media"  # the fonts the browser draws the pages in
ALL = "all"
RUN_PARAM = "run"  # the query parameter that preselects a run on the result pages
OTHER_RUN_PARAM = "vs"  # and the run that Compare sets beside it


@dataclass(frozen=True)
class PageSpec:
    file: str
    title: str
    icon: str
    section: str


PAGES: dict[str, PageSpec] = {
    "study": PageSpec("study.py", "The study", ":material/school:", "Results"),  # the default page
    "leaderboard": PageSpec("leaderboard.py", "Leaderboard", ":material/leaderboard:", "Results"),
    "curves": PageSpec("curves.py", "Training curves", ":material/show_chart:", "Results"),
    "errors": PageSpec("errors.py", "Errors", ":material/grid_view:", "Results"),
    "compare": PageSpec("compare.py", "Compare", ":material/compare:", "Results"),
    "robustness": PageSpec("robustness.py", "Robustness", ":material/blur_on:", "Results"),
    "draw": PageSpec("draw.py", "Draw a digit", ":material/draw:", "Try the models"),
    "photo": PageSpec("photo.py", "Classify a photo", ":material/photo_camera:", "Try the models"),
    "inside": PageSpec("inside.py", "Inside the net", ":material/visibility:", "Try the models"),
    "train": PageSpec("train.py", "Train", ":material/model_training:", "Train"),
    "datasets": PageSpec("datasets.py", "Datasets", ":material/dataset:", "Train"),
}


def page_path(name: str) -> Path:
    """Absolute, because the entry point lives in dashboard/ while the pages live in the top-level pages/."""
    return ROOT / "pages" / PAGES[name].file


def link(name: str, label: str | None = None, run_id: str | None = None, **params: str) -> None:
    """A link to one of the pages, optionally opening it on one run and with other query parameters."""
    spec = PAGES[name]
    query = {RUN_PARAM: run_id} if run_id else {}
    st.page_link(page_path(name), label=label or spec.title, icon=spec.icon, query_params={**query, **params} or None)


def draw_a_digit(reason: str) -> None:
    """What the Draw page, and Inside the net on the drawing, answer while there is no digit to read."""
    st.info(f"Draw one digit, large, with the mouse or a finger: every MNIST model reads it as you draw ({reason}).",
            icon=":material/draw:")


def empty_state(message: str) -> None:
    """Tell a newcomer what the page needs and take them where they can make it."""
    st.info(message, icon=":material/info:")
    link("train", label="Train a model")


# --- the sidebar's choices, shared by every page through the session state ---------------------------


def dataset_label(name: str) -> str:
    """How the pages name a dataset (the registry's label; "All" for the sidebar's no-filter choice)."""
    return "All" if name == ALL else dataset_fields(name)["dataset_label"]


def dataset_choices() -> list[str]:
    """The sidebar's datasets: all of them, the study's two, then every other dataset of the registry with runs."""
    with_runs = {s["dataset"] for s in summaries()}
    return [ALL, *(name for name in dataset_names() if name in STUDY or name in with_runs)]


def datasets_to_try(channels: int) -> list[str]:
    """The datasets of greyscale (1) or colour (3) images that have a finished run: what Draw and Photo offer."""
    with_runs = {s["dataset"] for s in finished()}
    return [name for name in dataset_names() if name in with_runs and dataset_fields(name)["channels"] == channels]


def choose_dataset(options: list[str], key: str) -> str:
    """One of the datasets, the sidebar's if it is among them: a choice shown only when there is one to make."""
    preferred = dataset_filter()
    default = preferred if preferred in options else options[0]
    if len(options) == 1:
        return default
    return st.segmented_control("Dataset", options, format_func=dataset_label, default=default, required=True,
                                key=key)


def dataset_filter() -> str | None:
    """The sidebar's dataset, or None for all of them."""
    value = st.session_state.get("dataset_filter") or ALL
    return None if value == ALL else value


def data_dir() -> str:
    """The sidebar's data folder as an absolute path, which jobs are given as --data-dir: ~ expanded, and a relative
    path taken from the home folder, because the folder the server was started in is nothing the user sees."""
    text = (st.session_state.get("data_dir") or "").strip()
    if not text:
        return str(default_data_dir())
    folder = Path(text).expanduser()
    return str(folder if folder.is_absolute() else Path.home() / folder)


# --- cached reads of the store ------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=16)
def _summaries(home: str, zoo: str, token: str) -> list[dict]:
    return [run.summary() for run in RunStore(home, zoo).runs()]


def summaries() -> list[dict]:
    """Every run's summary, re-read only when some run's files change (the store's state token)."""
    store = RunStore()
    zoo = str(store.zoo_dir.parent) if store.zoo_dir else ""
    return _summaries(str(store.home), zoo, store.state_token())


def finished(dataset: str | None = None) -> list[dict]:
    """Summaries of the finished runs, newest first, optionally of one dataset."""
    rows = [s for s in summaries() if s["state"] == State.FINISHED and dataset in (None, s["dataset"])]
    return sorted(rows, key=lambda s: s.get("finished_at") or 0, reverse=True)


def finished_or_stop(what_for: str) -> list[dict]:
    """The finished runs of the sidebar's dataset; with none, the page says what they would show and stops."""
    rows = finished(dataset_filter())
    if not rows:
        empty_state(f"No finished runs yet. {what_for}")
        st.stop()
    return rows


def run_label(summary: dict) -> str:
    """Short enough for a select box, distinct even for two runs of one model, and saying where a run's recipe
    departs from the registered one ("normalize zca"), which its id does not."""
    return run_name(f"{net_name(summary['model'])} · {dataset_label(summary['dataset'])}", summary["epochs"],
                    summary["run_id"], bool(summary.get("zoo")), tables.recipe_changes(summary) or "",
                    summary.get("seed", 0))


def pick_run(rows: Sequence[dict]) -> dict:
    """A select box over runs, opened on the run named in the URL (links from the Train page use it)."""
    ids = [r["run_id"] for r in rows]
    wanted = st.query_params.get(RUN_PARAM)
    index = ids.index(wanted) if wanted in ids else 0
    by_id = {r["run_id"]: r for r in rows}
    run_id = st.selectbox("Run", ids, index=index, format_func=lambda i: run_label(by_id[i]))
    return by_id[run_id]


# --- formatting ---------------------------------------------------------------------------------------


def table_height(rows: int, most: int = 25) -> int:
    """The height in pixels at which ``st.dataframe`` shows ``rows`` rows without scrolling (its rows and header are
    35 px, its border 3), up to ``most`` rows: its default height hides every row past the tenth."""
    return 35 * (min(rows, most) + 1) + 3


@functools.cache
def _font(size: int, weight: int) -> ImageFont.FreeTypeFont | None:
    """Source Sans, the font the pages are drawn in, from Streamlit's own static files; None should a version of
    Streamlit ship it under another name."""
    found = next(FONTS.glob("SourceSansVF-Upright*"), None)
    if found is None:
        return None
    font = ImageFont.truetype(str(found), size)
    font.set_variation_by_axes([weight])
    return font


def text_width(texts: Iterable[object], size: int = 14, bold: bool = False) -> int:
    """The width in pixels of the longest of ``texts`` on one line at a font size of ``size`` pixels, measured in
    the pages' own font (or, without it, at a generous 0.55 em a character): what a label or a column must give a
    name so that it is not cut or broken inside a word."""
    font = _font(size, 700 if bold else 400)
    widths = [font.getlength(str(t)) if font else 0.55 * size * len(str(t)) for t in texts]
    return math.ceil(max(widths, default=0))


def column_width(values: Iterable[object], label: str) -> int:
    """The width in pixels at which an ``st.dataframe`` column shows its label and every value uncut (its 14 px
    font, 8.5 px of padding either side of a cell, a pixel or two to spare). Set where a column's values differ in
    length: the grid sizes a column by its first rows only, and cut the longer names further down
    ("ref_lenet_mni")."""
    return text_width([*values, label]) + 20


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def enlarged(image: np.ndarray, scale: int) -> np.ndarray:
    """A small model input in crisp blocks; a one-channel image as plain grey, which st.image takes."""
    big = to_display(image, scale)
    return big[..., 0] if big.ndim == 3 and big.shape[2] == 1 else big


def gallery(images: Sequence[np.ndarray], captions: Sequence[str], scale: int = 4) -> None:
    """Test images (H×W×C uint8) in a grid, one size for all whatever their captions."""
    shown = [enlarged(image, scale) for image in images]
    st.image(shown, caption=list(captions), width=shown[0].shape[1])


# --- per-image predictions ----------------------------------------------------------------------------


def stored_predictions(summary: dict) -> Predictions | None:
    """The run's answer for every test image. A run trained before they were kept says so, with a button that
    computes and stores them from the test split (which must be in the data folder)."""
    run = RunStore().require(summary["run_id"])
    found = run.predictions()
    if found is not None:
        return found
    st.info(f"**{run_label(summary)}** was trained before per-image predictions were kept.", icon=":material/info:")
    if st.button("Compute them from the test split", key=f"predict-{run.run_id}", icon=":material/calculate:"):
        try:
            with st.spinner("Predicting every test image…"):
                return predictions_of(run, data_dir())
        except ConvnetsError as e:
            st.error(str(e), icon=":material/error:")
    return None


# --- predictions --------------------------------------------------------------------------------------


def answering_runs(dataset: str) -> list[str]:
    """The runs whose predictions the Draw and Photo pages show: each model's best run (yours before the zoo's),
    leaving out runs at chance level; a toggle each (shown when it would change something) brings in every run, or
    the runs at chance."""
    rows = finished(dataset)
    several = len({s["model"] for s in rows}) < len(rows)
    chance = sum(bool(s.get("at_chance")) for s in rows)
    toggles = st.container(horizontal=True)
    every_run = several and toggles.toggle("Every run of each model", key="every_run", help="By default each model "
                                           "answers with one run: your best run of it, else the shipped zoo's")
    with_chance = bool(chance) and toggles.toggle(f"Runs at chance level ({chance})", key="chance_runs",
                                                  help="Runs that ended no better than a guess learned nothing; "
                                                  "they are left out unless you ask for them")
    return choose_runs(rows, best_per_model=not every_run, at_chance=with_chance)


def unbroken(name: str) -> str:
    """A run's name for text that wraps: its hyphens ("batch-size 64") non-breaking, so that a line never ends
    inside an option's name."""
    return name.replace("-", "\u2011")


def prediction_cards(predictions: Sequence[Prediction], top: int | None = None, per_row: int = 3) -> None:
    """One card per run side by side, titled so that two runs of one model differ (model, epochs, short id, zoo):
    its answer, then every class's probability (a chart) or its top ones. The cards of a row are as tall as the
    tallest, and each answer sits at its card's foot, so that answers and charts line up whatever the titles'
    lengths."""
    for start in range(0, len(predictions), per_row):
        columns = st.columns(per_row)
        for column, p in zip(columns, predictions[start : start + per_row]):
            with column.container(border=True, height="stretch", vertical_alignment="distribute"):
                st.markdown(f"**{unbroken(p.name)}**", help=f"run {p.run_id}")
                with st.container():
                    st.metric("prediction", p.class_name, label_visibility="collapsed")
                    if top is None:
                        st.caption(f"{p.probability:.1%} sure")
                        st.plotly_chart(figures.probabilities(p), config=figures.STATIC, key=f"probs-{p.run_id}")
                    else:
                        for name, probability in p.top(top):
                            st.progress(probability, text=f"{name} · {probability:.1%}")
