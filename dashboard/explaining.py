"""What "Inside the net" shares with the pages that link to it: the inputs it can look into, how the Draw, Photo and
Errors pages hand theirs over, and the models, loaded once per server process.

The link names the input in a query parameter (`?input=drawing|photo|test|mistake`, a mistake also by `run` and
`mistake`, its index among the run's stored mistakes, so that such a link can be shared); pixels cannot travel in
a URL, so the Draw and Photo pages leave their current input in the session state, where the page finds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from convnets.datasets import STUDY, get_dataset
from convnets.errors import ConvnetsError
from convnets.explain import Explainer
from convnets.imaging import prepare_drawing, prepare_upload
from convnets.models import net_name
from convnets.store import Run, RunStore
from dashboard import common, samples

INPUT_PARAM, MISTAKE_PARAM = "input", "mistake"
SOURCES = {"drawing": "Your drawing", "photo": "Your photo", "test": "A test image", "mistake": "A run's mistake"}
DRAWING_KEY, PHOTO_KEY, TEST_KEY = "inside_drawing", "inside_photo", "inside_test"
NOTHING_YET = "nothing drawn yet"
CAMERA_CAPTION = "your camera's photo"


@dataclass(frozen=True, eq=False)
class Subject:
    """An input to look into: a model-sized image of a dataset, or None and why there is none."""

    dataset: str
    image: np.ndarray | None
    caption: str = ""
    reason: str = ""
    maker: str = ""  # the page where such an input is made, to link to when there is none


def say_why_not(subject: Subject) -> None:
    """Why there is nothing to look into, in the words of the page that makes such inputs, and a link there."""
    if subject.maker == "draw":
        common.draw_a_digit(subject.reason)
    else:
        st.info(subject.reason[:1].upper() + subject.reason[1:] + ".", icon=":material/info:")
    if subject.maker:
        common.link(subject.maker)


def hand_over_drawing(pixels: np.ndarray | None, dataset: str) -> None:
    """The Draw page leaves its canvas here on every stroke, empty or not, with the dataset whose models read it:
    the page prepares it as Draw does."""
    st.session_state[DRAWING_KEY] = (pixels, dataset)


def hand_over_photo(image: np.ndarray, caption: str, dataset: str) -> None:
    st.session_state[PHOTO_KEY] = (image, caption, dataset)


def link_inside(source: str, label: str, **params: str) -> None:
    common.link("inside", label=label, **{INPUT_PARAM: source}, **params)


def pick_subject() -> Subject:
    """A choice among the inputs, opened on the one the link named (else the digit drawn, if any, else a test image)."""
    wanted = st.query_params.get(INPUT_PARAM)
    default = wanted if wanted in SOURCES else "drawing" if _drawing().image is not None else "test"
    source = st.segmented_control("Input", list(SOURCES), format_func=SOURCES.get, default=default, required=True,
                                  key="inside_source")
    return _PICKERS[source]()


def _drawing() -> Subject:
    pixels, dataset = st.session_state.get(DRAWING_KEY, (None, STUDY[0]))
    if pixels is None:
        return Subject(dataset, None, reason=NOTHING_YET, maker="draw")
    # the Draw page's canvas: light strokes on black
    drawing = prepare_drawing(pixels, on_black=True, side=get_dataset(dataset).size)
    return Subject(dataset, drawing.image, "your drawing", drawing.reason, maker="draw")


def camera_photo(key: str, on_change=None) -> bytes | None:
    """A webcam photo (JPEG bytes), or None: behind a toggle, so that the browser asks for the camera only when the
    user wants it. The pages crop it to its centre square at the models' side, as an upload (prepare_upload)."""
    if not st.toggle("Use the camera", key=f"{key}_on", help="Take a photo with your webcam: hold an object up to "
                     "it, in the middle of the picture, which is the square the models see"):
        return None
    shot = st.camera_input("Hold an object up to the camera, in the middle", key=key, on_change=on_change,
                           width=400)
    return None if shot is None else shot.getvalue()


def _photo() -> Subject:
    taken = camera_photo("inside_camera")
    if taken is not None:
        handed = st.session_state.get(PHOTO_KEY)
        dataset = handed[2] if handed else next(iter(common.datasets_to_try(channels=3)), STUDY[1])
        try:
            image = prepare_upload(taken, get_dataset(dataset).size)
        except ConvnetsError as e:
            return Subject(dataset, None, reason=f"the camera's photo cannot be read: {e}")
        return Subject(dataset, image, CAMERA_CAPTION)
    if st.session_state.get(PHOTO_KEY) is None:
        return Subject(STUDY[1], None, reason="no photo yet: upload one on the Photo page, or pick a test image",
                       maker="photo")
    image, caption, dataset = st.session_state[PHOTO_KEY]
    return Subject(dataset, image, caption)


def _test_image() -> Subject:
    """A random test image of the chosen dataset, kept until the user asks for another or changes the dataset."""
    chosen, again = st.columns([3, 1], vertical_alignment="bottom")
    datasets = common.dataset_choices()[1:]
    default = common.dataset_filter() or datasets[0]
    dataset = chosen.segmented_control("Dataset", datasets, format_func=common.dataset_label, default=default,
                                       required=True, key="inside_test_dataset")
    kept = st.session_state.get(TEST_KEY)
    if again.button("Another test image", icon=":material/shuffle:") or kept is None or kept[0] != dataset:
        kept = (dataset, samples.random_test_image(dataset, common.data_dir(), common.finished(dataset)))
        st.session_state[TEST_KEY] = kept
    if kept[1] is None:
        return Subject(dataset, None, reason=f"no {dataset} test images at hand")
    image, caption = kept[1]
    return Subject(dataset, image, caption)


def _mistake() -> Subject:
    """One of a finished run's stored most confident mistakes, as the Errors page shows them."""
    rows = common.finished(common.dataset_filter())
    if not rows:
        return Subject(STUDY[0], None, reason="no finished run yet, so no mistakes to look at")
    summary = common.pick_run(rows)
    images, records = RunStore().require(summary["run_id"]).mistakes()
    if not records:
        return Subject(summary["dataset"], None, reason="this run made no mistakes on the test split")
    classes = list(get_dataset(summary["dataset"]).classes)
    wanted = st.query_params.get(MISTAKE_PARAM, "0")
    index = int(wanted) if wanted.isdigit() and int(wanted) < len(records) else 0
    index = st.selectbox("Mistake", range(len(records)), index=index, format_func=lambda i: _said(records[i], classes))
    caption = f"mistake {index + 1} of {net_name(summary['model'])}: {_said(records[index], classes)}"
    return Subject(summary["dataset"], images[index], caption)


def _said(record: dict, classes: list[str]) -> str:
    return f"a {classes[record['true']]}, taken for a {classes[record['predicted']]} ({record['confidence']:.0%})"


_PICKERS = {"drawing": _drawing, "photo": _photo, "test": _test_image, "mistake": _mistake}


# --- the models, once per server process ---------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the models…", max_entries=64)
def _explainer(path: str, readonly: bool, weights_changed: int) -> Explainer:
    """Keyed by the time the weights changed too, so that retrained weights are loaded afresh."""
    return Explainer.load(Run(Path(path), readonly))


def explainers(dataset: str) -> list[Explainer]:
    """The runs that answer on the Draw and Photo pages (each model's best, with the same toggles), each loaded once
    per server process (again only if its weights change); a run whose weights do not load is left out."""
    out = []
    store = RunStore()
    for run in filter(None, map(store.get, common.answering_runs(dataset))):
        try:
            out.append(_explainer(str(run.path), run.readonly, (run.path / "model.safetensors").stat().st_mtime_ns))
        except (ConvnetsError, OSError):
            continue
    return out
