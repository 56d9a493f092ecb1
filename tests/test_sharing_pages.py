"""The shared mode on the dashboard (AppTest): a viewer sees what trains but reaches no training control, and a
crafted widget event changes nothing; the trainer signs in (a wrong password is refused and slowed), stays inside
the data roots and within the quotas."""

import json
import os
import time

import pytest
from streamlit.testing.v1 import AppTest
from test_pages import APP, fill_cifar_form, open_page, texts
from test_sharing import FAST, config

from convnets import sharing
from convnets.jobs import JobManager
from convnets.store import write_json
from dashboard import access

PASSWORD = "correct horse"
DAMAGED = "lenet5-cifar10-0123456789"  # a job file that cannot be read: its card offers Remove, and nothing runs


@pytest.fixture
def shared(monkeypatch, data_dir):
    """Shared mode on, with the synthetic data folder as the one data root."""
    monkeypatch.setenv("CONVNETS_SHARED", "1")
    monkeypatch.setenv("CONVNETS_TRAINER_PASSWORD_HASH", sharing.hash_password(PASSWORD, FAST))
    monkeypatch.setenv("CONVNETS_DATA_ROOTS", str(data_dir))
    monkeypatch.setenv("CONVNETS_DATA", str(data_dir))
    return data_dir


def damaged_job(home) -> None:
    (home / "jobs").mkdir(parents=True, exist_ok=True)
    (home / "jobs" / f"{DAMAGED}.json").write_text('{"config": {"model": "lenet5"}, "created": 1}')


def sidebar_button(at: AppTest, label: str):
    return next(b for b in at.sidebar.button if b.label == label)


def test_off_by_default_nothing_changes():
    at = open_page("train")
    assert "Trainer sign-in" not in texts(at) and at.text_input(key="data_dir")
    assert "Train" in [b.label for b in at.button]  # the form's own button


def test_a_viewer_sees_the_jobs_but_no_training_control(shared, home):
    damaged_job(home)
    at = open_page("train")
    assert "need the trainer's sign-in" in texts(at) and "Trainer sign-in" in texts(at)
    assert "is malformed" in at.error[0].value  # the job's card...
    assert not [b for b in at.main.button]  # ...without Remove, and no Train form, no study button
    assert not [w for w in at.text_input if w.key == "data_dir"]  # the data folder is text, not an input
    assert f"Data folder: {shared}" in " ".join(c.value for c in at.sidebar.caption)
    assert (home / "jobs" / f"{DAMAGED}.json").exists()


def test_a_crafted_widget_event_from_a_viewer_changes_nothing(shared, home):
    """The trainer's page is drawn, then the session loses the trainer (a viewer's) and sends the trainer's
    widgets' events anyway: a click on Remove and on the Train form's button."""
    damaged_job(home)
    at = open_page("train", trainer=access.Trainer("ana"), data_dir=str(shared))
    fill_cifar_form(at, epochs=30, batch_size=8)
    remove, train = at.button(key=f"forget-{DAMAGED}"), next(b for b in at.button if b.label == "Train")
    del at.session_state["trainer"]
    remove.click()
    train.click().run()
    assert not at.exception and "need the trainer's sign-in" in texts(at)
    assert [j.job_id for j in JobManager().jobs()] == [DAMAGED]  # nothing removed, nothing queued


def test_every_training_action_checks_the_trainer_on_the_server(shared):
    def action():
        import streamlit as st

        from convnets.errors import ConvnetsError
        from dashboard import access

        try:
            access.require_trainer()
            st.success("allowed")
        except ConvnetsError as e:
            st.error(str(e))

    at = AppTest.from_function(action).run()
    assert "only the trainer may do this" in at.error[0].value
    at.session_state["trainer"] = "a widget's value is never a Trainer"
    assert "only the trainer" in at.run().error[0].value
    at.session_state["trainer"] = access.Trainer("ana")
    assert at.run().success[0].value == "allowed"


def test_a_wrong_password_is_refused_and_slowed_and_the_right_one_signs_in(shared):
    at = open_page("train")
    at.sidebar.text_input(key="sign_in_password").input("guess")
    start = time.perf_counter()
    sidebar_button(at, "Sign in").click().run()
    assert time.perf_counter() - start >= sharing.WRONG_PASSWORD_DELAY
    assert "Wrong password: refused." in [e.value for e in at.sidebar.error]
    assert "need the trainer's sign-in" in texts(at) and "trainer" not in at.session_state

    at.sidebar.text_input(key="sign_in_name").input("Ana")
    at.sidebar.text_input(key="sign_in_password").input(PASSWORD)
    sidebar_button(at, "Sign in").click().run()
    assert at.session_state["trainer"] == access.Trainer("Ana") and not at.exception
    assert "Signed in as the trainer (Ana)" in [c.value for c in at.sidebar.caption]
    assert "Train" in [b.label for b in at.button] and at.text_input(key="data_dir")
    sidebar_button(at, "Sign out").click().run()
    assert "need the trainer's sign-in" in texts(at)


def test_the_trainer_cannot_leave_the_data_roots(shared, tmp_path):
    at = open_page("train", trainer=access.Trainer("ana"))
    assert at.text_input(key="data_dir").value == str(shared.resolve())  # a shared dashboard starts in its root
    outside = tmp_path / "elsewhere"
    at.text_input(key="data_dir").set_value(str(outside)).run()
    [refused] = [e.value for e in at.sidebar.error]
    assert refused == (f"this shared dashboard reads data only inside {shared.resolve()}: {outside} is refused "
                       "(it is outside them)")
    assert at.text_input(key="data_dir").value == str(shared.resolve())  # back to the folder in use
    assert not (access.remembered.path().exists() and str(outside) in access.remembered.path().read_text())
    at.selectbox(key="train_dataset").set_value("your-folder").run()
    at.text_input(key="folder_path").set_value(f"{shared}/../").run()
    next(b for b in at.button if b.label == "Check the folder").click().run()
    assert "'..' is not allowed" in at.error[0].value


def test_the_train_page_says_when_the_quota_is_reached(shared, home, monkeypatch):
    monkeypatch.setenv("CONVNETS_MAX_JOBS_PER_PERSON", "1")
    jobs = home / "jobs"
    jobs.mkdir(parents=True)
    write_json(jobs / f"{config().run_id}.json", {"config": config().to_dict(), "pid": os.getpid(),  # alive: queued
                                                 "created": time.time(), "owner": "ana"})
    at = open_page("train", trainer=access.Trainer("ana"), data_dir=str(shared))
    assert "You have 1 of your at most 1 jobs queued or training" in at.warning[0].value
    fill_cifar_form(at, epochs=30, batch_size=8)
    next(b for b in at.button if b.label == "Train").click().run()
    assert "You have 1 of your at most 1" in at.error[0].value and len(JobManager().jobs()) == 1
    assert json.loads((jobs / f"{config().run_id}.json").read_text())["owner"] == "ana"
    assert not open_page("train", trainer=access.Trainer("ben")).warning  # another person's share is free


@pytest.mark.parametrize(("user", "trains", "says"), [
    ({"is_logged_in": False}, False, None),
    ({"is_logged_in": True, "email": "Teacher@School.org"}, True, "Signed in as Teacher@School.org"),
    ({"is_logged_in": True, "email": "student@school.org"}, False, "who is not one of the trainers"),
])
def test_with_an_identity_provider_only_a_signed_in_trainer_trains(shared, monkeypatch, user, trains, says):
    """st.login's path (an [auth] provider in secrets.toml): the provider's answer, as AppTest's ``user`` gives it,
    decides; the trainers are named by email, in any case."""
    monkeypatch.setenv("CONVNETS_TRAINERS", "teacher@school.org")
    monkeypatch.setattr(access, "oidc", lambda: True)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.user.clear()
    at.user.update(user)
    at.switch_page("../pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    sidebar = [b.label for b in at.sidebar.button]
    assert sidebar == (["Sign out"] if user["is_logged_in"] else ["Sign in"])
    assert ("Train" in [b.label for b in at.main.button]) == trains
    assert bool([w for w in at.text_input if w.key == "data_dir"]) == trains  # the data folder: the trainer's
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert says is None or says in captions
