"""Leaderboard: every finished run beside the paper's and the study's notebooks' accuracy."""

import streamlit as st

from convnets.reporting import JPEG_COST
from convnets.zoo import SIZE_BUDGET, too_big, train_command, untrained
from dashboard import common, downloads, figures, tables

CARD_WIDTH = 260  # pixels: a best card's title, figure and caption ("… · ≈ 94.58% official") uncut

st.title("Leaderboard")
dataset = common.dataset_filter()
rows = [s for s in common.summaries() if dataset in (None, s.get("dataset"))]
board = tables.board_view(tables.leaderboard(rows))
if dataset is not None and not board.empty:  # one dataset: no paper or study columns where it has no such figures
    board = tables.without_empty_columns(board, tables.PUBLISHED)
stragglers = tables.unfinished(rows)
cost = f"{100 * JPEG_COST:.1f}"

chance = int(board[tables.AT_CHANCE].sum())
counts = [common.plural(len(board), "finished run")]
counts += [f"{chance} at chance level"] if chance else []
counts += [f"{len(stragglers)} not finished"] if len(stragglers) else []
st.caption(" · ".join(counts))

if board.empty:
    common.empty_state("No finished runs yet. Train a model and it shows up here, beside the accuracy its paper "
                       "reports.")
else:
    counted = chance and st.toggle(f"Count the runs at chance level ({chance})", key="count_chance",
                                   help="Runs that ended no better than a guess learned nothing: they are marked in "
                                   "the table and left out of the best scores unless you count them")
    ranked = board if counted else board[~board[tables.AT_CHANCE]]
    best = ranked.loc[ranked.groupby("Dataset")[tables.OFFICIAL].idxmax()]
    # Cards of one width side by side, wrapping on a narrow screen, rather than a quarter of the page each, which
    # cuts a card's title and figure on a laptop.
    with st.container(horizontal=True, wrap=True):
        for _, row in best.iterrows():
            with st.container(width=CARD_WIDTH):
                st.metric(f"Best on {common.dataset_label(row['Dataset'])}", f"{row['Test acc. %']:.2f}%",
                          border=True, help=row["Run"])
                data = f"JPEG copy · ≈ {row[tables.OFFICIAL]:.2f}% official" if row["Data"] == "JPEG copy" else (
                    "official data" if row["Data"] == "official" else row["Data"])
                st.caption(f"**{row[tables.NET]}** · {data}")

    more = st.pills("More columns", list(tables.BOARD_MORE), selection_mode="multi", key="board_more",
                    help="The table shows each run beside the figure it answers; these add the rest, a group at a "
                    "time (the table then scrolls sideways on a narrow screen, the net's name staying in view)")
    number = st.column_config.NumberColumn
    st.dataframe(board, hide_index=True, placeholder="–", height=common.table_height(len(board)), width="content",
                 column_order=tables.board_columns(board, more), column_config={
        tables.NET: st.column_config.TextColumn(pinned=True, width=common.column_width(board[tables.NET], "Net"),
                                                help="The study's name for its nets, the model's for the others; "
                                                "two runs of one net are told apart by their epochs, seed, the zoo "
                                                "or their run id"),
        "Dataset": st.column_config.TextColumn(width=common.column_width(board["Dataset"], "Dataset")),
        "Test acc. %": number("Test %", format="%.2f", help="Test accuracy, measured on the run's own test data"),
        tables.OFFICIAL: number("≈ official", format="%.2f", help=f"Test accuracy in official-data terms, in %: "
                                f"JPEG-copy runs + {cost} points (what the copy costs); runs on the official data "
                                "as they are"),
        tables.THEIRS: number("Paper/study", format="%.2f", help="The figure the net answers, in %: the study's "
                              "Keras notebooks' for the study's nets (The study page), the paper's for the others"),
        tables.GAP: number(format="%+.2f", help="≈ official minus the paper's or the study's figure, in points"),
        "Data": st.column_config.TextColumn(width="small"),
        "Params": number(format="compact"),
        tables.AT_CHANCE: st.column_config.CheckboxColumn(help="No better than a guess (under 1 / classes + 2 "
                                                          "points): the run learned nothing"),
        "Paper %": number(format="%.2f"),
        "Study %": number(format="%.2f", help="The study's Keras notebooks (The study page)"),
        "Δ paper": number(format="%+.2f", help="≈ official minus paper, in points"),
        "Δ study": number(format="%+.2f", help="≈ official minus the study's figure, in points"),
        tables.ECE: number(format="%.2f", help="Expected calibration error (15 bins): how far confidence is from "
                           "accuracy, on average; 0 is honest"),
        tables.CORRUPTED: number(format="%.2f", help="Test accuracy under the corruptions, mean over corruptions and "
                                 "severities (Robustness page)"),
        tables.FLIPS: st.column_config.CheckboxColumn(help="Test accuracy measured on each image and its mirror, "
                                                      "averaged (test-time augmentation): about half a point more "
                                                      "than on the images alone"),
        tables.RECIPE: st.column_config.TextColumn(help="Where the run's recipe departs from its model's registered "
                                                   "one (epochs aside), as `python -m convnets train` spells the "
                                                   "options; –: as registered"),
        "Best %": number(format="%.2f", help="Best test accuracy over the epochs"),
        "Train s": number(format="%.1f"),
        "img/s": number(format="%,.0f"),
        "Zoo": st.column_config.CheckboxColumn(help="Shipped with the project (zoo/), read-only"),
        "Run": st.column_config.TextColumn(width=common.column_width(board["Run"], "Run")),
    })
    if (order := tables.board_order(board)) is not None:
        st.caption(order)
    if (board["Data"] == "JPEG copy").any():
        st.caption(f"CIFAR-10 runs on the **JPEG copy** score about {cost} points lower than on the official "
                   "batches; **≈ official** adds that back, and the differences (Δ, in points) to the "
                   "published figures use it.")
    missing = untrained(zip(board["Model"], board["Dataset"]), dataset)
    shippable = [e for e in missing if not too_big(e)]
    if shippable:
        names = ", ".join(e.model for e in shippable)
        st.caption(f"Not trained yet, neither in the shipped zoo nor in your store: {names}. "
                   f"`python -m convnets zoo --only {shippable[0].model} --data-dir DIR` trains one with the zoo's "
                   "pinned recipe, in a GPU's minutes or a CPU's hours (docs/results.md).")
    for entry in missing:
        if entry not in shippable:
            st.caption(f"{entry.model} ({entry.dataset}) is too big for the shipped zoo's {SIZE_BUDGET / 2**20:.0f} "
                       f"MiB and not in your store: `{train_command(entry)}` trains it there with the zoo's recipe.")
    with st.container(horizontal=True):
        st.download_button("Download CSV", board.drop(columns=[tables.THEIRS, tables.GAP], errors="ignore")
                           .to_csv(index=False), file_name="leaderboard.csv", mime="text/csv",
                           icon=":material/download:")
        downloads.report_button(dataset)

    published = tables.published_points(board)
    by_size, by_time = st.tabs(["Accuracy vs parameters", "Accuracy vs training time"])
    by_size.plotly_chart(figures.accuracy_scatter(board, "Params", True, "parameters (log scale)",
                                                  published=published))
    by_size.caption("Filled: our runs, by kind of net. Open: the paper's figure (circle) and the study's "
                    "(diamond), both on the official data and the study's picked at its best epoch.")
    by_time.plotly_chart(figures.accuracy_scatter(board, "Train s", True, "training time (s, log scale)",
                                                  published=published, by_device=True))
    by_time.caption("Times compare like with like only on one device in one precision (bf16 trains 2-3× as fast "
                    "as fp32 on a CPU with AMX), so each gets a row of its own; the study's Keras notebooks on their "
                    "GPU have theirs, as open diamonds. Shapes are the kinds of net, as beside.")

    st.subheader("Seeds")
    groups = tables.seed_groups(rows)
    if groups.empty:
        st.caption("No recipe has finished with more than one seed yet. The Train page queues several seeds of a "
                   "recipe: how much a result moves with the seed tells whether a difference between models is real.")
    else:
        st.caption("Runs identical but for their seed, as one row: the mean test accuracy, its standard deviation "
                   "over the seeds (± std) and the number of seeds (n).")
        st.dataframe(groups, hide_index=True, placeholder="–", column_config={
            "Test acc. %": st.column_config.NumberColumn(format="%.2f", help="Mean over the seeds"),
            "± std": st.column_config.NumberColumn(format="%.2f", help="Sample standard deviation over the seeds, in "
                                                   "points"),
            tables.ECE: st.column_config.NumberColumn(format="%.2f", help="Mean over the seeds"),
            tables.CORRUPTED: st.column_config.NumberColumn(format="%.2f", help="Mean over the seeds"),
            "LR": st.column_config.NumberColumn(format="%g"),
            "Weight decay": st.column_config.NumberColumn(format="%g"),
            tables.OTHER_RECIPE: st.column_config.TextColumn(help="The other fields where the group's recipe departs "
                                                             "from its model's registered recipe, as the options of "
                                                             "`python -m convnets train` spell them; –: nowhere"),
        })

if not stragglers.empty:
    st.subheader("Not finished")
    st.table(stragglers, hide_index=True)  # a static table wraps an error instead of cutting it at the column
