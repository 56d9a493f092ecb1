"""The dashboard's entry point: `streamlit run dashboard/app.py` builds the navigation and the shared sidebar."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:  # Streamlit puts dashboard/ on the path, not the repository root
    sys.path.insert(0, ROOT)

import streamlit as st  # noqa: E402

from convnets.data import default_data_dir  # noqa: E402
from convnets.device import describe_training, pick_device  # noqa: E402
from dashboard import settings  # noqa: E402
from dashboard.common import ALL, DATASET_LABELS, PAGES, data_dir, page_path  # noqa: E402


@st.cache_resource(show_spinner=False)
def device_in_use() -> str:
    """The device a job on 'auto' trains on, and in which precision; it cannot change while the server runs."""
    return describe_training(pick_device())


st.set_page_config(page_title="convnets", page_icon="🧠", layout="wide")

sections: dict[str, list] = {}
for name, spec in PAGES.items():
    page = st.Page(page_path(name), title=spec.title, icon=spec.icon, default=name == "leaderboard")
    sections.setdefault(spec.section, []).append(page)
navigation = st.navigation(sections)


def remember_data_dir() -> None:
    """The data folder outlives the session: a reload starts a new one with an empty session state."""
    problem = settings.remember("data_dir", st.session_state["data_dir"])
    if problem:
        st.toast(f"The data folder is not remembered for your next visit ({problem})", icon=":material/warning:")


st.session_state.setdefault("dataset_filter", ALL)
st.session_state.setdefault("data_dir", settings.load().get("data_dir") or str(default_data_dir()))
with st.sidebar:
    st.segmented_control("Dataset", list(DATASET_LABELS), format_func=DATASET_LABELS.get, key="dataset_filter",
                         required=True, help="Filters the result pages")
    st.text_input("Data folder", key="data_dir", on_change=remember_data_dir,
                  help="Where MNIST and CIFAR-10 are read from (and downloaded to); given to training jobs. A "
                  "relative path is taken from your home folder, and ~ is your home folder too. Remembered for "
                  "your next visit.")
    if data_dir() != st.session_state["data_dir"].strip():
        st.caption(f"= {data_dir()}")
    st.caption(f":material/memory: {device_in_use()}")

navigation.run()
