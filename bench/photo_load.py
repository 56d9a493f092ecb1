"""Photos under load: N browser sessions upload photos at once on the Classify-a-photo page of one dashboard server.

The Photo page's counterpart of `draw_load.py` (issue 38's "<= 100 ms of server CPU per photo with the 12 CIFAR-10
models"). For each N it starts `streamlit run dashboard/app.py` on a free port on the shipped zoo (whose twelve
CIFAR-10 models answer every photo; an empty temporary home, downloads off, the runs' ONNX graphs converted before
it starts, as the dashboard does after a page's first answer: `sessions.with_graphs`), opens N sessions in one headless
Chromium, a browser context each, and has every session upload photos one after another: set the uploader's file,
wait until the page shows that photo (its file name in the caption) with every model's card and top three classes.
Every upload is a photo nobody uploaded before (a grid of random colours), so no cache answers it. After one
untimed upload per session (the first loads the models, once per server process) and 10 s of the sessions open and
still (what the server spends idle), all sessions upload `--uploads` photos each together.

It reports, per N, the p50/p95/largest seconds from setting the file to the answers shown, the server's CPU seconds
per upload (the streamlit process and its children, utime + stime from /proc over the timed uploads, divided by
them), the same with the idle rate deducted, the server's share of the CPU the machine used, and its resident
memory. An upload is a whole-page rerun (the sidebar, the page, twelve forward passes, twelve cards), not a
fragment's as a stroke is.

With the baseline (the default), each N first gets a server without the graphs, PyTorch answering, and the ratio
of the two servers' CPU per upload is printed under the table: these machines' speed drifts by tens of percent
within an hour, so the graphs' gain is read from the same run.

    python bench/photo_load.py [--sessions 1 4] [--uploads 10] [--timeout 120] [--no-baseline] [--json]
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout
from sessions import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CONVERSIONS,
    PHOTO_SHOWN,
    READY,
    STEP_S,
    conversions_line,
    dashboard,
    load_table,
    percentiles,
    photo,
    rss_mib,
    timed_cpu,
)

# The photo named `name` is answered: PHOTO_SHOWN, with that name in the image's caption.
ANSWERED = "name => (" + PHOTO_SHOWN + ")() && [...document.querySelectorAll('[data-testid=stImageCaption]')]" \
           ".some(c => c.innerText.startsWith(name))"


class Uploader:
    """One browser session on the Photo page, the photos it uploaded and the seconds each took."""

    def __init__(self, page: Page, index: int, folder: Path, limit_s: float) -> None:
        self.page, self.index, self.folder, self.limit_s = page, index, folder, limit_s
        self.seconds: list[float] = []
        self.timeouts = 0
        self.sent = 0

    @classmethod
    async def open(cls, browser: Browser, url: str, index: int, folder: Path, limit_s: float) -> "Uploader":
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(STEP_S * 1000)
        page = await context.new_page()
        await page.goto(f"{url}/photo")
        await page.get_by_test_id("stFileUploaderDropzoneInput").wait_for(state="attached")
        await page.wait_for_selector(READY)
        return cls(page, index, folder, limit_s)

    async def upload(self) -> float | None:
        """One photo of this session's own: seconds from setting the file to its answers, None past the limit."""
        self.sent += 1
        path = self.folder / f"photo-{self.index:02d}-{self.sent:03d}.png"
        path.write_bytes(photo(10_000 * self.index + self.sent))
        await self.page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(path)
        start = time.perf_counter()
        try:
            await self.page.wait_for_function(ANSWERED, arg=path.name, polling=20, timeout=self.limit_s * 1000)
        except PlaywrightTimeout:  # counted, and the session goes on
            return None
        return time.perf_counter() - start

    async def uploads(self, count: int, timed: bool = True) -> None:
        for _ in range(count):
            seconds = await self.upload()
            if not timed:
                continue
            if seconds is None:
                self.timeouts += 1
            else:
                self.seconds.append(seconds)


async def load(browser: Browser, url: str, server_pid: int, n: int, uploads: int, limit_s: float,
               folder: Path) -> dict:
    memory = {"start": rss_mib(server_pid)}
    sessions = await asyncio.gather(*(Uploader.open(browser, url, i, folder, limit_s) for i in range(n)))
    await asyncio.gather(*(s.uploads(1, timed=False) for s in sessions))
    memory["after warm-up"] = rss_mib(server_pid)
    def phase() -> asyncio.Future:
        return asyncio.gather(*(s.uploads(uploads) for s in sessions))

    cpu = await timed_cpu(server_pid, phase, "upload", n * uploads)
    memory[f"after {uploads} uploads"] = rss_mib(server_pid)
    times = [t for s in sessions for t in s.seconds]
    return {"sessions": n, "uploads timed": len(times), "timeouts": sum(s.timeouts for s in sessions),
            **percentiles(times), **cpu, "server rss MiB": memory}


ENGINES = {False: "PyTorch", True: "ONNX Runtime"}  # with graphs or without: what answers the uploads


async def measure(n: int, args: argparse.Namespace, graphs: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="photo-load-") as scratch:
        home, folder = Path(scratch) / "home", Path(scratch) / "photos"
        folder.mkdir()
        home.mkdir()
        load_before = os.getloadavg()[0]
        with dashboard(home, shipped_zoo=True, graphs=graphs) as (server, url):
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    result = await load(browser, url, server.pid, n, args.uploads, args.timeout, folder)
                finally:
                    await browser.close()
        return {"answered by": ENGINES[graphs], **result, "load average before": load_before,
                "load average after": os.getloadavg()[0]}


def ratios(results: list[dict]) -> str:
    """The baseline's server CPU per upload over the graphs', per number of sessions, in words."""
    per = {(r["sessions"], r["answered by"]): r["server cpu s per upload"] for r in results}
    found = [f"{n} session{'s' * (n > 1)}: {per[n, ENGINES[False]] / per[n, ENGINES[True]]:.2f}×"
             for n in dict.fromkeys(r["sessions"] for r in results) if (n, ENGINES[False]) in per]
    return f"server CPU per upload, {ENGINES[False]} / {ENGINES[True]}, the same run: " + ", ".join(found) \
        if found else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4], help="numbers of sessions to try")
    parser.add_argument("--uploads", type=int, default=10, help="timed uploads per session")
    parser.add_argument("--timeout", type=float, default=120, help="seconds an upload may take to be answered")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="also a server without the ONNX graphs, PyTorch answering, before each (default: on)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that a killed benchmark still stops its server
    results = [asyncio.run(measure(n, args, graphs)) for n in args.sessions
               for graphs in ([False] if args.baseline else []) + [True]]
    if args.json:
        print(json.dumps({"cpu cores": os.cpu_count(), "conversions": CONVERSIONS, "results": results,
                          "ratios": ratios(results)}, indent=1))
    else:
        print(f"{os.cpu_count()} CPU cores; {args.uploads} timed uploads per session after one warm-up; seconds from "
              "setting the file to the answers shown")
        print(load_table(results, "upload"))
        print(ratios(results))
        print(conversions_line())


if __name__ == "__main__":
    main()
