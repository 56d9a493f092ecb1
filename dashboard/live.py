"""A training run's live snapshots (convnets.snapshots), as the Train page shows the newest one of a running job and
the Training curves page replays them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from convnets.imaging import kernel_tiles, mosaic
from convnets.snapshots import FILE, Snapshots, load_file
from convnets.store import Run
from dashboard import common

IMAGE_SCALE = 3


@st.cache_data(show_spinner=False, max_entries=16)
def _read(path: str, changed: int) -> Snapshots | None:
    """Read again only when the file changed (the trainer rewrites it every few seconds)."""
    return load_file(Path(path))


def snapshots_of(run: Run) -> Snapshots | None:
    path = run.path / FILE
    try:
        return _read(str(path), path.stat().st_mtime_ns)
    except OSError:
        return None


def show(shots: Snapshots, i: int) -> None:
    """Snapshot ``i``: the moment, the eight watched test images with the net's answers, the first layer's filters,
    both layers' most active feature maps, and the accuracy per class on the probe."""
    classes = shots.classes
    st.caption(f"Step {shots.step[i]:,} · epoch {shots.epoch[i]} · {common.duration(float(shots.seconds[i]))} of "
               f"training · learning rate {shots.lr[i]:.3g} · loss {shots.loss[i]:.3f} · training accuracy "
               f"{shots.accuracy[i]:.1%}")
    answers = shots.probabilities[i].astype(np.float32)
    captions = [f"{classes[int(p.argmax())]} {p.max():.0%} {'✓' if int(p.argmax()) == int(label) else '✗'}"
                for p, label in zip(answers, shots.labels)]
    shown = [common.enlarged(image.transpose(1, 2, 0), IMAGE_SCALE) for image in shots.images]
    st.image(shown, caption=captions, width=shown[0].shape[1])
    left, right = st.columns([1, 2])
    with left:
        filters = shots.filters[i]
        left.image(mosaic(kernel_tiles(filters), columns=8, scale=max(3, 48 // filters.shape[-1]), gap=2),
                   caption=f"The first layer's {len(filters)} filters")
        per_class = pd.DataFrame({"class": classes, "accuracy": shots.probe_accuracy[i].astype(float)})
        left.bar_chart(per_class, x="class", y="accuracy", height=180)
        left.caption("Accuracy per class on a probe of 10 test images a class")
    with right:
        for layer, maps in zip(shots.layers, shots.maps):
            tiles = maps[i].reshape(-1, *maps.shape[-2:]) / 255  # 8 images x 8 channels
            right.image(mosaic(tiles, columns=maps.shape[2], scale=max(1, 32 // maps.shape[-1]), gap=2),
                        caption=f"Layer {layer}: each row one watched image, its {maps.shape[2]} most active maps")


def replay(run: Run, key: str) -> None:
    """A slider over the run's snapshots, or what it lacks."""
    shots = snapshots_of(run)
    if shots is None:
        st.caption("This run kept no snapshots (it trained before they were kept, or is still starting).")
        return
    if len(shots) == 1:
        show(shots, 0)
        return
    i = st.slider("Snapshot", 1, len(shots), len(shots), key=key,
                  help="Taken every few seconds of training as it trained; slide back to see it learn") - 1
    show(shots, i)
