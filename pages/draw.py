"""Draw a digit: every finished model of a greyscale dataset (MNIST, or any other) reads the drawing, stroke by
stroke."""

from collections import Counter

import streamlit as st

from convnets.datasets import get_dataset
from convnets.predict import Prediction, predict, prepare_drawing
from dashboard import common, explaining
from dashboard.canvas import st_canvas

CANVAS_SIDE = 336  # twelve canvas pixels per MNIST pixel: room for a finger, and still within a phone's width
ANSWERS_WIDTH = 540  # three answer cards side by side; beside the pad at 1400 px, under it at 1000 (sidebar open)
STROKE_WIDTH = 24  # MNIST's pen: about two of its 28 pixels
INPUT_SCALE = 4


def clear() -> None:
    """A canvas under a new key starts empty."""
    st.session_state["canvas_generation"] = st.session_state.get("canvas_generation", 0) + 1
    st.session_state.pop("canvas_start", None)


def undo() -> None:
    """Every stroke but the last, as the canvas's starting drawing: the canvas redraws itself from a starting
    drawing that changed, and sends it back (a fresh canvas would not). The count makes each undo a change."""
    undos = (st.session_state.get("canvas_start") or {}).get("undos", 0) + 1
    st.session_state["canvas_start"] = {"objects": st.session_state.get("canvas_strokes", [])[:-1], "undos": undos}


def verdict_text(predictions: list[Prediction]) -> str:
    """The answer most models give, and how far they agree on it."""
    (answer, count), total = Counter(p.class_name for p in predictions).most_common(1)[0], len(predictions)
    if count == total:
        return f"### It's a {answer}\n{'The model says so.' if total == 1 else f'All {total} models agree.'}"
    if 2 * count > total:
        return f"### It's a {answer}\n{count} of {total} models say so."
    return f"### The models disagree\nThe most votes, {count} of {total}, go to {answer}."


@st.fragment
def drawing_board(dataset: str) -> None:
    """A fragment, so that each stroke reruns only the canvas and the predictions, not the whole app."""
    board = st.container(horizontal=True, gap="medium")  # wraps: the answers go under the pad where both do not fit
    pad, seen = board.container(width=CANVAS_SIDE), board.container(width=ANSWERS_WIDTH)
    with pad:
        canvas = st_canvas(stroke_width=STROKE_WIDTH, stroke_color="#ffffff", background_color="#000000",
                           width=CANVAS_SIDE, height=CANVAS_SIDE, drawing_mode="freedraw", update_streamlit=True,
                           return_image_data=True, initial_drawing=st.session_state.get("canvas_start"),
                           key=f"canvas-{st.session_state.get('canvas_generation', 0)}")
        st.session_state["canvas_strokes"] = (canvas.json_data or {}).get("objects") or []
        with st.container(horizontal=True):
            st.button("Clear", icon=":material/ink_eraser:", on_click=clear)
            st.button("Undo", icon=":material/undo:", on_click=undo, disabled=not st.session_state["canvas_strokes"])

    pixels = canvas.image_data
    spec = get_dataset(dataset)
    drawing = prepare_drawing(pixels, on_black=True, side=spec.size) if pixels is not None else None
    explaining.hand_over_drawing(pixels, dataset)
    with seen:
        if drawing is None or drawing.image is None:
            common.draw_a_digit(drawing.reason if drawing is not None else explaining.NOTHING_YET)
            return
        runs = common.answering_runs(dataset)
        predictions = predict([drawing.image], dataset, run_ids=runs, convert_in_background=True)[0]
        if not predictions:
            st.info(f"Every finished {spec.label} run ended at chance level: turn them on above to see what they "
                    "say.", icon=":material/info:")
            return
        image_column, verdict = st.columns([1, 3], vertical_alignment="center")
        image_column.image(common.enlarged(drawing.image, INPUT_SCALE),
                           caption=f"The models' input ({spec.size}×{spec.size})")
        with verdict:
            st.markdown(verdict_text(predictions))
            explaining.link_inside("drawing", "See where each model looks")
        common.prediction_cards(predictions)


st.title("Draw a digit")
greyscale = common.datasets_to_try(channels=1)
if not greyscale:
    common.empty_state("No finished model of greyscale images (MNIST, say) yet. Train one (LeNet-5 takes a minute "
                       "or two on a CPU), then draw a digit here and watch every model read it.")
    st.stop()
chosen = common.choose_dataset(greyscale, key="draw_dataset")
if not get_dataset(chosen).digits:
    st.caption(f"{common.dataset_label(chosen)}'s classes: {', '.join(get_dataset(chosen).classes)}: draw one.")
drawing_board(chosen)
