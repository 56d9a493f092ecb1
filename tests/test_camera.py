"""The webcam on Classify a photo and Inside the net, under AppTest with a fake camera photo: a wide JPEG whose
centre square is what the models must see, at their side."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from ui_helpers import built_store, copy_runs  # noqa: F401 - built_store is a fixture

from convnets.imaging import prepare_upload
from dashboard import explaining

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
pytestmark = pytest.mark.usefixtures("one_thread")


def camera_photo() -> bytes:
    """A 640×480 frame, as a webcam takes: grey at the sides, its centre square red."""
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[:, 80:560] = (220, 30, 30)
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def store(built_store, home):  # noqa: F811 - the fixture imported above
    copy_runs(built_store, home)


def opened(page: str, **state) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(f"../pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def captions(at: AppTest) -> list[str]:
    return [c for image in at.image for c in image.captions]


def take(at: AppTest, toggle_key: str, camera_key: str) -> AppTest:
    """Turn the camera on (no camera widget, so no browser prompt, before that) and take the photo."""
    assert not at.camera_input
    at.toggle(key=toggle_key).set_value(True).run()
    at.camera_input(key=camera_key).set_value(("photo.jpg", camera_photo(), "image/jpeg")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_photo_page_classifies_the_centre_square_of_a_camera_photo(store):
    at = take(opened("photo"), "camera-0_on", "camera-0")
    image, caption, dataset = at.session_state[explaining.PHOTO_KEY]  # what the page showed and the models read
    assert caption == explaining.CAMERA_CAPTION and dataset == "cifar10"
    assert image.shape == (32, 32, 3) and np.array_equal(image, prepare_upload(camera_photo(), 32))
    inner = image[1:-1, 1:-1]  # the outermost pixels may blur with the grey beyond the square
    assert inner[..., 0].min() > 180 and inner[..., 1].max() < 70  # all red: the grey sides were cropped away
    assert f"{explaining.CAMERA_CAPTION} · what the models see (32×32)" in captions(at)
    assert [m.value for m in at.metric] and len(at.progress) == 3  # each CIFAR-10 model's card, its top three


def test_inside_the_net_looks_into_a_camera_photo(store):
    at = opened("inside", inside_source="photo")
    at = take(at, "inside_camera_on", "inside_camera")
    assert f"{explaining.CAMERA_CAPTION} · what the models see (32×32)" in captions(at)
