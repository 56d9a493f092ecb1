"""The dashboard's entry point: `streamlit run dashboard/app.py` builds the navigation and the shared sidebar."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:  # Streamlit puts dashboard/ on the path, not the repository root
    sys.path.insert(0, ROOT)

import streamlit as st  # noqa: E402

from dashboard import cpython_fixes, study_table  # noqa: E402 - without PyTorch

cpython_fixes.install()  # before any session's thread parses (numpy's .npz headers)

st.set_page_config(page_title="convnets", page_icon="🧠", layout="wide")
# A fresh server: the study's table now, then PyTorch and the models, then the app (a rerun over the study's head)
if not study_table.loaded() and study_table.first_paint("study"):
    st.rerun()

from convnets.datasets import default_home  # noqa: E402
from convnets.device import describe_device, pick_device, precision_summary  # noqa: E402
from convnets.errors import ConvnetsError  # noqa: E402
from dashboard import access, heap, settings  # noqa: E402
from dashboard.common import ALL, PAGES, data_dir, dataset_choices, dataset_label, page_path  # noqa: E402


@st.cache_resource(show_spinner=False)
def device_in_use() -> str:
    """The device a job on 'auto' trains on; it cannot change while the server runs (its precision can, as
    models are timed in both at their first training here)."""
    return describe_device(pick_device())


DEFAULT_PAGE = "study"
sections: dict[str, list] = {}
for name, spec in PAGES.items():
    default = name == DEFAULT_PAGE  # served at the root; its own name is then free for the redirect below
    page = st.Page(page_path(name), title=spec.title, icon=spec.icon, default=default,
                   url_path=f"{name}-page" if default else None)
    sections.setdefault(spec.section, []).append(page)


def open_the_default_page() -> None:
    """/study typed by hand (a handout, a bookmark) opens the study at the root, where Streamlit serves the default
    page, rather than Streamlit's "Page not found"."""
    st.switch_page(page_path(DEFAULT_PAGE), query_params=st.query_params.to_dict())


redirect = st.Page(open_the_default_page, title=PAGES[DEFAULT_PAGE].title, url_path=DEFAULT_PAGE, visibility="hidden")
navigation = st.navigation({**sections, "": [redirect]})


def remember_data_dir() -> None:
    """The data folder outlives the session: a reload starts a new one with an empty session state. On a shared
    dashboard only the trainer changes it, and only to a folder inside the data roots."""
    if not access.data_dir_allowed():
        return
    problem = settings.remember("data_dir", st.session_state["data_dir"])
    if problem:
        st.toast(f"The data folder is not remembered for your next visit ({problem})", icon=":material/warning:")


st.session_state.setdefault("dataset_filter", ALL)
try:
    trainer = access.is_trainer()
except ConvnetsError as e:  # shared mode never guesses at its settings
    st.error(f"The shared mode's settings are malformed: {e}", icon=":material/lock:")
    st.stop()
if trainer:
    st.session_state.setdefault("data_dir", access.start_data_dir())
else:  # a viewer reads the folder the trainer chose
    st.session_state["data_dir"] = access.start_data_dir()
with st.sidebar:
    choices = dataset_choices()
    if st.session_state["dataset_filter"] not in choices:  # a folder's runs all forgotten since
        st.session_state["dataset_filter"] = ALL
    st.segmented_control("Dataset", choices, format_func=dataset_label, key="dataset_filter",
                         required=True, help="Filters the result pages")
    if trainer:
        st.text_input("Data folder", key="data_dir", on_change=remember_data_dir,
                      help="Where the built-in datasets are read from (and downloaded to); given to training jobs. "
                      "A relative path is taken from your home folder, and ~ is your home folder too. Remembered "
                      "for your next visit.")
        if access.REFUSED in st.session_state:
            st.error(st.session_state.pop(access.REFUSED), icon=":material/folder_off:")
    else:
        st.caption(f":material/folder: Data folder: {data_dir()}")
    if data_dir() != st.session_state["data_dir"].strip():
        st.caption(f"= {data_dir()}")
    st.caption(f":material/memory: {device_in_use()}; a new job trains in "
               f"{precision_summary(pick_device(), default_home())}")
    access.sign_in()

try:
    navigation.run()
finally:  # after the page (which may stop or rerun): its answer is not delayed by the one-off collection
    heap.freeze_after_imports()
