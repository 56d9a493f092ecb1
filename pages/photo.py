"""Classify a photo: every finished CIFAR-10 model's top three classes for an upload or a test image."""

import numpy as np
import streamlit as st

from convnets.data import CLASSES
from convnets.errors import ConvnetsError
from convnets.imaging import MAX_PIXELS
from convnets.predict import predict, prepare_upload
from dashboard import common, explaining, samples

INPUT_SCALE = 8
FORMATS = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]


def choose_sample() -> None:
    """Replace the upload with a random CIFAR-10 image (the uploader is reset by giving it a new key)."""
    st.session_state["photo_sample"] = samples.random_test_image("cifar10", common.data_dir(),
                                                                  common.finished("cifar10"))
    st.session_state["uploader_generation"] = st.session_state.get("uploader_generation", 0) + 1


def forget_sample() -> None:
    st.session_state.pop("photo_sample", None)


st.title("Classify a photo")
if not common.finished("cifar10"):
    common.empty_state("No finished CIFAR-10 model yet. Train one, then upload a photo here and see what every "
                       "model takes it for.")
    st.stop()

st.caption("CIFAR-10 models know ten classes: " + ", ".join(CLASSES["cifar10"]) + ".")
limits = (f"Up to {st.get_option('server.maxUploadSize')} MB and {MAX_PIXELS / 1e6:g} megapixels: "
          f"{', '.join(f.upper() for f in FORMATS)}")
upload_column, sample_column = st.columns([3, 1], vertical_alignment="bottom")
upload = upload_column.file_uploader("Upload an image", type=FORMATS, on_change=forget_sample,
                                     key=f"upload-{st.session_state.get('uploader_generation', 0)}")
sample_column.button("Random CIFAR-10 test image", icon=":material/shuffle:", on_click=choose_sample,
                     help=samples.SOURCE_HELP)
st.caption(limits)  # in words: over the size limit, the uploader itself shows only a red chip

image: np.ndarray | None = None
if upload is not None:
    try:
        image, caption = prepare_upload(upload.getvalue()), upload.name
    except ConvnetsError as e:
        st.error(str(e), icon=":material/broken_image:")
        st.stop()
elif st.session_state.get("photo_sample") is not None:
    image, caption = st.session_state["photo_sample"]
elif "photo_sample" in st.session_state:
    st.warning(f"No CIFAR-10 test images at hand: the data is not in {common.data_dir()} and the runs keep no "
               "mistakes. Upload a photo instead.")
    st.stop()

if image is None:
    st.info("Upload a photo, or pick a random CIFAR-10 test image.", icon=":material/photo_camera:")
    st.stop()

explaining.hand_over_photo(image, caption)
image_column, cards = st.columns([1, 4], gap="medium")
with image_column:
    st.image(common.enlarged(image, INPUT_SCALE), caption=f"{caption} · what the models see (32×32)")
    explaining.link_inside("photo", "See where each model looks")
with cards:
    predictions = predict([image], "cifar10", run_ids=common.answering_runs("cifar10"))[0]
    if predictions:
        common.prediction_cards(predictions, top=3)
    else:
        st.info("Every finished CIFAR-10 run ended at chance level: turn them on above to see what they say.",
                icon=":material/info:")
