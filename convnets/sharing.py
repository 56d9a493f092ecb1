"""Shared mode: one dashboard for a class, where everyone may look, draw and upload but only the trainer trains.

Off unless switched on, so a local user sees no change. Each setting comes from an environment variable or from
the ``[convnets]`` table of Streamlit's ``secrets.toml`` (the environment wins, setting by setting):
``CONVNETS_SHARED`` / ``shared`` (1 or true: on), ``CONVNETS_TRAINER_PASSWORD_HASH`` / ``trainer_password_hash``
(what ``python -m convnets hash-password`` prints), ``CONVNETS_TRAINERS`` / ``trainers`` (with ``st.login``, the
emails that may train; none: everyone the provider signs in), ``CONVNETS_DATA_ROOTS`` / ``data_roots`` (the folders
data may be read from; default: the default data folder), ``CONVNETS_MAX_JOBS`` / ``max_jobs`` and
``CONVNETS_MAX_JOBS_PER_PERSON`` / ``max_jobs_per_person`` (jobs queued or training at once, in all and per person).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import RunConfig
from .datasets import default_data_dir
from .errors import ConvnetsError
from .jobs import Job, JobManager
from .schema import ACTIVE

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 600_000  # OWASP's figure for PBKDF2-SHA256: a stolen hash costs a guesser that much per try
WRONG_PASSWORD_DELAY = 1.5  # seconds a wrong password costs, so that guessing one is slow
MAX_JOBS, MAX_JOBS_PER_PERSON = 10, 5  # the study's five nets fit one person's share
ENV = {"shared": "CONVNETS_SHARED", "trainer_password_hash": "CONVNETS_TRAINER_PASSWORD_HASH",
       "trainers": "CONVNETS_TRAINERS", "data_roots": "CONVNETS_DATA_ROOTS", "max_jobs": "CONVNETS_MAX_JOBS",
       "max_jobs_per_person": "CONVNETS_MAX_JOBS_PER_PERSON"}


def secrets_files() -> tuple[Path, ...]:
    """Where Streamlit looks for secrets.toml by default, the later file winning: the user's, then the folder the
    server starts in."""
    return Path.home() / ".streamlit" / "secrets.toml", Path.cwd() / ".streamlit" / "secrets.toml"


@dataclass(frozen=True)
class Settings:
    shared: bool = False
    password_hash: str | None = None
    trainers: tuple[str, ...] = ()  # lower-cased emails
    roots: tuple[Path, ...] = ()  # resolved
    max_jobs: int = MAX_JOBS
    max_jobs_per_person: int = MAX_JOBS_PER_PERSON

    def may_train(self, email: str | None) -> bool:
        """Whether someone the OIDC provider signed in is a trainer."""
        return not self.trainers or (email or "").strip().lower() in self.trainers


def read_settings(environ: Mapping[str, str] | None = None, files: Iterable[Path] | None = None) -> Settings:
    """The sharing settings in force; a malformed one is a ConvnetsError (shared mode never guesses)."""
    environ = os.environ if environ is None else environ
    table: dict = {}
    for path in secrets_files() if files is None else files:
        try:
            table |= tomllib.loads(path.read_text()).get("convnets", {})
        except FileNotFoundError:
            continue
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConvnetsError(f"{path} cannot be read ({e})") from None
    values = {key: environ[name] for key, name in ENV.items() if environ.get(name, "").strip()}
    values = {**table, **values}
    shared = _flag(values.get("shared", False))
    roots = _paths(values.get("data_roots")) or ((default_data_dir(),) if shared else ())
    return Settings(shared=shared, password_hash=str(values["trainer_password_hash"]).strip()
                    if values.get("trainer_password_hash") else None,
                    trainers=tuple(e.strip().lower() for e in _items(values.get("trainers"), ",") if e.strip()),
                    roots=tuple(Path(r).expanduser().resolve() for r in roots),
                    max_jobs=_count("max_jobs", values.get("max_jobs", MAX_JOBS)),
                    max_jobs_per_person=_count("max_jobs_per_person",
                                               values.get("max_jobs_per_person", MAX_JOBS_PER_PERSON)))


def _flag(value: object) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConvnetsError(f"shared = '{value}' is neither on (1, true) nor off (0, false)")


def _count(key: str, value: object) -> int:
    try:
        count = int(str(value))
    except ValueError:
        count = 0
    if count < 1:
        raise ConvnetsError(f"{key} = '{value}' is not a whole number of jobs of at least 1")
    return count


def _items(value: object, separator: str) -> list[str]:
    """A list from the TOML table, or from an environment variable's separated text."""
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else str(value).split(separator)


def _paths(value: object) -> list[str]:
    return [p for p in (p.strip() for p in _items(value, os.pathsep)) if p]


# --- the trainer's password -------------------------------------------------------------------------------


def hash_password(password: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """A salted PBKDF2-SHA256 hash, as one line to keep in the settings: ``pbkdf2_sha256:ITERATIONS:SALT:HASH``
    (hex; no character a shell or TOML needs quoted)."""
    if not password:
        raise ConvnetsError("the password is empty")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{ALGORITHM}:{iterations}:{salt.hex()}:{digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Whether the password is the one hashed; compared in constant time, so the time taken tells nothing."""
    try:
        algorithm, iterations, salt, digest = stored.split(":")
        if algorithm != ALGORITHM:
            raise ValueError(algorithm)
        expected, rounds, salt_bytes = bytes.fromhex(digest), int(iterations), bytes.fromhex(salt)
    except ValueError:
        raise ConvnetsError(f"the trainer's password hash is not a {ALGORITHM} hash as `python -m convnets "
                            "hash-password` prints it") from None
    found = hashlib.pbkdf2_hmac("sha256", password.encode(), salt_bytes, rounds)
    return hmac.compare_digest(found, expected)


def trainer_password_ok(password: str, settings: Settings) -> bool:
    """The sign-in's check: a wrong password (or none configured) costs WRONG_PASSWORD_DELAY seconds."""
    if settings.password_hash and password and check_password(password, settings.password_hash):
        return True
    time.sleep(WRONG_PASSWORD_DELAY)
    return False


# --- the data folder --------------------------------------------------------------------------------------


def confine(path: str | Path, roots: Iterable[Path]) -> Path:
    """The folder, its links followed, if it lies inside one of the roots; otherwise one ConvnetsError that says
    where data may be read from. A path with ``..`` is refused outright, whatever it resolves to."""
    roots = [Path(r).expanduser().resolve() for r in roots]
    candidate = Path(str(path).strip()).expanduser()
    real = candidate.resolve()  # every link followed, so a link inside a root that leads out is out
    if ".." in candidate.parts:
        why = "'..' is not allowed"
    elif not candidate.is_absolute():
        why = "it is not an absolute path"
    elif any(real.is_relative_to(root) for root in roots):
        return real
    else:
        linked = any(candidate.is_relative_to(root) for root in roots)
        why = "a link in it leads out of them" if linked else "it is outside them"
    raise ConvnetsError(f"this shared dashboard reads data only inside {', '.join(map(str, roots))}: {path} is "
                        f"refused ({why})")


# --- queued jobs ------------------------------------------------------------------------------------------


def quota_problem(jobs: Iterable[Job], person: str | None, settings: Settings) -> str | None:
    """Why a new job cannot be queued now (the queue, or this person's share of it, is full), or None."""
    if not settings.shared:
        return None
    active = [j for j in jobs if j.state in ACTIVE]
    if len(active) >= settings.max_jobs:
        return (f"The queue is full: {len(active)} of at most {settings.max_jobs} jobs are queued or training. "
                "Wait until one finishes.")
    mine = sum(j.owner == person for j in active)
    if mine >= settings.max_jobs_per_person:
        return (f"You have {mine} of your at most {settings.max_jobs_per_person} jobs queued or training. Wait "
                "until one finishes.")
    return None


def submit(manager: JobManager, config: RunConfig, *, person: str | None, settings: Settings, device: str = "auto",
           data_dir: str | None = None) -> Job:
    """JobManager.submit under the shared mode's rules: the data folder inside the roots, the queue's quotas
    (unless the configuration is trained already or under way, which adds no job), and the job's owner kept."""
    if settings.shared:
        data_dir = str(confine(data_dir or default_data_dir(), settings.roots))
        run, job = manager.store.get(config.run_id), manager.get(config.run_id)
        adds = not (run is not None and run.finished) and not (job is not None and job.state in ACTIVE)
        problem = quota_problem(manager.jobs(), person, settings) if adds else None
        if problem:
            raise ConvnetsError(problem)
    return manager.submit(config, device=device, data_dir=data_dir, owner=person)
