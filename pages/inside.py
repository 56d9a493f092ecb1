"""Inside the net: where every model looks for its answer on one input, side by side, one model layer by layer, and
one model's answer when the input is attacked."""

import numpy as np
import streamlit as st

from convnets.attack import METHODS as ATTACKS
from convnets.attack import perturbation_picture
from convnets.datasets import get_dataset
from convnets.explain import METHODS, Explainer, Layer, attacked, explain, feature_maps, first_filters, layers
from convnets.imaging import heat_overlay, mosaic
from dashboard import common, explaining, tables

INPUT_SCALE = 6
HEAT_SCALE = 6
OWN_ANSWER = -1  # in the class choice: each model's own answer
MAX_MAPS = 64  # a 512-channel layer would otherwise be a wall of tiles
TILE = 48  # on-screen pixels of a feature map or a filter, whatever its size
GRID_WIDTH = 440  # pixels: the feature maps and filters, beside the layer table on a wide page
NUMBERS = ("Params", "FLOPs")  # the layer table's columns of counts
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
    frame = tables.layer_table(stages)
    # Each column as wide as its longest entry, the table as wide as its columns: beside the pictures where the
    # page holds both, above them where it does not (a share of a narrow page cut the FLOPs and Params columns).
    widths = {c: common.column_width(frame[c].map("{:,}".format) if c in NUMBERS else frame[c], c)
              for c in frame.columns}
    with st.container(horizontal=True, wrap=True, gap="large"):
        with st.container(width=sum(widths.values()) + 2):
            st.dataframe(frame, hide_index=True, column_config={
                c: st.column_config.NumberColumn(format="localized", width=w) if c in NUMBERS
                else st.column_config.TextColumn(width=w) for c, w in widths.items()})
            flops = sum(s.flops for s in stages)
            st.caption(f"For one {image.shape[0]}×{image.shape[1]} input: {flops:,} FLOPs (a multiply-add counts "
                       "two, as torch.utils.flop_counter counts), the normalisation in front left out.")
        with st.container(width=GRID_WIDTH):
            _maps_and_filters(model, image, stages)


def _maps_and_filters(model: Explainer, image: np.ndarray, stages: list[Layer]) -> None:
    """A chosen layer's feature maps, the most active first, and the first layer's filters."""
    spatial = [s for s in stages if s.has_maps]
    paths = [s.path for s in spatial]
    kinds = {s.path: s.kind for s in spatial}
    chosen = st.selectbox("Feature maps of layer", paths, key=f"inside_layer_{model.run_id}",
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


ATTACK_SIZES = (1, 2, 4, 8, 16, 32)  # grey levels


@st.fragment
def attack_this_image(models: list[Explainer], image: np.ndarray) -> None:
    """One model's answer and Grad-CAM on the input and on the input attacked to change it: a fragment, so that
    changing the attack reruns this part alone."""
    st.subheader("Attack this image")
    if not st.toggle("Attack this image", key="inside_attack", help="Change every pixel by at most ε grey levels, "
                     "in the direction that most lowers one model's confidence in its answer"):
        return
    by_id = {m.run_id: m for m in models}
    model, how, size = st.columns([2, 1, 2], vertical_alignment="bottom")
    run_id = model.selectbox("Model", list(by_id), format_func=lambda i: by_id[i].name, key="inside_attack_model")
    method = how.segmented_control("Attack", list(ATTACKS), format_func=ATTACKS.get, default="fgsm", required=True,
                                   key="inside_attack_method")
    eps = size.select_slider("ε, in grey levels (/255)", ATTACK_SIZES, value=8, key="inside_attack_eps")
    result = attacked(by_id[run_id], image, method, eps)
    change, gain = perturbation_picture(image, result.image, eps)
    before, after = result.before.prediction, result.after.prediction
    pictures = [(heat_overlay(image, result.before.heatmap, HEAT_SCALE),
                 f"as it is: {before.class_name} ({before.probability:.0%}) · Grad-CAM"),
                (common.enlarged(result.image, INPUT_SCALE), f"attacked by {ATTACKS[method]}, ε = {eps}/255"),
                (common.enlarged(change, INPUT_SCALE),
                 f"the change, amplified {gain:.0f}×: grey is none, white {eps} levels up, black {eps} down"),
                (heat_overlay(result.image, result.after.heatmap, HEAT_SCALE),
                 f"attacked: {after.class_name} ({after.probability:.0%}) · Grad-CAM")]
    with st.container(key="attacked"):
        for column, (picture, caption) in zip(st.columns(len(pictures)), pictures):
            column.image(picture, caption=caption, width=picture.shape[1])  # all four at the same size
    if result.fooled:
        st.warning(f"{before.name} now answers {after.class_name} ({after.probability:.0%}) instead of "
                   f"{before.class_name}: no pixel moved by more than {eps} of 255 grey levels.",
                   icon=":material/warning:")
    else:
        st.success(f"{before.name} still answers {before.class_name} ({after.probability:.0%}, was "
                   f"{before.probability:.0%}); try a larger ε or PGD.", icon=":material/check:")


st.title("Inside the net")
st.caption("Where each model looks for its answer, and what one model's layers make of the input.")
subject = explaining.pick_subject()
if subject.image is None:
    explaining.say_why_not(subject)
    st.stop()
models = explaining.explainers(subject.dataset)
if not models:
    common.empty_state(f"No finished {common.dataset_label(subject.dataset)} model yet. Train one, then look inside "
                       "it here.")
    st.stop()

classes = list(get_dataset(subject.dataset).classes)
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
# Each heat map at its own size, as many to a row as the page holds: a fifth of a laptop's page broke the run names
# under them inside a word ("ref_lenet_mnis-t").
with st.container(key="heatmaps", horizontal=True, wrap=True):
    for x in explained:
        p = x.prediction
        heat = heat_overlay(subject.image, x.heatmap, HEAT_SCALE)
        caption = f"{common.unbroken(p.name)}: {p.class_name} ({p.probability:.0%}) · evidence for {x.target_name}"
        st.image(heat, width=heat.shape[1], caption=caption)

st.subheader("Every model's answer")  # as the Draw page shows digits, and the Photo page photos
common.prediction_cards([x.prediction for x in explained], top=None if get_dataset(subject.dataset).digits else 3)
layer_by_layer(models, subject.image)
attack_this_image(models, subject.image)
