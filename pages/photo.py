"""Classify a photo: every finished model of a colour dataset (CIFAR-10, or any other) gives its top three classes
for an upload or a test image."""

import numpy as np
import streamlit as st

from convnets.datasets import get_dataset
from convnets.errors import ConvnetsError
from convnets.imaging import MAX_PIXELS, UPLOAD_NAMES, upload_extensions
from convnets.predict import predict, prepare_upload
from dashboard import common, explaining, samples

INPUT_SCALE = 8


def choose_sample(dataset: str) -> None:
    """Replace the upload with a random test image (the uploader is reset by giving it a new key)."""
    st.session_state["photo_sample"] = samples.random_test_image(dataset, common.data_dir(), common.finished(dataset))
    st.session_state["uploader_generation"] = st.session_state.get("uploader_generation", 0) + 1


def forget_sample() -> None:
    st.session_state.pop("photo_sample", None)


@st.fragment
def photo_and_answers(dataset: str) -> None:
    """A fragment, so that an upload (or a test image, or the camera) reruns only the input and the answers, not
    the sidebar and the whole app: on a server shared by a class every click is paid for."""
    spec = get_dataset(dataset)
    limits = (f"Up to {st.get_option('server.maxUploadSize')} MB and {MAX_PIXELS / 1e6:g} megapixels: "
              f"{UPLOAD_NAMES}")
    upload = st.file_uploader("Upload an image", type=upload_extensions(), on_change=forget_sample,
                              key=f"upload-{st.session_state.get('uploader_generation', 0)}")
    st.caption(limits)  # in words: over the size limit, the uploader itself shows only a red chip
    # Under the uploader, not beside it: beside it a 1000-px window cut its label to "Random C…".
    st.button(f"Random {spec.label} test image", icon=":material/shuffle:", on_click=choose_sample,
              args=(dataset,), help=samples.SOURCE_HELP)
    taken = explaining.camera_photo(f"camera-{st.session_state.get('uploader_generation', 0)}",
                                    on_change=forget_sample)

    image: np.ndarray | None = None
    if taken is not None or upload is not None:
        blob, caption = (taken, explaining.CAMERA_CAPTION) if taken is not None else (upload.getvalue(), upload.name)
        try:
            image = prepare_upload(blob, spec.size)  # the centre square at the models' side
        except ConvnetsError as e:
            st.error(str(e), icon=":material/broken_image:")
            return
    elif st.session_state.get("photo_sample") is not None:
        image, caption = st.session_state["photo_sample"]
    elif "photo_sample" in st.session_state:
        st.warning(f"No {spec.label} test images at hand: the data is not in {common.data_dir()} and the runs keep "
                   "no mistakes. Upload a photo instead.")
        return

    if image is None:
        st.info(f"Upload a photo, take one with the camera, or pick a random {spec.label} test image.",
                icon=":material/photo_camera:")
        return

    explaining.hand_over_photo(image, caption, dataset)
    image_column, cards = st.columns([1, 4], gap="medium")
    with image_column:
        st.image(common.enlarged(image, INPUT_SCALE),
                 caption=f"{caption} · what the models see ({spec.size}×{spec.size})")
    with cards:
        predictions = predict([image], dataset, run_ids=common.answering_runs(dataset),
                              convert_in_background=True)[0]
        if predictions:
            explaining.link_inside("photo", "See where each model looks")  # here, whole: the image's column is narrow
            common.prediction_cards(predictions, top=3)
        else:
            st.info(f"Every finished {spec.label} run ended at chance level: turn them on above to see what they "
                    "say.", icon=":material/info:")


st.title("Classify a photo")
colour = common.datasets_to_try(channels=3)
if not colour:
    common.empty_state("No finished model of colour images (CIFAR-10, say) yet. Train one, then upload a photo here "
                       "and see what every model takes it for.")
    st.stop()
dataset = common.choose_dataset(colour, key="photo_dataset")
if st.session_state.get("photo_sample_dataset") != dataset:  # a test image of another dataset is not an input here
    st.session_state["photo_sample_dataset"] = dataset
    forget_sample()
spec = get_dataset(dataset)
named = ", ".join(spec.classes[:20]) + (f" and {len(spec.classes) - 20} more" if len(spec.classes) > 20 else "")
st.caption(f"{spec.label} models know {len(spec.classes)} classes: {named}.")
photo_and_answers(dataset)
