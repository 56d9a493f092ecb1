"""Draw a digit: every finished MNIST model reads the drawing, stroke by stroke."""

from collections import Counter

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from convnets.predict import Prediction, predict, prepare_drawing
from dashboard import common, explaining

CANVAS_SIDE = 280  # ten canvas pixels per MNIST pixel
INPUT_SCALE = 4


def clear() -> None:
    """A canvas under a new key starts empty."""
    st.session_state["canvas_generation"] = st.session_state.get("canvas_generation", 0) + 1


def verdict_text(predictions: list[Prediction]) -> str:
    """The answer most models give, and how far they agree on it."""
    (answer, count), total = Counter(p.class_name for p in predictions).most_common(1)[0], len(predictions)
    if count == total:
        return f"### It's a {answer}\n{'The model says so.' if total == 1 else f'All {total} models agree.'}"
    if 2 * count > total:
        return f"### It's a {answer}\n{count} of {total} models say so."
    return f"### The models disagree\nThe most votes, {count} of {total}, go to {answer}."


@st.fragment
def drawing_board() -> None:
    """A fragment, so that each stroke reruns only the canvas and the predictions, not the whole app."""
    pad, seen = st.columns([1, 2], gap="large")
    with pad:
        st.caption("One digit, large:")  # also the room for the canvas's toolbar, which floats above it
        canvas = st_canvas(stroke_width=20, stroke_color="#ffffff", background_color="#000000", width=CANVAS_SIDE,
                           height=CANVAS_SIDE, drawing_mode="freedraw", update_streamlit=True,
                           return_image_data=True, key=f"canvas-{st.session_state.get('canvas_generation', 0)}")
        st.button("Clear", icon=":material/ink_eraser:", on_click=clear)

    pixels = canvas.image_data
    drawing = prepare_drawing(pixels) if pixels is not None else None
    explaining.hand_over_drawing(pixels)
    with seen:
        if drawing is None or drawing.image is None:
            common.draw_a_digit(drawing.reason if drawing is not None else explaining.NOTHING_YET)
            return
        predictions = predict([drawing.image], "mnist")[0]
        image_column, verdict = st.columns([1, 3], vertical_alignment="center")
        image_column.image(common.enlarged(drawing.image, INPUT_SCALE), caption="The models' input (28×28)")
        with verdict:
            st.markdown(verdict_text(predictions))
            explaining.link_inside("drawing", "See where each model looks")
        common.prediction_cards(predictions)


st.title("Draw a digit")
if not common.finished("mnist"):
    common.empty_state("No finished MNIST model yet. Train one (LeNet-5 takes a minute or two on a CPU), then "
                       "draw a digit here and watch every model read it.")
    st.stop()
drawing_board()
