"""The server's long-lived heap kept out of Python's garbage collector.

PyTorch, plotly, pandas and Streamlit bring millions of objects that live as long as the server. Python's
collector walks all of them in every full collection, 140-310 ms of one core each (measured with gc.callbacks on
the Draw page's server, issue 38), while the page's own work per stroke is about 20 ms. After a run that imported
modules, the heap is collected once and frozen (``gc.freeze``): later collections walk only what was made since,
the objects of the sessions' own reruns. Imports stop after the first visit of each page, so this happens a few
times per server, not per click.
"""

from __future__ import annotations

import gc
import sys
import threading

_frozen_at_modules = 0  # how many modules were loaded when the heap was last frozen
_lock = threading.Lock()  # sessions' first runs end together: one of them collects


def freeze_after_imports() -> bool:
    """Collect and freeze the heap if modules were imported since the last time; whether it did."""
    global _frozen_at_modules
    with _lock:
        if len(sys.modules) <= _frozen_at_modules:
            return False
        gc.collect()  # what is garbage now is freed, not frozen for good
        gc.freeze()
        _frozen_at_modules = len(sys.modules)
        return True
