"""The dashboard's remembered choices: a small JSON file in the store's home (``$CONVNETS_HOME/settings.json``),
so that a reload, which starts a new Streamlit session with an empty session state, starts where the user left
off. The home is the user's own (``~/.convnets`` unless set otherwise), which makes the settings theirs; the file is
written atomically, so a reader never sees half of it."""

from __future__ import annotations

from pathlib import Path

from convnets.data import default_home
from convnets.store import read_json, write_json


def path() -> Path:
    return default_home() / "settings.json"


def load() -> dict:
    """The remembered settings; none when the file is missing, unreadable or not a JSON object."""
    try:
        settings = read_json(path())
    except (OSError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


def remember(key: str, value: object) -> str | None:
    """Keep one setting for the next session; returns why it could not be written (a read-only home), if so."""
    try:
        path().parent.mkdir(parents=True, exist_ok=True)
        write_json(path(), {**load(), key: value})
    except OSError as e:
        return f"{e.strerror or e}: {path()}"
    return None
