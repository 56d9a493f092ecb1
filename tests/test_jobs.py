"""Background jobs run the real CLI in a subprocess; the synthetic CIFAR-10 folder needs no checksums."""

import os
import signal
import time

import pytest

from convnets.config import RunConfig
from convnets.jobs import JobManager
from convnets.models import default_recipe
from convnets.store import RunStore


def lenet_config(epochs: int = 2) -> RunConfig:
    recipe = default_recipe("lenet5", "cifar10").customised(epochs=epochs, batch_size=50)
    return RunConfig("lenet5", "cifar10", recipe, data_copy="jpeg")


def wait_for(manager: JobManager, job_id: str, states: tuple[str, ...], timeout: float = 120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = manager.get(job_id)
        if job.state in states:
            return job
        time.sleep(0.2)
    pytest.fail(f"job stayed {job.state}: {manager.log_tail(job_id)}")


def test_job_trains_in_the_background_once(data_dir):
    manager = JobManager()
    job = manager.submit(lenet_config(), device="cpu", data_dir=str(data_dir))
    assert job.state in ("queued", "running")
    twin = manager.submit(lenet_config(), device="cpu", data_dir=str(data_dir))
    assert twin.job_id == job.job_id and twin.pid == job.pid  # launched once
    done = wait_for(manager, job.job_id, ("finished", "failed"))
    assert done.state == "finished", done.error
    assert RunStore().get(job.job_id).finished
    assert manager.submit(lenet_config(), device="cpu", data_dir=str(data_dir)).state == "cached"
    assert [j.job_id for j in manager.jobs()] == [job.job_id]


def test_failed_job_reports_its_error(tmp_path):
    manager = JobManager()
    job = manager.submit(lenet_config(), device="cpu", data_dir=str(tmp_path / "nothing"))
    done = wait_for(manager, job.job_id, ("failed", "finished"))
    assert done.state == "failed" and "cifar10 is not in" in done.error


def test_cancel_and_kill_leave_no_job_running(data_dir):
    manager = JobManager()
    job = manager.submit(lenet_config(epochs=30), device="cpu", data_dir=str(data_dir))
    wait_for(manager, job.job_id, ("running",))
    manager.cancel(job.job_id)
    cancelled = wait_for(manager, job.job_id, ("cancelled",))
    assert cancelled.error == "cancelled by the user"

    again = manager.submit(lenet_config(epochs=30), device="cpu", data_dir=str(data_dir))  # resumes
    wait_for(manager, again.job_id, ("running",))
    os.kill(again.pid, signal.SIGKILL)
    killed = wait_for(manager, again.job_id, ("interrupted",))
    assert "resume" in killed.error
    manager.forget(job.job_id)
    assert manager.jobs() == []


def test_a_job_cancelled_while_it_starts_is_cancelled_and_resumes(data_dir):
    manager = JobManager()
    job = manager.submit(lenet_config(epochs=1), device="cpu", data_dir=str(data_dir))
    assert manager.get(job.job_id).state == "queued" and RunStore().get(job.job_id) is None  # still importing
    manager.cancel(job.job_id)
    stopped = wait_for(manager, job.job_id, ("cancelled", "failed", "finished"))
    assert stopped.state == "cancelled" and stopped.error == "cancelled before it started"
    resumed = manager.resume(job.job_id)
    assert wait_for(manager, resumed.job_id, ("finished", "failed", "cancelled")).state == "finished"


def test_a_running_jobs_log_says_what_it_is_doing(data_dir):
    manager = JobManager()
    job = manager.submit(lenet_config(epochs=2), device="cpu", data_dir=str(data_dir))
    wait_for(manager, job.job_id, ("finished", "failed"))
    log = manager.log_tail(job.job_id, lines=40)
    assert f"training {job.job_id}: lenet5 on cifar10, 2 epochs" in log
    assert "epoch 1/2: train loss" in log and "epoch 2/2: train loss" in log
    assert "evaluating the final model" in log
