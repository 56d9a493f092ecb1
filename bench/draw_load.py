"""Drawing under load: N browser sessions draw digits at once on the Draw page of one dashboard server.

For each N it starts `streamlit run dashboard/app.py` on a free port (by default on the shipped zoo, whose three
MNIST models answer every stroke, with an empty temporary home and downloads off), opens N sessions in one
headless Chromium (a browser context each, so they share no cookies and each is its own Streamlit session) and
has every session draw digits in cycles: draw, wait until the predictions are shown, clear. After one untimed
warm-up cycle per session, all sessions start their timed cycles together. It reports, per N, the p50 and p95
of the time from the stroke's release (mouse up) to the predictions shown (the script's rerun finished with
the models' input and every model's card, chart included, on the page), the server's CPU seconds per stroke (user
+ system of the streamlit process and its children, from /proc, over the timed cycles, a cycle being a stroke and its
Clear) with its share of all the CPU the machine used meanwhile (the rest is mostly the browsers), and the server's
resident memory (VmRSS of the streamlit process and its children) at the start, after the warm-up and after the
timed cycles.

The browser runs on the same machine as the server, so the figures are the whole machine's answer: on two cores
N Chromium pages rendering their charts compete with the server for the CPU, as they would on a laptop that
serves its own dashboard. A cycle whose predictions do not show within --timeout counts as timed out (the
session reopens the page and goes on) instead of stopping the run: a slow machine gives slow numbers.

    python bench/draw_load.py [--sessions 1 4 8] [--cycles 20] [--home DIR] [--timeout 120] [--json]
"""

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
from playwright.async_api import Browser, Page, async_playwright
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
# The predictions are shown: the fragment's rerun has finished with the models' input and every card's answer and
# probability chart on the page. Right after a Clear none of them is there, so this cannot be the last stroke's.
SHOWN = """() => {
    const main = document.querySelector('[data-testid=stMain]');
    const app = document.querySelector('[data-testid=stApp]');
    const cards = main.querySelectorAll('[data-testid=stMetric]').length;
    return app.getAttribute('data-test-script-state') === 'notRunning' && cards > 0
        && main.querySelector('[data-testid=stImage] img') !== null
        && main.querySelectorAll('.js-plotly-plot').length >= cards;
}"""
SERVER_START_S = 300  # Streamlit imports for seconds, more on a busy machine
STEP_S = 300  # any other step of a session (opening the page, clearing): past this the server is stuck, not slow
POLL_MS = 20  # how often the page checks for the predictions: the resolution of every figure
# Digits as strokes through points given in fractions of the canvas's side, so a resized canvas still fits them.
DIGITS = {
    "1": [(0.5, 0.12), (0.5, 0.88)],
    "7": [(0.2, 0.18), (0.8, 0.18), (0.4, 0.85)],
    "2": [(0.25, 0.28), (0.5, 0.12), (0.75, 0.28), (0.25, 0.85), (0.8, 0.85)],
    "0": [(0.5 + 0.25 * np.sin(a), 0.5 - 0.36 * np.cos(a)) for a in np.linspace(0, 2 * np.pi, 17)],
}


@contextmanager
def dashboard(home: Path, shipped_zoo: bool) -> Iterator[tuple[subprocess.Popen, str]]:
    """A dashboard server of its own on a free port; stopped on the way out, its log's tail shown if it failed."""
    env = {**os.environ, "CONVNETS_HOME": str(home), "CONVNETS_OFFLINE": "1"}
    if shipped_zoo:
        env.pop("CONVNETS_ZOO", None)  # unset: the store reads the repository's zoo/
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


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) the process and its live children have used, from /proc/<pid>/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


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


async def stroke(page: Page, box: dict, digit: str) -> float:
    """Draw one digit as a single stroke; returns the moment the button was released."""
    side = box["width"]
    points = [(box["x"] + x * side, box["y"] + y * side) for x, y in DIGITS[digit]]
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
    async def open(cls, browser: Browser, url: str, limit_s: float) -> "Session":
        """A browser context of its own: no shared cookies, so the server sees a session of its own."""
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(STEP_S * 1000)
        session = cls(await context.new_page(), url, limit_s)
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

    async def draw(self, digit: str) -> float:
        """Draw, wait for the predictions, clear: the seconds from the stroke's release to the predictions."""
        released = await stroke(self.page, self.box, digit)
        await self.page.wait_for_function(SHOWN, polling=POLL_MS, timeout=self.limit_s * 1000)
        seconds = time.perf_counter() - released
        await self.page.get_by_role("button", name=re.compile("Clear")).click()
        await self.page.get_by_text("nothing drawn yet").wait_for()
        await self.canvas_ready()
        return seconds

    async def cycles(self, first: int, count: int, timed: bool = True) -> None:
        """Cycle through the digits from the `first`th, so that sessions side by side draw different ones. A
        stroke whose predictions do not show within the limit is counted, and the page opened afresh."""
        names = list(DIGITS)
        for cycle in range(count):
            try:
                seconds = await self.draw(names[(first + cycle) % len(names)])
            except PlaywrightTimeout:
                if timed:
                    self.timeouts += 1
                await self.open_draw_page()
                continue
            if timed:
                self.seconds.append(seconds)


async def load(browser: Browser, url: str, server: subprocess.Popen, n: int, cycles: int, limit_s: float) -> dict:
    """N sessions: opened and warmed up together, then timed together; memory between the phases."""
    memory = {"start": rss_mib(server.pid)}
    sessions = await asyncio.gather(*(Session.open(browser, url, limit_s) for _ in range(n)))
    await asyncio.gather(*(s.cycles(i, 1, timed=False) for i, s in enumerate(sessions)))
    memory["after warm-up"] = rss_mib(server.pid)
    server_before, machine_before = cpu_seconds(server.pid), machine_cpu_seconds()
    await asyncio.gather(*(s.cycles(i + 1, cycles) for i, s in enumerate(sessions)))
    server_cpu, machine_cpu = cpu_seconds(server.pid) - server_before, machine_cpu_seconds() - machine_before
    memory[f"after {cycles} cycles"] = rss_mib(server.pid)
    await asyncio.gather(*(s.page.context.close() for s in sessions))
    return {**summary(n, cycles, sessions, memory), "server cpu s per stroke": server_cpu / max(n * cycles, 1),
            "server cpu share": server_cpu / max(machine_cpu, 1e-9)}


def summary(n: int, cycles: int, sessions: list[Session], memory: dict) -> dict:
    """Percentiles over every session's strokes together; None where no stroke was answered in time."""
    times = [t for s in sessions for t in s.seconds]
    p50, p95, worst = np.percentile(times, [50, 95, 100]).tolist() if times else (None, None, None)
    return {"sessions": n, "cycles per session": cycles, "strokes timed": len(times),
            "timeouts": sum(s.timeouts for s in sessions), "p50 s": p50, "p95 s": p95, "max s": worst,
            "server rss MiB": memory, "per session": [{"seconds": s.seconds, "timeouts": s.timeouts} for s in sessions]}


async def measure(n: int, args: argparse.Namespace) -> dict:
    """One fresh server per N, so each N's memory starts from the same place."""
    with nullcontext(args.home) if args.home else tempfile.TemporaryDirectory(prefix="draw-load-") as home:
        load_before = os.getloadavg()[0]
        with dashboard(Path(home), shipped_zoo=args.home is None) as (server, url):
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    result = await load(browser, url, server, n, args.cycles, args.timeout)
                finally:
                    await browser.close()
        return {**result, "load average before": load_before, "load average after": os.getloadavg()[0]}


def milliseconds(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:,.0f} ms"


def table(results: list[dict]) -> str:
    memory_keys = list(results[0]["server rss MiB"])
    head = ["sessions", "strokes timed", "timeouts", "p50", "p95", "max", "server CPU per stroke",
            "server's share of the CPU used", "load avg", *(f"server RSS {k}" for k in memory_keys)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in results:
        row = [str(r["sessions"]), str(r["strokes timed"]), str(r["timeouts"]),
               *(milliseconds(r[k]) for k in ("p50 s", "p95 s", "max s", "server cpu s per stroke")),
               f"{r['server cpu share']:.0%}",
               f"{r['load average before']:.1f} → {r['load average after']:.1f}",
               *(f"{r['server rss MiB'][k]:,.0f} MiB" for k in memory_keys)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 8], help="numbers of sessions to try")
    parser.add_argument("--cycles", type=int, default=20, help="timed draw cycles per session")
    parser.add_argument("--home", help="a store with finished MNIST models to serve (default: the shipped zoo "
                        "with an empty temporary home)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds a stroke's predictions may take "
                        "before the stroke counts as timed out")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if min(args.sessions) < 1 or args.cycles < 1:
        parser.error("--sessions and --cycles must be at least 1")
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"error: this benchmark drives {CHROMIUM}, which is missing (apt-get install chromium)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that a killed benchmark still stops its server
    try:
        results = [asyncio.run(measure(n, args)) for n in args.sessions]
    except PlaywrightTimeout as stuck:
        raise SystemExit(f"error: a session got stuck: {stuck.message.splitlines()[0]}") from None
    if args.json:
        print(json.dumps({"cpu cores": os.cpu_count(), "results": results}))
        return
    print(f"{os.cpu_count()} CPU cores; {args.cycles} timed cycles per session after one warm-up; "
          "seconds from the stroke's release to the predictions shown")
    print(table(results))


if __name__ == "__main__":
    main()
