"""The study: the reference Keras study's five CIFAR-10 nets, from LeNet to a wide ResNet, its figures beside the
shipped zoo's runs of them, what each net brought, their training curves together, and where to look further."""

import streamlit as st

from convnets import zoo
from convnets.models import STUDY
from convnets.reporting import copy_cost
from convnets.store import RunStore
from dashboard import common, explaining, figures, study

st.title("The study")
rows = zoo.study_rows(RunStore())
dataset = common.dataset_label(rows[0]["dataset"])
st.markdown(f"A study in Keras trained five classic convolutional nets on {dataset}, each a step in how convnets "
            "grew, from LeNet to a wide residual net. This project rebuilt the five in PyTorch and trained them "
            "with pinned recipes, for at most a quarter of the study's epochs; the runs ship with it (the zoo), so "
            "every figure of ours here is there without data, a download or any training.")
st.caption(f"Source: {STUDY}.")

shipped = [r for r in rows if r["zoo"]]
# A static table: it wraps its cells to the page's width, where a data frame of ten columns would scroll
formats = dict.fromkeys(("Study %", "Ours %", "≈ official %"), "{:.2f}") | {
    "Δ points": "{:+.2f}", "Params": lambda n: f"{n / 1e6:.2f} M", "Epochs": "{:.0f}"}
st.table(study.zoo_table(rows).style.format(formats, na_rep="–"), hide_index=True)
copies = sorted({r["zoo"]["data_copy"] for r in shipped})
flipped = [r["title"] for r in shipped if r["zoo"]["tta"]]
cost = max((copy_cost(c) for c in copies), default=0.0)
measured_on = " and ".join(study.on_copy(c, rows[0]["dataset"]) for c in copies) or "–"
st.caption("**Study %**: the study's notebooks on the official test set, at their best epoch (of up to 200). "
           f"**Ours %**: the shipped zoo's runs, final epoch, on {measured_on}"
           + (f"; {' and '.join(flipped)} average each test image with its mirror" if flipped else "")
           + (f". That copy costs about {100 * cost:.1f} points against the official test set: **≈ official** adds "
              "them back, and **Δ points** is that minus the study's figure." if cost else
              ". **Δ points**: ours minus the study's figure.")
           + " Study time: its notebook on its GPU; our time: training alone, on the device beside it.")
if len(shipped) < len(rows):
    missing = ", ".join(r["title"] for r in rows if not r["zoo"])
    common.empty_state(f"Not in the shipped zoo here: {missing}. The Train page reproduces the study in your store.")

st.subheader("What each net brought")
with st.container(horizontal=True, wrap=True):
    for row in rows:
        with st.container(border=True, width=160, height="stretch"):
            st.markdown(f"**{row['title']}**")
            st.caption(row["idea"])
            if row["zoo"]:
                explaining.link_inside("mistake", label="Inside the net", run=row["zoo"]["run_id"])

st.subheader("Training curves")
if shipped:
    histories = [(r["title"], RunStore().require(r["zoo"]["run_id"]).history()) for r in shipped]
    st.plotly_chart(figures.training_curves(histories), key="study_curves")
    st.caption("Test solid, train dotted.")
else:
    st.caption("No run of the study's nets in the zoo to draw.")

st.subheader("Look further")
# The first net against the first with shortcuts: pooling and depth alone against residual learning
lenet, resnet = rows[0], next(r for r in rows if r["family"] == "ResNet")
with st.container(horizontal=True):
    if lenet["zoo"] and resnet["zoo"]:
        common.link("compare", label=f"Compare {lenet['title']} with {resnet['title']}", run_id=lenet["zoo"]["run_id"],
                    **{common.OTHER_RUN_PARAM: resnet["zoo"]["run_id"]})
    if resnet["zoo"]:
        explaining.link_inside("mistake", label=f"Inside {resnet['title']}: its mistakes",
                               run=resnet["zoo"]["run_id"])
    common.link("leaderboard", label="Every run against its paper")
    common.link("train", label="Reproduce the study")
