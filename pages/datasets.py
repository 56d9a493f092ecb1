"""Datasets: what the models learn from. Per dataset, examples of every class, the class counts, each class's mean
image, and which copy of the data is in use (or, without the data, the shipped sample and where the data goes)."""

import numpy as np
import streamlit as st

from convnets.datasets import dataset_names, get_dataset
from convnets.imaging import mosaic
from convnets.overview import POOL_PER_CLASS
from dashboard import common, figures, samples

PER_CLASS = 12
EXAMPLE_SCALE = 2
MEAN_SIDE = 84  # pixels a class's mean image is shown at (about, at least): ten fit in a row
CAPTION_PADDING = 8  # pixels an image's caption leaves beside its text (2 either side), and some to spare
LABEL_SIZE = 16  # pixels: the font size of a class's bold label, before its examples
LABEL_MOST = 240  # pixels: the widest the labels get, leaving the examples most of a laptop's page


def another_draw(dataset: str) -> None:
    st.session_state[f"examples_{dataset}"] = st.session_state.get(f"examples_{dataset}", 0) + 1


def show(dataset: str) -> None:
    view = samples.dataset_overview(dataset, common.data_dir())
    if view.full:
        st.caption(f"Read from {view.where}.")
    else:
        st.info(f"{view.hint} Until it is there, this page shows {view.where}.", icon=":material/folder_off:")
    spec = get_dataset(dataset)
    st.caption(f"{len(spec.classes)} classes, {'greyscale' if spec.channels == 1 else 'RGB'} "
               f"{spec.size}×{spec.size} · {spec.source}")
    if spec.own:
        record = spec.folder
        split = record["split"]
        st.caption(f"{record['layout']}: {split['train']:,} training and {split['test']:,} test images"
                   + (f"; {record['converted']} greyscale images converted to RGB" if record["converted"] else ""))
        if record["skipped"]:
            with st.expander(f"Skipped files ({len(record['skipped'])})"):
                st.dataframe([{"File": f, "Why": why} for f, why in record["skipped"]], hide_index=True)
    if not len(view.pool):
        return

    # The button beside the title at its own width: a fifth of a laptop's page cut its label.
    with st.container(horizontal=True, horizontal_alignment="distribute", vertical_alignment="bottom"):
        st.subheader("Examples of every class")
        st.button("New examples", icon=":material/shuffle:", key=f"new_{dataset}", on_click=another_draw,
                  args=(dataset,))
    examples = view.examples(PER_CLASS, seed=st.session_state.get(f"examples_{dataset}", 0))
    if st.toggle("As a whitened net sees them", key=f"whitened_{dataset}",
                 help="The 'zca' normalisation of the Train page's recipe (the All-CNN paper's whitened data): each "
                 "pixel decorrelated from its neighbours and across colours by a 5×5 filter fit on these images. "
                 "Grey is zero: what is left is edges and colour contrasts, what the first layer then learns from."):
        examples = view.whitened(examples)
    examples = examples / 255
    # A class name is never broken inside a word ("automobi-le" in a tenth of a laptop's page): its label is as
    # wide as the longest name (a folder's very long one ends in an ellipsis), on one line, and each mean image at
    # least as wide as its caption.
    label_width = min(common.text_width(view.classes, LABEL_SIZE, bold=True) + 2, LABEL_MOST)
    for name, row in zip(view.classes, examples):
        with st.container(horizontal=True, vertical_alignment="center", wrap=False):
            st.markdown(f"**{name}**", width=label_width, wrap=False)
            st.image(mosaic(row, PER_CLASS, scale=EXAMPLE_SCALE, gap=2), width="stretch")

    st.subheader("The mean image of each class")
    average = [common.enlarged(np.rint(m).astype(np.uint8), MEAN_SIDE // m.shape[0]) for m in view.means]
    side = max(average[0].shape[1], common.text_width(view.classes) + CAPTION_PADDING)
    st.image(average, caption=view.classes, width=side)
    st.caption("Each class's images averaged, pixel by pixel: " + (
        f"{POOL_PER_CLASS:,} random training images of it (all of them where it has fewer), the pool the examples "
        "above are drawn from." if view.full else "the sample's images."))

    st.subheader("Images per class")
    st.plotly_chart(figures.class_counts(view.counts, view.classes), config=figures.STATIC, key=f"counts_{dataset}")
    st.caption(" · ".join(f"{split}: {sum(n):,} images" for split, n in view.counts.items()))

st.title("Datasets")
st.caption("What the models learn from. The data folder is the sidebar's.")
names = dataset_names()
preferred = common.dataset_filter()
chosen = st.segmented_control("Dataset", names, format_func=common.dataset_label, required=True,
                              default=preferred if preferred in names else names[0], key="datasets_dataset")
show(chosen)
