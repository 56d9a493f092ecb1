"""The drawing canvas, with nothing over its drawing area.

streamlit-drawable-canvas (0.13) floats a toolbar (send, undo, redo, edit, delete...) over the top-right corner of
the canvas, invisible until the mouse hovers it: a touch there, or a stroke begun there before the toolbar has slid
away, lands on the toolbar's buttons instead of the canvas, so the stroke vanishes. The package has no option to
hide it (``disabled`` hides it but also stops drawing), so this module registers the package's component again
under its own name, with the package's JavaScript and its stylesheet plus one rule that removes the toolbar;
Streamlit mounts the last definition registered under a name. The Draw page keeps its own buttons outside the
canvas. tests/test_browser.py checks that nothing covers the canvas's corners and that a stroke begun in the
top-right corner is drawn.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
import streamlit_drawable_canvas
from streamlit_drawable_canvas import st_canvas

__all__ = ["st_canvas"]

COMPONENT = "streamlit-drawable-canvas.streamlit_drawable_canvas"  # "<project>.<component>", as the package names it
ASSETS = Path(streamlit_drawable_canvas.__file__).parent / "frontend" / "build"
NO_TOOLBAR = ".dc-toolbar{display:none!important}"


def _register_without_toolbar() -> None:
    """Once per process, when this module is first imported (after the package has registered its own)."""
    stylesheet = "\n".join(p.read_text() for p in sorted(ASSETS.glob("index-*.css")))
    st.components.v2.component(COMPONENT, html='<div class="canvas-root"></div>', js="index-*.js",
                               css=f"{stylesheet}\n{NO_TOOLBAR}", isolate_styles=True)


_register_without_toolbar()
