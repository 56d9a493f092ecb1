"""What the load benchmarks share: a dashboard server of their own, browser sessions drawing on its Draw page, and
the server's CPU time and memory read from /proc.

`draw_load.py` times N sessions drawing; `class_load.py` has a class of them draw (and upload photos) while jobs
train, and checks that nothing is lost or mixed up. Both drive one headless Chromium (Playwright), a browser context
per session, so that sessions share no cookies and each is a Streamlit session of its own.
"""

from __future__ import annotations

import asyncio
import atexit
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.async_api import Browser, Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dashboard.serve import ServerError, serving  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# Equal treatment for every session's window: Chromium otherwise throttles the timers and rendering of pages it
# deems in the background, which would slow some sessions for the browser's sake, not the server's.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                 "--disable-backgrounding-occluded-windows"]
READY = "[data-testid=stApp][data-test-script-state=notRunning]"


def answered(every_card: str) -> str:
    """The JavaScript of a page that has answered: the rerun finished, at least one card (a model's metric), the
    input image shown, and ``every_card`` true of the page's elements (`cards` holds their number)."""
    return """() => {
    const main = document.querySelector('[data-testid=stMain]');
    const app = document.querySelector('[data-testid=stApp]');
    const cards = main.querySelectorAll('[data-testid=stMetric]').length;
    return app.getAttribute('data-test-script-state') === 'notRunning' && cards > 0
        && main.querySelector('[data-testid=stImage] img') !== null
        && """ + every_card + """;
}"""


# The predictions are shown: the fragment's rerun has finished with the models' input and every card's answer and
# probability chart on the page. Right after a Clear none of them is there, so this cannot be the last stroke's.
SHOWN = answered("main.querySelectorAll('.js-plotly-plot').length >= cards")
# The Photo page has answered an upload: every card with its top classes, the photo shown.
PHOTO_SHOWN = answered("main.querySelectorAll('[data-testid=stProgress]').length >= 3 * cards")
SERVER_START_S = 300  # Streamlit imports for seconds, more on a busy machine
STEP_S = 300  # any other step of a session (opening the page, clearing): past this the server is stuck, not slow
POLL_MS = 20  # how often the page checks for the predictions: the resolution of every figure
Shape = list[tuple[float, float]]  # a stroke through points given in fractions of the canvas's side
# Digits as strokes, so that a resized canvas still fits them.
DIGITS: dict[str, Shape] = {
    "1": [(0.5, 0.12), (0.5, 0.88)],
    "7": [(0.2, 0.18), (0.8, 0.18), (0.4, 0.85)],
    "2": [(0.25, 0.28), (0.5, 0.12), (0.75, 0.28), (0.25, 0.85), (0.8, 0.85)],
    "0": [(0.5 + 0.25 * np.sin(a), 0.5 - 0.36 * np.cos(a)) for a in np.linspace(0, 2 * np.pi, 17)],
}


@contextmanager
def dashboard(home: Path, shipped_zoo: bool, env: dict[str, str] | None = None,
              graphs: bool = True) -> Iterator[tuple[subprocess.Popen, str]]:
    """A dashboard server of its own on a free port, with downloads off and ``env`` added to the environment, its
    home holding the finished runs' ONNX graphs (``with_graphs``), or, without ``graphs``, none and no background
    conversion (PyTorch answers: the baseline); yields the process and its URL. Stopped on the way out, its log's
    tail shown if it failed."""
    env = {**os.environ, "CONVNETS_HOME": str(home), "CONVNETS_OFFLINE": "1", **(env or {})}
    if shipped_zoo:
        env.pop("CONVNETS_ZOO", None)  # unset: the store reads the repository's zoo/
    if graphs:
        with_graphs(home, env)
    else:
        env["CONVNETS_BACKGROUND_CONVERSION"] = "0"
    with tempfile.TemporaryFile() as log:
        server = None
        try:
            with serving(env, log, SERVER_START_S) as (server, url):
                yield server, url
        except ServerError as e:
            raise SystemExit(f"error: {e} (see its log above)") from None
        finally:
            if server is None or server.returncode not in (0, -signal.SIGTERM):
                log.seek(0)
                print(log.read().decode(errors="replace")[-4000:], file=sys.stderr)


_converted: dict[str, Path] = {}  # the zoo a server reads -> a copy of the graphs converted for it first
CONVERSIONS: list[dict] = []  # what each conversion took, for the report


def with_graphs(home: Path, env: dict[str, str]) -> None:
    """Convert the finished runs to ONNX graphs in ``home`` before its server starts (`python -m convnets
    prepare-inference`; copied from the first server's home of this benchmark where its zoo is the same), which the
    dashboard would do in the background after the first click: so the timed clicks measure the pages as they run
    from then on, and the one-off conversion is a figure of its own (CONVERSIONS)."""
    zoo = env.get("CONVNETS_ZOO", "shipped")
    if zoo in _converted:
        shutil.copytree(_converted[zoo], home / "inference", dirs_exist_ok=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "convnets", "prepare-inference", "--json"], env=env, text=True,
                          capture_output=True, cwd=Path(__file__).resolve().parents[1])
    records = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else []
    if done.returncode != 0:
        print(f"warning: some runs were not converted, PyTorch answers for them: {done.stderr[-2000:]}",
              file=sys.stderr)
    if records:
        CONVERSIONS.append({"runs": len(records), "seconds": time.perf_counter() - start})
    if zoo not in _converted and (home / "inference").is_dir():
        _converted[zoo] = Path(tempfile.mkdtemp(prefix="graphs-"))
        atexit.register(shutil.rmtree, _converted[zoo], ignore_errors=True)
        shutil.copytree(home / "inference", _converted[zoo], dirs_exist_ok=True)


def conversions_line() -> str:
    """The one-off conversions in words, under a benchmark's table."""
    done = " and ".join(f"{c['runs']} runs in {c['seconds']:.0f} s" for c in CONVERSIONS) or "none needed"
    return (f"ONNX graphs converted before the servers started (the dashboard does it in the background after the "
            f"first click, once per home): {done}")


def descendants(pid: int) -> list[int]:
    """Every process under pid (a training job started from the Train page would be one), read from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        except OSError:  # the process ended meanwhile
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def process_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system) these live processes have used, each on its own, from /proc/<pid>/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) the process and its live children have used."""
    return process_cpu_seconds([pid, *descendants(pid)])


def machine_cpu_seconds() -> float:
    """CPU seconds every process has used since boot (user + nice + system), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return sum(int(v) for v in fields[:3]) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of the server process and its children, in MiB (VmRSS from /proc/<pid>/status)."""
    total_kib = 0
    for p in [pid, *descendants(pid)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total_kib += int(match.group(1)) if match else 0
    return total_kib / 1024


async def stroke(page: Page, box: dict, shape: Shape) -> float:
    """Draw one shape as a single stroke; returns the moment the button was released."""
    side = box["width"]
    points = [(box["x"] + x * side, box["y"] + y * side) for x, y in shape]
    await page.mouse.move(*points[0])
    await page.mouse.down()
    for x, y in points[1:]:
        await page.mouse.move(x, y, steps=8)
    await page.mouse.up()
    return time.perf_counter()


class Session:
    """One browser session on the Draw page, and the seconds it measured."""

    def __init__(self, page: Page, url: str, limit_s: float) -> None:
        self.page, self.url, self.limit_s = page, url, limit_s
        self.box: dict = {}
        self.seconds: list[float] = []
        self.timeouts = 0

    @classmethod
    async def open(cls, browser: Browser, url: str, limit_s: float, **extra: object) -> Session:
        """A browser context of its own: no shared cookies, so the server sees a session of its own. ``extra``
        goes to a subclass's constructor."""
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(STEP_S * 1000)
        session = cls(await context.new_page(), url, limit_s, **extra)
        await session.open_draw_page()
        return session

    async def open_draw_page(self) -> None:
        await self.page.goto(f"{self.url}/draw")
        await self.canvas_ready()

    async def canvas_ready(self) -> None:
        """Wait for the mounted canvas and for the rerun its mounting causes (it reports its empty drawing), so
        that the timed stroke's rerun does not queue behind it."""
        canvas = self.page.locator("canvas").last  # the upper of the canvas's two layers, which takes the mouse
        await canvas.wait_for()
        await self.page.wait_for_timeout(500)
        await self.page.wait_for_selector(READY)
        self.box = await canvas.bounding_box()

    def shape(self, n: int) -> Shape:
        """The nth drawing of this session: the digits in turn."""
        names = list(DIGITS)
        return DIGITS[names[n % len(names)]]

    async def answered(self, shape: Shape, seconds: float) -> None:
        """Called with the predictions on the page, before Clear: where a subclass reads what it was answered."""

    async def lost(self, shape: Shape) -> None:
        """Called when a stroke's predictions did not show in time, before the page is opened afresh: where a
        subclass notes what the page showed instead."""

    async def draw(self, shape: Shape) -> float:
        """Draw, wait for the predictions, clear: the seconds from the stroke's release to the predictions."""
        released = await stroke(self.page, self.box, shape)
        await self.page.wait_for_function(SHOWN, polling=POLL_MS, timeout=self.limit_s * 1000)
        seconds = time.perf_counter() - released
        await self.answered(shape, seconds)
        await self.page.get_by_role("button", name=re.compile("Clear")).click()
        await self.page.get_by_text("nothing drawn yet").wait_for()
        await self.canvas_ready()
        return seconds

    async def cycles(self, first: int, count: int, timed: bool = True) -> None:
        """Draw this session's shapes from the `first`th, so that sessions side by side draw different ones. A
        stroke whose predictions do not show within the limit is counted, and the page opened afresh."""
        for cycle in range(count):
            try:
                seconds = await self.draw(self.shape(first + cycle))
            except PlaywrightTimeout:
                if timed:
                    self.timeouts += 1
                await self.lost(self.shape(first + cycle))
                await self.open_draw_page()
                continue
            if timed:
                self.seconds.append(seconds)


def photo(index: int) -> bytes:
    """A photo nobody else uploads: a grid of random colours drawn from the session's number."""
    grid = np.random.default_rng(1000 + index).integers(0, 256, (6, 6, 3)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grid).resize((192, 192), Image.Resampling.NEAREST).save(buffer, "PNG")
    return buffer.getvalue()


# --- the server's CPU over a timed phase, and the tables of draw_load.py and photo_load.py -------------------------

IDLE_S = 10.0  # after the warm-up, the sessions open and still: what the server spends when nobody acts


async def idle_cpu_rate(pid: int) -> float:
    """The server's CPU seconds per second over IDLE_S seconds of nobody doing anything: Streamlit's polling of its
    config and secrets files and the like, which a timed phase's per-action figure holds too."""
    before = cpu_seconds(pid)
    await asyncio.sleep(IDLE_S)
    return (cpu_seconds(pid) - before) / IDLE_S


async def timed_cpu(pid: int, phase: Callable[[], Awaitable], unit: str, count: int) -> dict:
    """Measure the idle rate, then start ``phase()`` (``count`` actions, each a ``unit``) and say what the server
    spent on each: its CPU seconds per action, the same with its idle rate deducted, and its share of all the CPU
    the machine used meanwhile."""
    idle_rate = await idle_cpu_rate(pid)
    server_before, machine_before, start = cpu_seconds(pid), machine_cpu_seconds(), time.monotonic()
    await phase()
    server_cpu, machine_cpu = cpu_seconds(pid) - server_before, machine_cpu_seconds() - machine_before
    busy_s, count = time.monotonic() - start, max(count, 1)
    return {f"server cpu s per {unit}": server_cpu / count, "server idle cpu s per s": idle_rate,
            f"server cpu s per {unit}, idle deducted": max(server_cpu - idle_rate * busy_s, 0) / count,
            "server cpu share": server_cpu / max(machine_cpu, 1e-9)}


def percentiles(seconds: list[float]) -> dict:
    """p50, p95 and the largest; None where nothing was answered in time."""
    p50, p95, worst = np.percentile(seconds, [50, 95, 100]).tolist() if seconds else (None, None, None)
    return {"p50 s": p50, "p95 s": p95, "max s": worst}


def milliseconds(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:,.0f} ms"


def load_table(results: list[dict], unit: str) -> str:
    """One row per number of sessions: latencies, the server's CPU per ``unit``, load and memory."""
    memory_keys = list(results[0]["server rss MiB"])
    by = ["answered by"] if "answered by" in results[0] else []  # a benchmark with a baseline says which row is which
    head = [*by, "sessions", f"{unit}s timed", "timeouts", "p50", "p95", "max", f"server CPU per {unit}",
            "the same, idle deducted", "server CPU idle", "server's share of the CPU used", "load avg",
            *(f"server RSS {k}" for k in memory_keys)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in results:
        row = [*(r[k] for k in by), str(r["sessions"]), str(r[f"{unit}s timed"]), str(r["timeouts"]),
               *(milliseconds(r[k]) for k in ("p50 s", "p95 s", "max s", f"server cpu s per {unit}",
                                               f"server cpu s per {unit}, idle deducted")),
               f"{r['server idle cpu s per s'] * 1000:,.0f} ms/s", f"{r['server cpu share']:.0%}",
               f"{r['load average before']:.1f} → {r['load average after']:.1f}",
               *(f"{r['server rss MiB'][k]:,.0f} MiB" for k in memory_keys)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
