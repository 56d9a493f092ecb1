"""Datasets: what the models learn from. Per dataset, examples of every class, the class counts, each class's mean
image, and which copy of the data is in use (or, without the data, the shipped sample and where the data goes)."""

import numpy as np
import streamlit as st

from convnets.datasets import dataset_names, get_dataset
from convnets.imaging import mosaic
from dashboard import common, figures, samples

PER_CLASS = 12
EXAMPLE_SCALE = 2
MEAN_SIDE = 84  # pixels a class's mean image is shown at (about): ten fit in a row


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

    title, button = st.columns([4, 1], vertical_alignment="bottom")
    title.subheader("Examples of every class")
    button.button("New examples", icon=":material/shuffle:", key=f"new_{dataset}", on_click=another_draw,
                  args=(dataset,))
    examples = view.examples(PER_CLASS, seed=st.session_state.get(f"examples_{dataset}", 0)) / 255
    for name, row in zip(view.classes, examples):
        label, images = st.columns([1, 9], vertical_alignment="center")
        label.markdown(f"**{name}**")
        images.image(mosaic(row, PER_CLASS, scale=EXAMPLE_SCALE, gap=2))

    st.subheader("The mean image of each class")
    average = [common.enlarged(np.rint(m).astype(np.uint8), MEAN_SIDE // m.shape[0]) for m in view.means]
    st.image(average, caption=view.classes, width=average[0].shape[1])
    st.caption("Every image of the class averaged, pixel by pixel, over " + (
        "the training split." if view.full else "the sample's images."))

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
