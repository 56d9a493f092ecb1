"""Background training: each job is a CLI subprocess in its own session, so it outlives the browser tab
and the dashboard server.

A job's id is its run id, so launching one configuration twice finds the same job. A job's state is read
from its run (whose lock tells whether a trainer is alive), so a server restart never leaves a job stuck
as running. Jobs wait their turn on one queue lock: on a laptop, two trainings at once are slower than
one after the other.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass

from .config import RunConfig
from .device import available_devices
from .errors import ConvnetsError
from .models import default_recipe
from .schema import ACTIVE, State
from .store import Run, RunStore, check_run_id, read_json, write_json


@dataclass
class Job:
    job_id: str  # = the run id
    config: RunConfig | None  # None only for a damaged job file
    state: State
    created: float
    error: str | None = None
    progress: dict | None = None  # a schema.Progress as stored in the run's status
    pid: int | None = None
    device: str = "auto"
    data_dir: str | None = None
    phase: str | None = None  # what a running job is doing (schema.Phase)
    owner: str | None = None  # who queued it, on a shared dashboard (convnets.sharing); None in older records

    @property
    def run_id(self) -> str:
        return self.job_id


class JobManager:
    def __init__(self, store: RunStore | None = None):
        self.store = store or RunStore()
        self.dir = self.store.home / "jobs"
        self.queue = self.dir / "queue.lock"

    def submit(self, config: RunConfig, *, device: str = "auto", data_dir: str | None = None,
               owner: str | None = None) -> Job:
        """Train exactly ``config`` in the background (``python -m convnets train --config FILE``), unless its run
        is finished or a job for it is under way. The configuration is checked first: a bad one is a
        ConvnetsError here, before any file is written."""
        config.check()
        default_recipe(config.model, config.dataset)  # an unknown model is refused here, not in the subprocess
        if device not in available_devices():
            raise ConvnetsError(f"device '{device}' is not available here (choose from: "
                                f"{', '.join(available_devices())})")
        run = self.store.get(config.run_id)
        if run is not None and run.finished:
            return Job(config.run_id, config, State.CACHED, time.time())
        existing = self.get(config.run_id)
        if existing is not None and existing.state in ACTIVE:
            return existing
        self.dir.mkdir(parents=True, exist_ok=True)
        config_file = self.dir / f"{config.run_id}.config.json"
        config.write(config_file)
        command = [sys.executable, "-m", "convnets", "train", "--config", str(config_file), "--json",
                   "--queue", str(self.queue)]
        command += (["--device", device] if device != "auto" else []) + (["--data-dir", data_dir] if data_dir else [])
        with open(self.dir / f"{config.run_id}.log", "wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=self.store.child_environment())
        write_json(self.dir / f"{config.run_id}.json", {"config": config.to_dict(), "device": device,
                                                        "data_dir": data_dir, "pid": proc.pid, "created": time.time(),
                                                        "owner": owner})
        return self._job(config.run_id)

    def get(self, job_id: str) -> Job | None:
        check_run_id(job_id)
        return self._job(job_id) if (self.dir / f"{job_id}.json").exists() else None

    def jobs(self) -> list[Job]:
        """Every job, newest first."""
        records = [p for p in self.dir.glob("*.json") if not p.name.endswith(".config.json")] if self.dir.is_dir() \
            else []
        found = [self._job(p.stem) for p in records]
        return sorted((j for j in found if j is not None), key=lambda j: j.created, reverse=True)

    def resume(self, job_id: str) -> Job:
        """Launch a stopped job again: it continues from its run's last completed epoch."""
        job = self.get(job_id)
        if job is None or job.config is None:
            raise ConvnetsError(f"no job {job_id} to resume")
        return self.submit(job.config, device=job.device, data_dir=job.data_dir)

    def cancel(self, job_id: str) -> None:
        """Ask the trainer to stop; it finishes the current step and keeps its last completed epoch. The request
        is kept in the job's record: a trainer still starting dies of it before its run says so, and the job is
        then cancelled (to resume), not failed."""
        job = self.get(job_id)
        if job is None or job.state not in ACTIVE or job.pid is None:
            raise ConvnetsError(f"job {job_id} is not running")
        path = self.dir / f"{job_id}.json"
        write_json(path, {**read_json(path), "cancelled": time.time()})
        with suppress(ProcessLookupError):
            os.kill(job.pid, signal.SIGTERM)

    def forget(self, job_id: str) -> None:
        """Remove a job that is no longer active from the list (its run stays in the store)."""
        job = self.get(job_id)
        if job is not None and job.state in ACTIVE:
            raise ConvnetsError(f"job {job_id} is still {job.state}; cancel it first")
        for suffix in (".json", ".config.json", ".log"):
            (self.dir / f"{job_id}{suffix}").unlink(missing_ok=True)

    def log_tail(self, job_id: str, lines: int = 20) -> str:
        check_run_id(job_id)
        try:
            return "\n".join((self.dir / f"{job_id}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _job(self, job_id: str) -> Job | None:
        path = self.dir / f"{job_id}.json"
        try:
            record = read_json(path)
            config = RunConfig.from_dict(record["config"])
            job = Job(job_id, config, State.QUEUED, float(record["created"]), pid=record.get("pid"),
                      device=record.get("device") or "auto", data_dir=record.get("data_dir"), owner=record.get("owner"))
            cancelled = record.get("cancelled") is not None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:  # edited or torn by hand: say so, lose nothing
            created = path.stat().st_mtime if path.exists() else time.time()
            return Job(job_id, None, State.DAMAGED, created, error=f"the job file {path} is malformed "
                       f"({type(e).__name__}: {e}); its run, if any, is untouched in the store")
        run = self.store.get(job_id)
        status = run.status() if run is not None else {}
        state = status.get("state")
        stale = status.get("updated", 0) < job.created  # the run's status predates this launch
        if state is None or (_alive(job.pid) and (stale or state == State.INTERRUPTED)):
            # The subprocess has not reached its run yet (it is starting, or waiting for the run's lock).
            if _alive(job.pid):
                job.state = State.QUEUED
            elif cancelled:
                job.state, job.error = State.CANCELLED, "cancelled before it started"
            else:
                job.state = State.FAILED
                job.error = _last_error(self.log_tail(job_id)) or "the job ended early"
            return job
        job.state, job.error, job.progress = State(state), status.get("error"), status.get("progress")
        job.phase = status.get("phase")
        if state == State.INTERRUPTED:
            job.error = status.get("error") or "the training process ended unexpectedly; launch it again to resume"
        return job

    def run_of(self, job: Job) -> Run | None:
        return self.store.get(job.job_id)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child that nobody waited for is a zombie: not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _last_error(log: str) -> str | None:
    errors = [line for line in log.splitlines() if line.startswith("error: ")]
    return errors[-1].removeprefix("error: ") if errors else None
