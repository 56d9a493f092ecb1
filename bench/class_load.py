"""A class on one server: N people drawing and uploading photos at once while the teacher's jobs train, on a
shared dashboard (convnets.sharing), and nothing lost or mixed up.

It starts `streamlit run dashboard/app.py` in shared mode (a trainer's password, the data folder confined to a
temporary one) on the shipped zoo with an empty temporary home, and opens N viewer sessions in one headless
Chromium (a browser context each). Every session draws on the Draw page in cycles (a stroke, its predictions,
Clear): digits whose points are jittered per session and cycle, so that no two strokes are alike. Halfway, every
session visits the Photo page, where every other one uploads a photo of its own, and comes back. Meanwhile three
jobs go to the queue through the core's job API as the teacher (convnets.sharing.submit): the first is cancelled
after its first epoch, the two others train to the end; afterwards the teacher signs in, finds Resume on the
cancelled job's card on the Train page, presses it, and the job finishes from where it stopped.

Checks, each a row of the report, any failure making the exit status 1:
  - every stroke was answered (no timeout, no error on the page, no session stuck; where a stroke is lost, what its
    page showed, and a screenshot in --shots);
  - each answer is the session's own: the models' input the page shows is the session's own canvas (read from its
    browser), closer to it than to any other stroke of any session, and every model's card says what
    convnets.predict answers for that canvas;
  - each uploader sees its own photo (and the core's answers for it), and no page shows another session's photo;
  - the two jobs finish; the cancelled one ends cancelled, with Resume on its card, and resumes from its last epoch;
  - the server's memory (VmRSS of the process and its children) grows at most 10 % over the timed cycles.

It prints the latencies (stroke's release to the predictions shown), the server's CPU seconds per stroke, how the
machine's CPU was shared (server, browsers, jobs) and the memory, as in draw_load.py, whose machinery it shares
(bench/sessions.py).

    python bench/class_load.py [--sessions 30] [--cycles 30] [--data-dir DIR] [--train-images 30000] [--epochs 2]
        [--timeout 120] [--job-timeout 1200] [--shots DIR] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

# (sessions puts the repository on the path, for the imports from convnets)
from sessions import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DIGITS,
    PHOTO_SHOWN,
    READY,
    Session,
    Shape,
    cpu_seconds,
    dashboard,
    descendants,
    machine_cpu_seconds,
    photo,
    process_cpu_seconds,
    rss_mib,
)

from convnets import sharing
from convnets.config import RunConfig
from convnets.data import MNIST_FILES, find_source
from convnets.datasets import get_dataset
from convnets.errors import ConvnetsError
from convnets.jobs import Job, JobManager
from convnets.models import default_recipe
from convnets.predict import Prediction, predict, prepare_drawing, prepare_upload
from convnets.schema import ACTIVE, State
from convnets.store import RunStore

DRAWN, PHOTOGRAPHED = "mnist", "cifar10"  # the zoo's datasets the Draw and Photo pages answer with
JITTER = 0.08  # how far, in canvas sides, each point of a session's digit moves: no two strokes alike
BENDS = 8  # a digit of fewer points gets one in the middle of each segment, so that its lines bend too
SHAPED = [name for name in DIGITS if len(DIGITS[name]) > 2]
OWN_LIKENESS = 0.995  # the least correlation between the input shown and the session's own canvas
MEMORY_GROWTH = 0.10
PHOTO = "class-photo-{:02d}.png"
# Every card's text as the page shows it: its run's name, its answer, then "97.1% sure" (Draw) or the top classes
# as "cat · 47.4%" (Photo).
CARDS = """() => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stMetric]')]
    .map(m => m.closest('[data-testid=stVerticalBlock]').innerText)"""
NAVIGATION = "stSidebarNav"
TRAINING = ("lenet5", "ref_lenet_mnist")  # the two jobs that train to the end (--epochs)
CANCELLED = "lenet5"  # with one epoch more: cancelled after its first epoch, then resumed from the Train page


# --- data for the jobs --------------------------------------------------------------------------------------------


def write_digits(root: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """A small MNIST in its idx format under root/MNIST/raw: printed digits, shifted, scaled, turned and noisy.
    Written unpacked, since only the official .gz files are checked against MNIST's checksums."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    fonts = {size: ImageFont.load_default(size=size) for size in range(14, 25, 2)}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = np.empty((n, 28, 28), np.uint8)
        for i, label in enumerate(labels):
            glyph = Image.new("L", (28, 28))
            ImageDraw.Draw(glyph).text((14 + rng.integers(-3, 4), 14 + rng.integers(-3, 4)), str(label), fill=255,
                                       font=fonts[int(rng.choice(list(fonts)))], anchor="mm")
            turned = np.asarray(glyph.rotate(float(rng.uniform(-15, 15)), Image.Resampling.BILINEAR))
            images[i] = np.clip(turned + rng.integers(0, 30, (28, 28)), 0, 255)
        for stem, array in zip(MNIST_FILES[split], (images, labels)):
            header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
            (raw / stem).write_bytes(header + array.tobytes())


# --- the sessions -------------------------------------------------------------------------------------------------


@dataclass
class Answer:
    """One answered stroke, as the session's browser had it: its own canvas, the models' input shown, the cards."""

    canvas: bytes  # PNG, from the canvas's drawing layer
    shown: bytes  # the image file the page shows as the models' input
    cards: list[str]
    errors: int  # exceptions on the page


@dataclass
class PhotoVisit:
    """What the Photo page showed a session: the image and caption (if any), the cards, every text on the page."""

    uploaded: str | None
    shown: bytes | None
    captions: list[str]
    cards: list[str]
    text: str
    errors: int


class ClassSession(Session):
    """A viewer who draws digits of their own and, on a photo visit, uploads a photo of their own (or only looks)."""

    def __init__(self, page: Page, url: str, limit_s: float, index: int, photo_path: Path | None,
                 shots: Path | None) -> None:
        super().__init__(page, url, limit_s)
        self.index, self.photo_path, self.shots = index, photo_path, shots
        self.answers: list[Answer] = []
        self.visits: list[PhotoVisit] = []
        self.stuck: str | None = None  # the step that did not happen in time, which ended this session's run
        self.losses: list[str] = []  # what the page showed where a stroke's predictions never came

    def shape(self, n: int) -> Shape:
        """The digits but the 1 in turn, each point moved by a draw of the session's and the cycle's own. (A 1 is
        only a line: scaled and centred as the models see it, two 1s are alike however their points move.)"""
        digit = DIGITS[SHAPED[n % len(SHAPED)]]
        if len(digit) < BENDS:
            middles = [((xa + xb) / 2, (ya + yb) / 2) for (xa, ya), (xb, yb) in zip(digit, digit[1:])]
            digit = [p for pair in zip(digit, middles) for p in pair] + digit[-1:]
        moves = np.random.default_rng([self.index, n]).uniform(-JITTER, JITTER, (len(digit), 2))
        return [(float(np.clip(x + dx, 0.06, 0.94)), float(np.clip(y + dy, 0.06, 0.94)))
                for (x, y), (dx, dy) in zip(digit, moves)]

    async def answered(self, shape: Shape, seconds: float) -> None:
        canvas = await self.page.locator("canvas.dc-canvas.lower-canvas").evaluate("c => c.toDataURL('image/png')")
        src = await self.page.locator("[data-testid=stMain] [data-testid=stImage] img").first.get_attribute("src")
        shown = await (await self.page.request.get(src)).body()
        self.answers.append(Answer(base64.b64decode(canvas.split(",", 1)[1]), shown, await self.page.evaluate(CARDS),
                                   await errors(self.page)))

    async def lost(self, shape: Shape) -> None:
        """Whether the canvas holds the stroke and what the page says instead of the predictions (and a screenshot
        in --shots): enough to tell a stroke the canvas lost from one the server never answered."""
        canvas = await self.page.locator("canvas.dc-canvas.lower-canvas").evaluate("c => c.toDataURL('image/png')")
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(canvas.split(",", 1)[1]))).convert("L"))
        main = await self.page.get_by_test_id("stMain").inner_text()
        state = await self.page.get_by_test_id("stApp").get_attribute("data-test-script-state")
        said = next((line for line in main.splitlines() if "drawn" in line or "ink" in line), "no message")
        if await errors(self.page):  # the rerun failed: its error's first line says why
            said = (await self.page.get_by_test_id("stException").first.inner_text()).strip().splitlines()[0]
        cards = len(await self.page.evaluate(CARDS))
        self.losses.append(f"stroke {len(self.answers) + len(self.losses) + 1}: ink on {(pixels > 0).mean():.1%} of "
                           f"the canvas, {cards} cards, the page says '{said}', script {state}")
        if self.shots is not None:
            self.shots.mkdir(parents=True, exist_ok=True)
            await self.page.screenshot(path=self.shots / f"lost-{self.index:02d}-{len(self.losses)}.png")

    async def go(self, title: str) -> None:
        """Through the sidebar's navigation, as a person would: the same Streamlit session goes on."""
        whole = re.compile(rf"{re.escape(title)}$")
        await self.page.get_by_test_id(NAVIGATION).get_by_role("link", name=whole).click()
        await self.page.locator("h1").filter(has_text=whole).wait_for()
        await self.page.wait_for_selector(READY)

    async def visit_photos(self) -> None:
        """To the Photo page: upload the session's photo (if it has one), note what the page shows, back to Draw."""
        await self.go("Classify a photo")
        main = self.page.get_by_test_id("stMain")
        if self.photo_path is not None:
            await self.page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(self.photo_path)
            await self.page.wait_for_function(PHOTO_SHOWN, polling=100, timeout=self.limit_s * 1000)
        images = main.get_by_test_id("stImage").locator("img")
        shown = None
        if await images.count():
            shown = await (await self.page.request.get(await images.first.get_attribute("src"))).body()
        self.visits.append(PhotoVisit(self.photo_path.name if self.photo_path else None, shown,
                                      await main.get_by_test_id("stImageCaption").all_inner_texts(),
                                      await self.page.evaluate(CARDS), await main.inner_text(),
                                      await errors(self.page)))
        await self.go("Draw a digit")
        await self.canvas_ready()

    async def class_cycles(self, first: int, count: int) -> None:
        """The timed cycles, with the photo visit halfway. A step stuck past its limit ends this session's run
        (noted, so that the others go on and the report says what was lost)."""
        try:
            await self.cycles(first, count // 2)
            await self.visit_photos()
            await self.cycles(first + count // 2, count - count // 2)
        except PlaywrightTimeout as e:
            self.stuck = e.message.splitlines()[0]


async def errors(page: Page) -> int:
    return await page.get_by_test_id("stException").count()


# --- the teacher's jobs -------------------------------------------------------------------------------------------


@dataclass
class Jobs:
    """The teacher's three jobs and what became of them."""

    manager: JobManager
    settings: sharing.Settings
    data_dir: Path
    epochs: int
    training: list[RunConfig] = field(default_factory=list)
    cancelled: RunConfig | None = None
    epochs_at_cancel: int | None = None
    history_at_cancel: list[dict] = field(default_factory=list)
    resume_offered: bool = False
    notes: list[str] = field(default_factory=list)
    began: float = field(default_factory=time.time)  # the timed phase's, when the first job goes to the queue
    events: dict[str, list[str]] = field(default_factory=dict)  # per job: what happened when, for the report

    def event(self, config: RunConfig, what: str, at: float | None = None) -> None:
        """Note what happened to a job, with the seconds since the timed phase began."""
        at = time.time() if at is None else at
        self.events.setdefault(config.run_id, []).append(f"{what} {at - self.began:+,.0f} s")

    def config(self, model: str, epochs: int) -> RunConfig:
        recipe = default_recipe(model, DRAWN).replace(epochs=epochs)
        return RunConfig(model, DRAWN, recipe, data_copy=find_source(DRAWN, self.data_dir).copy)

    def submit(self, config: RunConfig) -> None:
        sharing.submit(self.manager, config, person="teacher", settings=self.settings, data_dir=str(self.data_dir))
        self.event(config, "launched")

    def job(self, config: RunConfig) -> Job | None:
        return self.manager.get(config.run_id)

    def epochs_done(self, config: RunConfig) -> int:
        run = self.manager.store.get(config.run_id)
        return len(run.history()) if run is not None else 0

    async def until(self, config: RunConfig, done: Callable[[Job], bool], deadline: float) -> Job | None:
        """Poll the job until done(job) or the deadline; the job as last seen."""
        while True:
            job = self.job(config)
            if (job is not None and done(job)) or time.monotonic() > deadline:
                return job
            await asyncio.sleep(0.5)

    async def start(self, deadline: float) -> None:
        """The job to cancel first, so that it holds the queue; then the two others queue behind it; cancel it once
        its first epoch is stored. A refusal is noted, for the report."""
        self.cancelled = self.config(CANCELLED, self.epochs + 1)
        self.training = [self.config(model, self.epochs) for model in TRAINING]
        self.began = time.time()
        try:
            await self._start(deadline)
        except ConvnetsError as e:
            self.notes.append(str(e))

    async def _start(self, deadline: float) -> None:
        self.submit(self.cancelled)
        await self.until(self.cancelled, lambda j: j.state == State.RUNNING or j.state not in ACTIVE, deadline)
        for config in self.training:
            self.submit(config)
        while self.epochs_done(self.cancelled) < 1 and time.monotonic() < deadline:
            job = self.job(self.cancelled)
            if job is None or job.state not in ACTIVE:
                break
            await asyncio.sleep(0.5)
        job = self.job(self.cancelled)
        if job is None or job.state not in ACTIVE:
            self.notes.append(f"the job to cancel was {job.state if job else 'gone'} before it could be cancelled")
            return
        self.manager.cancel(self.cancelled.run_id)
        self.event(self.cancelled, "cancelled")
        await self.until(self.cancelled, lambda j: j.state not in ACTIVE, deadline)
        self.epochs_at_cancel = self.epochs_done(self.cancelled)
        run = self.manager.store.get(self.cancelled.run_id)
        self.history_at_cancel = run.history() if run is not None else []

    async def finish(self, configs: list[RunConfig], deadline: float) -> None:
        for config in configs:
            job = await self.until(config, lambda j: j.state not in ACTIVE, deadline)
            run = self.manager.store.get(config.run_id)
            if job is not None and job.state not in ACTIVE and run is not None:
                self.event(config, str(job.state), run.status().get("updated"))

    def outcomes(self) -> list[dict]:
        rows = []
        for role, config in [("trains", c) for c in self.training] + [("cancelled, resumed", self.cancelled)]:
            if config is None:
                continue
            job = self.job(config)
            rows.append({"job": config.run_id, "role": role, "epochs": config.recipe.epochs,
                         "state": str(job.state) if job else "missing", "epochs done": self.epochs_done(config),
                         "timeline": ", ".join(self.events.get(config.run_id, []))})
        return rows


async def resume_from_train_page(browser: Browser, url: str, password: str, jobs: Jobs, limit_s: float,
                                 shots: Path | None) -> None:
    """The teacher signs in, finds Resume on the cancelled job's card and presses it. A step that does not happen
    within the limit is noted for the report (with a screenshot in ``shots``, if given)."""
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(limit_s * 1000)
    page = await context.new_page()
    try:
        await page.goto(url)
        await page.wait_for_selector(READY)
        sidebar = page.get_by_test_id("stSidebar")
        await sidebar.get_by_role("textbox", name="Trainer password").fill(password)
        await sidebar.get_by_role("button", name="Sign in").click()
        await sidebar.get_by_text("Signed in as the trainer").wait_for()
        await page.get_by_test_id(NAVIGATION).get_by_role("link", name=re.compile("Train$")).click()
        await page.locator("h1").filter(has_text=re.compile("Train$")).wait_for()
        await page.wait_for_selector(READY)
        resume = page.locator(f".st-key-resume-{jobs.cancelled.run_id} button")
        jobs.resume_offered = await resume.count() == 1
        if jobs.resume_offered:
            await resume.click()
            jobs.event(jobs.cancelled, "resumed from the Train page")
            await jobs.until(jobs.cancelled, lambda j: j.state in ACTIVE, time.monotonic() + limit_s)
    except PlaywrightTimeout as e:
        jobs.notes.append(f"the teacher's Train page: {e.message.splitlines()[0]}")
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=shots / "teacher.png", full_page=True)
    finally:
        await context.close()


# --- the run --------------------------------------------------------------------------------------------------


def say(what: str) -> None:
    """Where a run of several minutes is, on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def browser_pids() -> list[int]:
    """This script's descendants that are not Python (the server and the jobs are): Playwright's driver and
    Chromium's processes."""
    found = []
    for pid in descendants(os.getpid()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if "python" not in Path(command).name:
            found.append(pid)
    return found


async def sample(server: int, jobs: Jobs, seen: dict, stop: asyncio.Event) -> None:
    """Every second: the server's memory (for its peak) and each job process's CPU seconds (for the jobs' share)."""
    while not stop.is_set():
        seen["peak"] = max(seen.get("peak", 0.0), rss_mib(server))
        for job in jobs.manager.jobs():
            if job.pid:
                tree = [job.pid, *descendants(job.pid)]
                for pid in tree:
                    seen.setdefault("jobs", {})[pid] = max(seen.get("jobs", {}).get(pid, 0.0),
                                                           process_cpu_seconds([pid]))
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def run(args: argparse.Namespace, home: Path, data_dir: Path, photos: dict[int, Path]) -> dict:
    password = secrets.token_urlsafe(12)
    env = {"CONVNETS_SHARED": "1", "CONVNETS_DATA_ROOTS": str(data_dir), "CONVNETS_DATA": str(data_dir),
           "CONVNETS_TRAINER_PASSWORD_HASH": sharing.hash_password(password), "CONVNETS_HOME": str(home),
           "CONVNETS_OFFLINE": "1"}
    os.environ.update(env)  # this script's own store, job manager and sharing rules are the server's
    os.environ.pop("CONVNETS_ZOO", None)
    jobs = Jobs(JobManager(RunStore()), sharing.read_settings(), data_dir, args.epochs)
    deadline = time.monotonic() + args.job_timeout
    with dashboard(home, shipped_zoo=True, env=env) as (server, url):
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                sessions = await asyncio.gather(*(ClassSession.open(browser, url, args.timeout, index=i,
                                                                    photo_path=photos.get(i), shots=args.shots)
                                                  for i in range(args.sessions)))
                say(f"{len(sessions)} sessions open")
                await asyncio.gather(*(s.cycles(i, 1, timed=False) for i, s in enumerate(sessions)))
                await sessions[0].visit_photos()  # the Photo page's models load before memory is first read
                memory = {"start": rss_mib(server.pid)}
                seen: dict = {}
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample(server.pid, jobs, seen, stop))
                server_before, machine_before = cpu_seconds(server.pid), machine_cpu_seconds()
                browsers_before, wall_before = process_cpu_seconds(browser_pids()), time.monotonic()
                starting = asyncio.create_task(jobs.start(deadline))
                say("warmed up; the timed cycles and the jobs begin")
                await asyncio.gather(*(s.class_cycles(i + 1, args.cycles) for i, s in enumerate(sessions)))
                say(f"the timed cycles took {time.monotonic() - wall_before:,.0f} s; waiting for the jobs")
                cpu = {"server": cpu_seconds(server.pid) - server_before,
                       "machine": machine_cpu_seconds() - machine_before,
                       "browsers": process_cpu_seconds(browser_pids()) - browsers_before,
                       "wall": time.monotonic() - wall_before}
                memory["end"] = rss_mib(server.pid)
                stop.set()
                await sampler
                cpu["jobs"] = sum(seen.get("jobs", {}).values())
                memory["peak"] = max(seen.get("peak", 0.0), memory["end"])
                await starting
                await jobs.finish(jobs.training, deadline)
                if jobs.epochs_at_cancel is not None:
                    say("the teacher resumes the cancelled job")
                    await resume_from_train_page(browser, url, password, jobs, args.timeout, args.shots)
                    if jobs.resume_offered:
                        await jobs.finish([jobs.cancelled], deadline)
            finally:
                await browser.close()
    return {"sessions": sessions, "cpu": cpu, "memory": memory, "jobs": jobs}


# --- the checks -----------------------------------------------------------------------------------------------


def grey(blob: bytes, step: int) -> np.ndarray:
    """An enlarged image the page shows, back at the models' side (one pixel from the middle of each block)."""
    image = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"), np.float64)
    return image[step // 2 :: step, step // 2 :: step]


def unit(rows: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to length 1: their dot products are correlations."""
    rows = rows.reshape(len(rows), -1) - rows.reshape(len(rows), -1).mean(1, keepdims=True)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


def card_problems(cards: list[str], expected: list[Prediction]) -> list[str]:
    """What a page's cards say that the core's predictions for the same input do not: a card of a run the core does
    not know, another answer, another probability (the page rounds to 0.1 %)."""
    by_name = {p.name: p for p in expected}
    problems = []
    for card in cards:
        lines = [line.strip() for line in card.splitlines() if line.strip()]
        name, answer, rest = lines[0], lines[1], lines[2:]
        p = by_name.get(name)
        if p is None:
            problems.append(f"a card for {name}, which the core does not know")
            continue
        match = re.match(r"([\d.]+)% sure", rest[0]) if rest else None
        match = match or (re.match(rf"{re.escape(answer)} · ([\d.]+)%", rest[0]) if rest else None)
        if answer not in p.classes or match is None:
            problems.append(f"{name}: unreadable card {lines}")
            continue
        shown = float(match.group(1)) / 100
        wanted = p.probabilities[p.classes.index(answer)]
        if wanted < p.probability - 0.002 or abs(shown - wanted) > 0.0015:
            problems.append(f"{name} said {answer} {shown:.1%}; the core says {p.class_name} {p.probability:.1%}")
    return problems


def check_strokes(sessions: list[ClassSession], timeouts: int, expected: int) -> list[dict]:
    """Every stroke answered, with its own drawing's input and the core's answers for it."""
    answers = [(s.index, a) for s in sessions for a in s.answers]
    side = get_dataset(DRAWN).size
    drawn = [prepare_drawing(np.asarray(Image.open(io.BytesIO(a.canvas))), on_black=True, side=side).image
             for _, a in answers]
    unreadable = sum(d is None for d in drawn)
    drawn = [d if d is not None else np.zeros((side, side), np.uint8) for d in drawn]
    shown = [grey(a.shown, 4)[..., 0] for _, a in answers]
    likeness = unit(np.stack(shown).astype(float)) @ unit(np.stack(drawn).astype(float)).T
    own = np.diag(likeness).copy()
    np.fill_diagonal(likeness, -1)
    others = likeness.max(1)
    predictions = predict(drawn, DRAWN) if drawn else []
    wrong_cards = [(i, problem) for (i, a), expected in zip(answers, predictions)
                   for problem in card_problems(a.cards, expected)]
    empty = sum(not a.cards for _, a in answers)
    mixed = int(np.sum((own < OWN_LIKENESS) | (others >= own)))
    page_errors = sum(a.errors for _, a in answers)
    stuck = [f"session {s.index} stuck: {s.stuck}" for s in sessions if s.stuck]
    stuck += [f"session {s.index}'s {loss}" for s in sessions for loss in s.losses]
    rows = [
        {"check": "every stroke answered",
         "ok": len(answers) == expected and timeouts == 0 and page_errors == 0 and empty == 0 and not stuck,
         "detail": f"{len(answers)} answers of {expected} strokes, {timeouts} timeouts, {page_errors} errors on the "
                   f"page, {empty} without cards" + "".join(f"; {p}" for p in stuck[:3])},
        {"check": "each answer is the session's own drawing", "ok": mixed == 0 and unreadable == 0 and bool(answers),
         "detail": f"input shown vs own canvas: correlation ≥ {own.min() if answers else 0:.4f}; the closest other "
                   f"stroke ≤ {others.max() if answers else 0:.4f}; {mixed} mixed up"},
        {"check": "each card says what the core predicts for it", "ok": not wrong_cards and bool(answers),
         "detail": f"{sum(len(a.cards) for _, a in answers)} cards, {len(wrong_cards)} differ"
                   + "".join(f"; session {i}: {p}" for i, p in wrong_cards[:3])},
    ]
    return rows


def check_photos(sessions: list[ClassSession]) -> list[dict]:
    """Each uploader sees its own photo and the core's answers for it; nobody sees anyone else's."""
    side = get_dataset(PHOTOGRAPHED).size
    names = {s.photo_path.name: s.photo_path for s in sessions if s.photo_path is not None}
    prepared = {name: prepare_upload(path.read_bytes(), side) for name, path in names.items()}
    expected = dict(zip(prepared, predict(list(prepared.values()), PHOTOGRAPHED))) if prepared else {}
    own_problems, leaks, visits = [], [], 0
    for s in sessions:
        for visit in s.visits:
            visits += 1
            foreign = [n for n in names if n != visit.uploaded and n in visit.text]
            if foreign or (visit.uploaded is None and visit.shown is not None):
                leaks.append(f"session {s.index} saw {', '.join(foreign) or 'a photo'}")
            if visit.uploaded is None:
                continue
            if visit.errors or visit.shown is None or not visit.captions[:1] or \
                    not visit.captions[0].startswith(visit.uploaded):
                own_problems.append(f"session {s.index}: no photo of its own shown ({visit.captions})")
                continue
            seen = grey(visit.shown, 8)
            nearest = min(prepared, key=lambda n: np.abs(prepared[n].astype(float) - seen).mean())
            if nearest != visit.uploaded or np.abs(prepared[nearest].astype(float) - seen).mean() > 8:
                own_problems.append(f"session {s.index}: the photo shown is closest to {nearest}")
            own_problems += [f"session {s.index}: {p}" for p in card_problems(visit.cards, expected[visit.uploaded])]
    uploads = sum(v.uploaded is not None for s in sessions for v in s.visits)
    return [{"check": "each uploader sees its own photo and the core's answers", "ok": not own_problems and uploads > 0,
             "detail": f"{uploads} uploads" + "".join(f"; {p}" for p in own_problems[:3])},
            {"check": "no page shows another session's photo", "ok": not leaks and visits > 0,
             "detail": f"{visits} visits to the Photo page" + "".join(f"; {p}" for p in leaks[:3])}]


def check_jobs(jobs: Jobs) -> list[dict]:
    rows = jobs.outcomes()
    trained = [r for r in rows if r["role"] == "trains"]
    cancelled = jobs.cancelled
    resumed = jobs.job(cancelled) if cancelled else None
    run = jobs.manager.store.get(cancelled.run_id) if cancelled else None
    history = run.history() if run is not None else []
    kept = bool(jobs.history_at_cancel) and history[: len(jobs.history_at_cancel)] == jobs.history_at_cancel
    return [
        {"check": "the two jobs finish", "ok": len(trained) == 2 and all(r["state"] == State.FINISHED for r in trained),
         "detail": ", ".join(f"{r['job']}: {r['state']}" for r in trained)},
        {"check": "the cancelled job ends cancelled, with Resume, and resumes",
         "ok": jobs.epochs_at_cancel is not None and 1 <= jobs.epochs_at_cancel < cancelled.recipe.epochs
               and jobs.resume_offered and resumed is not None and resumed.state == State.FINISHED and kept,
         "detail": f"cancelled after {jobs.epochs_at_cancel} of {cancelled.recipe.epochs if cancelled else '?'} "
                   f"epochs; Resume on its card: {'yes' if jobs.resume_offered else 'no'}; then "
                   f"{resumed.state if resumed else 'missing'}, its first epochs "
                   f"{'kept' if kept else 'not kept'}" + "".join(f"; {n}" for n in jobs.notes)},
    ]


# --- the report -----------------------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:,.0f} ms"


def report(args: argparse.Namespace, result: dict) -> tuple[dict, str]:
    sessions, cpu, memory, jobs = result["sessions"], result["cpu"], result["memory"], result["jobs"]
    times = [t for s in sessions for t in s.seconds]
    timeouts = sum(s.timeouts for s in sessions)
    p50, p95, worst = np.percentile(times, [50, 95, 100]).tolist() if times else (None, None, None)
    strokes = args.sessions * args.cycles
    growth = memory["end"] / memory["start"] - 1
    checks = [*check_strokes(sessions, timeouts, args.sessions * (args.cycles + 1)), *check_photos(sessions),
              *check_jobs(jobs),
              {"check": f"server memory grows ≤ {MEMORY_GROWTH:.0%} over the cycles", "ok": growth <= MEMORY_GROWTH,
               "detail": f"{memory['start']:,.0f} → {memory['end']:,.0f} MiB ({growth:+.1%}; peak "
                         f"{memory['peak']:,.0f} MiB)"}]
    used = max(cpu["machine"], 1e-9)
    figures = {"sessions": args.sessions, "cycles": args.cycles, "strokes timed": len(times), "timeouts": timeouts,
               "p50 s": p50, "p95 s": p95, "max s": worst, "server cpu s per stroke": cpu["server"] / max(strokes, 1),
               "machine busy": used / (os.cpu_count() * cpu["wall"]), "server share": cpu["server"] / used,
               "browsers share": cpu["browsers"] / used, "jobs share": cpu["jobs"] / used,
               "timed phase s": cpu["wall"], "memory MiB": memory}
    lines = [f"{os.cpu_count()} CPU cores; {args.sessions} sessions × {args.cycles} timed cycles after one warm-up "
             f"(a photo visit halfway); {timeouts} timeouts", "",
             "| p50 | p95 | max | server CPU per stroke | machine busy | server's share | browsers' share | "
             "jobs' share | server RSS start → peak → end | timed phase |",
             "|" + "---:|" * 10,
             f"| {ms(p50)} | {ms(p95)} | {ms(worst)} | {ms(figures['server cpu s per stroke'])} | "
             f"{figures['machine busy']:.0%} | {figures['server share']:.0%} | {figures['browsers share']:.0%} | "
             f"{figures['jobs share']:.0%} | {memory['start']:,.0f} → {memory['peak']:,.0f} → "
             f"{memory['end']:,.0f} MiB ({growth:+.1%}) | {cpu['wall']:.0f} s |", "",
             f"| job | role | epochs | outcome | epochs done | when (the timed phase: 0 to {cpu['wall']:,.0f} s) |",
             "|---|---|---:|---|---:|---|",
             *(f"| {r['job']} | {r['role']} | {r['epochs']} | {r['state']} | {r['epochs done']} | {r['timeline']} |"
               for r in jobs.outcomes()),
             "", "| check | result | detail |", "|---|---|---|",
             *(f"| {c['check']} | {'pass' if c['ok'] else 'FAIL'} | {c['detail']} |" for c in checks)]
    return {"figures": figures, "jobs": jobs.outcomes(), "checks": checks}, "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30, help="viewers drawing at once")
    parser.add_argument("--cycles", type=int, default=30, help="timed draw cycles per session")
    parser.add_argument("--data-dir", help="a data folder with MNIST for the jobs (default: printed digits written "
                        "into a temporary folder)")
    parser.add_argument("--train-images", type=int, default=30000, help="training images of the printed digits")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the two jobs that train to the end (the "
                        "cancelled one has one more)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds a stroke's predictions (or any "
                        "other step of a session) may take before the run counts it as lost")
    parser.add_argument("--job-timeout", type=float, default=1200, help="seconds from the start for the jobs")
    parser.add_argument("--shots", type=Path, help="a folder for a screenshot of the teacher's page if it fails")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.sessions < 2 or args.cycles < 2 or args.epochs < 1:
        parser.error("--sessions and --cycles must be at least 2, --epochs at least 1")
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"error: this benchmark drives {CHROMIUM}, which is missing (apt-get install chromium)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that a killed benchmark still stops its server
    with tempfile.TemporaryDirectory(prefix="class-load-") as scratch:
        scratch = Path(scratch)
        data_dir = Path(args.data_dir).resolve() if args.data_dir else scratch / "data"
        if not args.data_dir:
            write_digits(data_dir, args.train_images, max(1000, args.train_images // 10))
        photos = {}
        for i in range(0, args.sessions, 2):  # every other session uploads a photo of its own
            photos[i] = scratch / PHOTO.format(i)
            photos[i].write_bytes(photo(i))
        try:
            result = asyncio.run(run(args, scratch / "home", data_dir, photos))
        except PlaywrightTimeout as stuck:
            raise SystemExit(f"error: a session got stuck: {stuck.message.splitlines()[0]}") from None
        summary, text = report(args, result)
    print(json.dumps(summary, default=str) if args.json else text)
    sys.exit(0 if all(c["ok"] for c in summary["checks"]) else 1)


if __name__ == "__main__":
    main()
