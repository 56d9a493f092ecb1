"""The study: the reference Keras study's five CIFAR-10 nets, from LeNet to a wide ResNet, its figures beside the
shipped zoo's runs of them, what each net brought, their training curves together, and where to look further."""

import streamlit as st

from convnets import zoo
from convnets.store import RunStore
from dashboard import common, explaining, figures, study_table

rows = zoo.study_rows(RunStore())
study_table.head(rows)
shipped = [r for r in rows if r["zoo"]]
if len(shipped) < len(rows):
    missing = ", ".join(r["title"] for r in rows if not r["zoo"])
    common.empty_state(f"Not in the shipped zoo here: {missing}. The Train page reproduces the study in your store.")

st.subheader("What each net brought")
with st.container(horizontal=True, wrap=True):
    for row in rows:
        # the links at the cards' foot, in line whatever the length of the idea above them
        with st.container(border=True, width=160, height="stretch", vertical_alignment="distribute"):
            with st.container():
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
