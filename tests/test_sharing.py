"""The shared mode's rules (convnets.sharing): its settings, the trainer's password, the data roots, the quotas."""

import io
import json
import os
import time
import tomllib
from pathlib import Path

import pytest

from convnets import jobs as jobsmod
from convnets import sharing
from convnets.cli import main
from convnets.config import RunConfig
from convnets.datasets import STUDY, default_data_dir
from convnets.errors import ConvnetsError
from convnets.jobs import Job, JobManager
from convnets.models import default_recipe, models_for
from convnets.schema import State
from convnets.store import write_json

FAST = 1000  # PBKDF2 iterations for the tests: the format and the check are the same at any count


def config(seed: int = 0) -> RunConfig:
    dataset = STUDY[0]
    model = models_for(dataset)[0].name
    return RunConfig(model, dataset, default_recipe(model, dataset).replace(epochs=1), seed=seed)


# --- settings -----------------------------------------------------------------------------------------------


def test_off_by_default():
    settings = sharing.read_settings({}, files=[])
    assert settings == sharing.Settings() and not settings.shared and settings.roots == ()


def test_settings_from_the_secrets_file_with_the_environment_winning(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[auth]\nredirect_uri = "x"\n[convnets]\nshared = true\ntrainer_password_hash = "h"\n'
                       f'data_roots = ["{tmp_path}"]\nmax_jobs = 4\nmax_jobs_per_person = 3\n'
                       'trainers = ["Teacher@School.org"]\n')
    settings = sharing.read_settings({}, files=[tmp_path / "missing.toml", secrets])
    assert settings == sharing.Settings(True, "h", ("teacher@school.org",), (tmp_path.resolve(),), 4, 3)
    assert settings.may_train("teacher@school.org ") and not settings.may_train("pupil@school.org")
    env = {"CONVNETS_MAX_JOBS": "7", "CONVNETS_DATA_ROOTS": os.pathsep.join(["/srv/a", "/srv/b"]),
           "CONVNETS_SHARED": "0", "CONVNETS_TRAINERS": ""}
    settings = sharing.read_settings(env, files=[secrets])
    assert (settings.shared, settings.max_jobs, settings.max_jobs_per_person) == (False, 7, 3)
    assert settings.roots == (Path("/srv/a"), Path("/srv/b"))
    assert settings.trainers == ("teacher@school.org",)  # an empty variable is no setting


def test_shared_without_roots_confines_to_the_default_data_folder():
    settings = sharing.read_settings({"CONVNETS_SHARED": "yes"}, files=[])
    assert settings.shared and settings.roots == (default_data_dir().resolve(),)
    assert settings.may_train("anyone@example.org")  # no list of trainers: the provider decides


@pytest.mark.parametrize("env, message", [({"CONVNETS_SHARED": "maybe"}, "neither on"),
                                          ({"CONVNETS_MAX_JOBS": "0"}, "max_jobs = '0'"),
                                          ({"CONVNETS_MAX_JOBS_PER_PERSON": "two"}, "max_jobs_per_person")])
def test_a_malformed_setting_is_refused(env, message):
    with pytest.raises(ConvnetsError, match=message):
        sharing.read_settings(env, files=[])


def test_a_broken_secrets_file_is_refused(tmp_path):
    (tmp_path / "secrets.toml").write_text("[convnets\nshared = true")
    with pytest.raises(ConvnetsError, match="cannot be read"):
        sharing.read_settings({}, files=[tmp_path / "secrets.toml"])


# --- the password -------------------------------------------------------------------------------------------


def test_a_password_hash_is_salted_and_checked():
    first, second = sharing.hash_password("open sesame", FAST), sharing.hash_password("open sesame", FAST)
    assert first != second and first.startswith(f"pbkdf2_sha256:{FAST}:")  # a salt of its own each time
    assert sharing.check_password("open sesame", first) and sharing.check_password("open sesame", second)
    assert not sharing.check_password("open sesame!", first) and not sharing.check_password("", first)
    assert sharing.hash_password("pw", FAST, salt=b"s" * 16) == sharing.hash_password("pw", FAST, salt=b"s" * 16)
    with pytest.raises(ConvnetsError, match="not a pbkdf2_sha256 hash"):
        sharing.check_password("pw", "sha1:deadbeef")
    with pytest.raises(ConvnetsError, match="empty"):
        sharing.hash_password("")


def test_a_wrong_password_costs_a_delay_and_a_right_one_none(monkeypatch):
    slept = []
    monkeypatch.setattr(sharing.time, "sleep", slept.append)
    settings = sharing.Settings(shared=True, password_hash=sharing.hash_password("right", FAST))
    assert sharing.trainer_password_ok("right", settings) and slept == []
    assert not sharing.trainer_password_ok("wrong", settings) and slept == [sharing.WRONG_PASSWORD_DELAY]
    assert not sharing.trainer_password_ok("", sharing.Settings(shared=True))  # no password set: nobody
    assert slept == [sharing.WRONG_PASSWORD_DELAY] * 2 and sharing.WRONG_PASSWORD_DELAY >= 1


# --- the data roots -----------------------------------------------------------------------------------------


def test_confine_keeps_folders_inside_the_roots(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    (root / "cifar").mkdir(parents=True)
    outside.mkdir()
    (root / "inner-link").symlink_to(root / "cifar")
    (root / "way-out").symlink_to(outside)
    assert sharing.confine(root, [root]) == root.resolve()
    assert sharing.confine(f"{root}/cifar ", [outside, root]) == (root / "cifar").resolve()
    assert sharing.confine(root / "inner-link", [root]) == (root / "cifar").resolve()
    assert sharing.confine(root / "not-yet", [root]) == (root / "not-yet").resolve()  # the page says it is missing
    for path, why in [(outside, "it is outside them"), (root / "way-out", "a link in it leads out of them"),
                      (root / "way-out" / "sub", "a link in it leads out of them"),
                      (f"{root}/../data/cifar", "'..' is not allowed"), (f"{root}/..", "'..' is not allowed"),
                      (tmp_path, "it is outside them"), ("data/cifar", "it is not an absolute path")]:
        with pytest.raises(ConvnetsError) as refused:
            sharing.confine(path, [root])
        assert str(refused.value) == (f"this shared dashboard reads data only inside {root.resolve()}: {path} is "
                                      f"refused ({why})")


# --- quotas and submitting ----------------------------------------------------------------------------------


def job(owner: str | None, state: State = State.QUEUED) -> Job:
    return Job(f"job-{owner}-{state}", None, state, 0.0, owner=owner)


def test_quotas_count_queued_and_running_jobs_per_person_and_in_all():
    settings = sharing.Settings(shared=True, max_jobs=3, max_jobs_per_person=2)
    queue = [job("ana"), job("ana", State.RUNNING), job("ben", State.FINISHED), job(None, State.CANCELLED)]
    assert "You have 2 of your at most 2 jobs" in sharing.quota_problem(queue, "ana", settings)
    assert sharing.quota_problem(queue, "ben", settings) is None
    assert "The queue is full: 3 of at most 3" in sharing.quota_problem([*queue, job(None)], "ben", settings)
    assert sharing.quota_problem([*queue, job(None)], "ana", sharing.Settings()) is None  # off: no quotas


class FakeTrainer:
    """Stands in for the training subprocess: the test is about the job's record, not the training."""

    def __init__(self, *args, **kwargs):
        self.pid = os.getpid()  # alive, so the job reads as queued


def active_job(manager: JobManager, seed: int, owner: str | None) -> None:
    manager.dir.mkdir(parents=True, exist_ok=True)
    write_json(manager.dir / f"{config(seed).run_id}.json", {"config": config(seed).to_dict(), "pid": os.getpid(),
                                                             "created": time.time(), "owner": owner})


def test_submit_records_the_owner_and_keeps_to_the_roots_and_quotas(tmp_path, monkeypatch):
    monkeypatch.setattr(jobsmod.subprocess, "Popen", FakeTrainer)
    manager, root = JobManager(), tmp_path / "data"
    settings = sharing.Settings(shared=True, roots=(root,), max_jobs=2, max_jobs_per_person=1)
    with pytest.raises(ConvnetsError, match="reads data only inside"):
        sharing.submit(manager, config(), person="ana", settings=settings, device="cpu", data_dir=str(tmp_path))
    assert manager.jobs() == []  # refused before anything was written

    queued = sharing.submit(manager, config(), person="ana", settings=settings, device="cpu", data_dir=str(root))
    assert queued.owner == "ana" and queued.state == State.QUEUED and queued.data_dir == str(root.resolve())
    again = sharing.submit(manager, config(), person="ana", settings=settings, device="cpu", data_dir=str(root))
    assert again.job_id == queued.job_id  # the same job under way: no new one, so no quota to pass
    with pytest.raises(ConvnetsError, match="You have 1 of your at most 1"):
        sharing.submit(manager, config(1), person="ana", settings=settings, device="cpu", data_dir=str(root))
    active_job(manager, 2, "ben")
    with pytest.raises(ConvnetsError, match="The queue is full"):
        sharing.submit(manager, config(3), person="cleo", settings=settings, device="cpu", data_dir=str(root))
    assert len(manager.jobs()) == 2

    unshared = sharing.submit(manager, config(4), person=None, settings=sharing.Settings(), device="cpu")
    assert unshared.owner is None and unshared.data_dir is None  # off: exactly JobManager.submit


def test_an_older_job_record_without_an_owner_still_reads(home):
    manager = JobManager()
    manager.dir.mkdir(parents=True)
    write_json(manager.dir / f"{config().run_id}.json", {"config": config().to_dict(), "pid": None, "created": 1.0})
    [old] = manager.jobs()
    assert old.config == config() and old.owner is None and old.state == State.FAILED


# --- the command line and the documented lines ----------------------------------------------------------------


def test_hash_password_prints_the_line_to_paste(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("open sesame\n"))
    assert main(["hash-password"]) == 0
    line = capsys.readouterr().out.strip()
    stored = tomllib.loads(f"[convnets]\n{line}")["convnets"]["trainer_password_hash"]
    assert sharing.check_password("open sesame", stored) and not sharing.check_password("open sesame\n", stored)
    monkeypatch.setattr("sys.stdin", io.StringIO("open sesame\n"))
    assert main(["hash-password", "--json"]) == 0
    assert sharing.check_password("open sesame", json.loads(capsys.readouterr().out.splitlines()[-1])[
        "trainer_password_hash"])
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["hash-password"]) == 2 and capsys.readouterr().err == "error: the password is empty\n"


def test_the_documented_lines_turn_the_shared_mode_on(tmp_path):
    """The lines docs/design.md (which the README links to) tells a teacher to paste."""
    design = (Path(__file__).resolve().parents[1] / "docs" / "design.md").read_text()
    section = design.split("## Sharing one dashboard with a class")[1]
    (tmp_path / "secrets.toml").write_text(section.split("```toml\n")[1].split("```")[0])
    settings = sharing.read_settings({}, files=[tmp_path / "secrets.toml"])
    assert settings.shared and settings.roots == (Path("/srv/convnets-data"),)
    assert (settings.max_jobs, settings.max_jobs_per_person) == (sharing.MAX_JOBS, sharing.MAX_JOBS_PER_PERSON)
