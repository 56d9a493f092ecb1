"""Inside the net: where every model looks for its answer on one input, side by side, and one model layer by layer."""

import numpy as np
import streamlit as st

from convnets.data import CLASSES
from convnets.explain import METHODS, Explainer, explain, feature_maps, first_filters, layers
from convnets.imaging import heat_overlay, mosaic
from dashboard import common, explaining, tables

INPUT_SCALE = 6
HEAT_SCALE = 6
PER_ROW = 5
OWN_ANSWER = -1  # in the class choice: each model's own answer
MAX_MAPS = 64  # a 512-channel layer would otherwise be a wall of tiles
TILE = 48  # on-screen pixels of a feature map or a filter, whatever its size
GRID_WIDTH = 500  # pixels: what the column beside the layer table holds
METHOD_HELP = {
    "gradcam": "Grad-CAM (Selvaraju et al. 2017) on each model's last convolutional maps: the places whose features "
               "raise the class's score. As coarse as those maps (a 4×4 map makes 4×4 blobs), upsampled to the input.",
    "ig": "Integrated gradients (Sundararajan et al. 2017) from a black image: how much each pixel counts for or "
          "against the class. Pixel-sharp; black pixels count for nothing by construction.",
}


def tiles(pictures: np.ndarray) -> np.ndarray:
    """Small pictures enlarged to about TILE pixels each, in as many columns as GRID_WIDTH holds."""
    scale = max(1, TILE // pictures.shape[1])
    return mosaic(pictures, max(1, GRID_WIDTH // (pictures.shape[2] * scale + 1)), scale=scale)


@st.fragment
def layer_by_layer(models: list[Explainer], image: np.ndarray) -> None:
    """One model's stages, a layer's feature maps and the first filters: a fragment, so that picking a layer
    reruns this part alone, not every model's heat map."""
    st.subheader("Layer by layer")
    by_id = {m.run_id: m for m in models}
    run_id = st.selectbox("Model", list(by_id), format_func=lambda i: by_id[i].name, key="inside_model")
    model = by_id[run_id]
    stages = layers(model, image)
    table, pictures = st.columns([2, 3], gap="large")
    table.dataframe(tables.layer_table(stages), hide_index=True,
                    column_config={"Params": st.column_config.NumberColumn(format="localized"),
                                   "FLOPs": st.column_config.NumberColumn(format="localized")})
    flops = sum(s.flops for s in stages)
    table.caption(f"For one {image.shape[0]}×{image.shape[1]} input: {flops:,} FLOPs (a multiply-add counts two, as "
                  "torch.utils.flop_counter counts), the normalisation in front left out.")
    with pictures:
        spatial = [s for s in stages if s.has_maps]
        paths = [s.path for s in spatial]
        kinds = {s.path: s.kind for s in spatial}
        chosen = st.selectbox("Feature maps of layer", paths, key=f"inside_layer_{run_id}",
                              index=paths.index(model.cam_layer) if model.cam_layer in paths else len(paths) - 1,
                              format_func=lambda path: f"{path} · {kinds[path]}")
        maps = feature_maps(model, image, chosen)
        shown = maps.scaled()[:MAX_MAPS]
        grid = tiles(shown)
        st.image(grid, width=grid.shape[1],
                 caption=f"{len(shown)} of the layer's {len(maps.maps)} maps ({shown.shape[1]}×{shown.shape[2]}), the "
                         "most active first; one grey scale for the whole layer, white its highest value")
        filters = first_filters(model)
        grid = tiles(filters)
        st.image(grid, width=grid.shape[1],
                 caption=f"The first layer's {len(filters)} filters ({filters.shape[1]}×{filters.shape[2]}): grey is a "
                         "zero weight, bright what a filter wants light, dark what it wants dark")


st.title("Inside the net")
st.caption("Where each model looks for its answer, and what one model's layers make of the input.")
subject = explaining.pick_subject()
if subject.image is None:
    explaining.say_why_not(subject)
    st.stop()
models = explaining.explainers(subject.dataset)
if not models:
    common.empty_state(f"No finished {common.DATASET_LABELS[subject.dataset]} model yet. Train one, then look inside "
                       "it here.")
    st.stop()

classes = CLASSES[subject.dataset]
side = subject.image.shape[0]
picture, controls = st.columns([1, 3], gap="large")
picture.image(common.enlarged(subject.image, INPUT_SCALE), caption=f"{subject.caption} · what the models see "
              f"({side}×{side})")
with controls:
    method = st.segmented_control("Attribution", list(METHODS), format_func=METHODS.get, default="gradcam",
                                  required=True, key="inside_method")
    picked = st.selectbox("Evidence for", [OWN_ANSWER, *range(len(classes))], key=f"inside_target_{subject.dataset}",
                          format_func=lambda c: f"{classes[c]} (why not?)" if c >= 0 else "each model's own answer")
    st.caption(METHOD_HELP[method] + " Red: the most evidence; blue: little.")
explained = explain(models, [subject.image], method, None if picked == OWN_ANSWER else picked)[0]

st.subheader("Where each model looks")
with st.container(key="heatmaps"):
    for start in range(0, len(explained), PER_ROW):
        for column, x in zip(st.columns(PER_ROW), explained[start : start + PER_ROW]):
            p = x.prediction
            column.image(heat_overlay(subject.image, x.heatmap, HEAT_SCALE),
                         caption=f"{p.name}: {p.class_name} ({p.probability:.0%}) · evidence for {x.target_name}")

st.subheader("Every model's answer")  # as the Draw page shows digits, and the Photo page photos
common.prediction_cards([x.prediction for x in explained], top=None if subject.dataset == "mnist" else 3)
layer_by_layer(models, subject.image)
