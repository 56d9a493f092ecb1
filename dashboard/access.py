"""Who may train on a shared dashboard (convnets.sharing): the sidebar's trainer sign-in, the data folder a viewer
reads, and the check that every training action makes on the server, whatever the browser sent. Off the shared
mode, everyone is the trainer and nothing here shows."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from convnets import sharing
from convnets.config import RunConfig
from convnets.datasets import default_data_dir
from convnets.errors import ConvnetsError
from convnets.jobs import Job, JobManager
from dashboard import settings as remembered
from dashboard.common import data_dir

KEY = "trainer"  # in the session state: a Trainer, which no widget's value can be, so no browser message forges it
REFUSED = "data_dir_refused"  # the message for a data folder that was refused, shown once


@dataclass(frozen=True)
class Trainer:
    person: str


def rules() -> sharing.Settings:
    """Read on every use: the settings are a small file and a few variables, and a change applies at once."""
    return sharing.read_settings()


def oidc() -> bool:
    """Whether Streamlit's st.login has a provider: an [auth] section in secrets.toml."""
    return st.secrets.load_if_toml_exists() and "auth" in st.secrets


def is_trainer() -> bool:
    """Whether this session may train, cancel, remove jobs and change the data folder."""
    current = rules()
    if not current.shared:
        return True
    if oidc():
        return bool(st.user.is_logged_in) and current.may_train(st.user.get("email"))
    return isinstance(st.session_state.get(KEY), Trainer)


def person() -> str | None:
    """Whom the quotas count a job against: the signed-in email with st.login, else the name given at sign-in (or
    the session's own id); None off the shared mode, where jobs have no owner."""
    if not rules().shared:
        return None
    if oidc() and st.user.is_logged_in:
        return str(st.user.get("email") or st.user.get("sub"))
    trainer = st.session_state.get(KEY)
    return trainer.person if isinstance(trainer, Trainer) else None


def require_trainer() -> None:
    """The server's own check before any training action: a crafted widget event from a viewer changes nothing."""
    if not is_trainer():
        raise ConvnetsError("only the trainer may do this on a shared dashboard: sign in in the sidebar")


def submit(config: RunConfig, device: str, folder: str | None) -> Job:
    """Queue a job as the signed-in trainer: the data folder inside the roots, within the quotas, owned by them."""
    require_trainer()
    return sharing.submit(JobManager(), config, person=person(), settings=rules(), device=device, data_dir=folder)


def quota_problem() -> str | None:
    """What the Train page says while no new job can be queued (the queue or this person's share is full)."""
    return sharing.quota_problem(JobManager().jobs(), person(), rules())


# --- the data folder ----------------------------------------------------------------------------------------


def start_data_dir() -> str:
    """The data folder a session starts on: the remembered one (on a shared dashboard, only if it lies inside the
    roots; else the first root)."""
    current, kept = rules(), remembered.load().get("data_dir")
    if not current.shared:
        return kept or str(default_data_dir())
    try:
        return str(sharing.confine(kept, current.roots)) if kept else str(current.roots[0])
    except ConvnetsError:
        return str(current.roots[0])


def data_dir_allowed() -> bool:
    """In the data folder input's on_change: on a shared dashboard, a folder outside the roots (or a change by
    someone not signed in) is refused: the input goes back to the folder in use and the sidebar says why."""
    current = rules()
    if not current.shared:
        return True
    try:
        require_trainer()
        sharing.confine(data_dir(), current.roots)
    except ConvnetsError as e:
        st.session_state["data_dir"] = start_data_dir()
        st.session_state[REFUSED] = str(e)
        return False
    return True


def confined(path: str) -> Path:
    """A folder the trainer names (the Train page's own image folder): on a shared dashboard, only one inside the
    data roots, so that nobody lists the server's other folders through it."""
    current, folder = rules(), Path(path).expanduser()
    if not current.shared:
        return folder
    require_trainer()
    return sharing.confine(folder, current.roots)


# --- the sidebar's sign-in ----------------------------------------------------------------------------------


def sign_in() -> None:
    """The sidebar's "Trainer sign-in", on a shared dashboard only: st.login where a provider is configured, else
    the trainer's password (a wrong one is refused after a delay)."""
    current = rules()
    if not current.shared:
        return
    st.markdown("**Trainer sign-in**", help="This dashboard is shared: everyone may look, draw and upload; "
                "training, cancelling and removing jobs and changing the data folder need the trainer.")
    if oidc():
        if not st.user.is_logged_in:
            st.button("Sign in", icon=":material/login:", on_click=st.login)
            return
        email = st.user.get("email")
        st.caption(f"Signed in as {email}" + ("" if current.may_train(email) else ", who is not one of the trainers"))
        st.button("Sign out", icon=":material/logout:", on_click=st.logout)
        return
    trainer = st.session_state.get(KEY)
    if isinstance(trainer, Trainer):
        st.caption(f"Signed in as the trainer ({trainer.person})")
        st.button("Sign out", icon=":material/logout:", on_click=lambda: st.session_state.pop(KEY, None))
        return
    if not current.password_hash:
        st.caption("No trainer password is set (docs/design.md, 'Sharing one dashboard with a class'), so nobody can "
                   "train here.")
        return
    with st.form("sign_in", clear_on_submit=True, border=False):
        name = st.text_input("Your name", key="sign_in_name", help="Optional: whom the job quotas count your jobs "
                             "against (default: this browser session)")
        password = st.text_input("Trainer password", type="password", key="sign_in_password")
        signing_in = st.form_submit_button("Sign in", icon=":material/login:")
    if not signing_in:
        return
    if sharing.trainer_password_ok(password, current):
        st.session_state[KEY] = Trainer(name.strip() or f"session {secrets.token_hex(4)}")
        st.rerun()
    st.error("Wrong password: refused.", icon=":material/lock:")
