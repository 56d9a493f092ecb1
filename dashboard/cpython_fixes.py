"""A workaround for a CPython bug that a server of many sessions meets: Python 3.11 before 3.11.8 keeps one
recursion counter per interpreter while it turns source into an AST (`ast.parse`), and a garbage collection inside
that conversion can hand the GIL to another thread parsing too, which leaves the counter off: `SystemError: AST
constructor recursion depth mismatch` (CPython gh-106905, fixed in 3.11.8 by a counter per call).

Every session's script runs in a thread of its own, and numpy parses the header of each array it loads from an
.npz with `ast.literal_eval`: when a job's new epoch makes thirty sessions re-read the store at once, one in a
thousand reruns failed this way (a stroke on the Draw page left unanswered, in `bench/class_load.py`). Parsing one
at a time costs nothing measurable (a header takes tens of microseconds) and is done only on the Pythons that need it.
"""

from __future__ import annotations

import ast
import functools
import sys
import threading
from collections.abc import Callable

AFFECTED = (3, 11) <= sys.version_info[:3] < (3, 11, 8)


def one_parse_at_a_time(parse: Callable[..., ast.AST]) -> Callable[..., ast.AST]:
    """``parse`` behind a lock, re-entrant so that a collector's finalizer that itself parses cannot deadlock."""
    lock = threading.RLock()

    @functools.wraps(parse)
    def parse_alone(*args, **kwargs) -> ast.AST:
        with lock:
            return parse(*args, **kwargs)

    parse_alone.one_at_a_time = True  # type: ignore[attr-defined]
    return parse_alone


def install(affected: bool = AFFECTED) -> None:
    """Make `ast.parse` (and with it `ast.literal_eval`, numpy's headers, tracebacks' carets, Streamlit's magic)
    take turns, once per process, where this Python needs it."""
    if affected and not getattr(ast.parse, "one_at_a_time", False):
        ast.parse = one_parse_at_a_time(ast.parse)
