"""Training curves: several runs' loss and accuracy overlaid, against epochs or wall-clock time; runs that differ
only in their seed drawn as their mean with a band."""

import streamlit as st

from convnets.models import net_name
from convnets.snapshots import FILE
from convnets.store import RunStore
from dashboard import common, figures, live, tables

AGAINST = {"epoch": "epoch", "wall_seconds": "time"}  # history fields to put on the x axis

st.title("Training curves")
dataset = common.dataset_filter()
rows = [s for s in common.summaries() if s.get("epochs_done") and dataset in (None, s.get("dataset"))]
rows.sort(key=lambda s: s.get("finished_at") or 0, reverse=True)  # the newest finished first, unfinished last

if not rows:
    common.empty_state("No run has completed an epoch yet. Train a model to see its loss and accuracy per epoch.")
    st.stop()

by_id = {r["run_id"]: r for r in rows}
wanted = st.query_params.get(common.RUN_PARAM)
default = [wanted] if wanted in by_id else list(by_id)[:3]
# The page's width for the chosen runs, their chips wrapping onto more rows: in a column beside the axis choice
# they stayed on one row, cut and scrolling sideways, and the choice itself was cut on a laptop.
chosen = st.multiselect("Runs", list(by_id), default=default, format_func=lambda i: common.run_label(by_id[i]),
                        wrap=True)
x = st.segmented_control("Against", list(AGAINST), format_func=AGAINST.get, default="epoch", required=True,
                         key="curve_x")
if not chosen:
    st.info("Pick one or more runs above.")
    st.stop()

store = RunStore()
groups: dict[str, list[str]] = {}  # seed group -> the chosen runs in it
for i in chosen:
    groups.setdefault(by_id[i].get("group", i), []).append(i)
averaged = len(groups) < len(chosen) and st.toggle(
    "Average the seeds", value=True, key="curve_seeds",
    help="Runs identical but for their seed as one curve: their mean, with a band of ± one standard deviation")
histories = []
for members in (groups.values() if averaged else [[i] for i in chosen]):
    runs = [store.require(i).history() for i in members]
    if len(members) == 1:
        label = common.run_label(by_id[members[0]])
    else:
        first = by_id[members[0]]
        label = (f"{net_name(first['model'])} · {common.dataset_label(first['dataset'])} · {first['epochs']} ep · "
                 f"mean of {len(members)} seeds")
    if x == "wall_seconds":  # a time means little without the device and precision it was taken on
        label += " · " + " / ".join(sorted({by_id[i].get("device") or "device unknown" for i in members}))
    histories.append((label, runs[0] if len(members) == 1 else tables.mean_history(runs)))
st.plotly_chart(figures.training_curves(histories, x))
st.caption("Solid: test split; dotted: training split (its running mean over the epoch, with augmentation)."
           + (" Bands: ± one standard deviation over the seeds." if averaged else "")
           + (" Times compare like with like only on one device in one precision: each curve names its own."
              if x == "wall_seconds" else ""))

st.subheader("Watch it learn")
watched = [i for i in chosen if (store.require(i).path / FILE).is_file()]
if not watched:
    st.caption("None of the chosen runs kept live snapshots: runs trained from now on keep them (the first layer's "
               "filters, feature maps and answers on eight test images, every few seconds of training).")
else:
    replayed = watched[0] if len(watched) == 1 else st.selectbox(
        "Run to replay", watched, format_func=lambda i: common.run_label(by_id[i]), key="replay_run")
    live.replay(store.require(replayed), key=f"replay-{replayed}")
