"""Drawing under load: N browser sessions draw digits at once on the Draw page of one dashboard server.

For each N it starts `streamlit run dashboard/app.py` on a free port (by default on the shipped zoo, whose three
MNIST models answer every stroke, with an empty temporary home and downloads off; its runs' ONNX graphs converted
before it starts, as the dashboard does after a page's first answer: `sessions.with_graphs`), opens N sessions in one
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
import signal
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

from playwright.async_api import Browser, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout
from sessions import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CONVERSIONS,
    Session,
    conversions_line,
    dashboard,
    load_table,
    percentiles,
    rss_mib,
    timed_cpu,
)


async def load(browser: Browser, url: str, server: subprocess.Popen, n: int, cycles: int, limit_s: float) -> dict:
    """N sessions: opened and warmed up together, then timed together; memory between the phases."""
    memory = {"start": rss_mib(server.pid)}
    sessions = await asyncio.gather(*(Session.open(browser, url, limit_s) for _ in range(n)))
    await asyncio.gather(*(s.cycles(i, 1, timed=False) for i, s in enumerate(sessions)))
    memory["after warm-up"] = rss_mib(server.pid)
    def phase() -> asyncio.Future:
        return asyncio.gather(*(s.cycles(i + 1, cycles) for i, s in enumerate(sessions)))

    cpu = await timed_cpu(server.pid, phase, "stroke", n * cycles)
    memory[f"after {cycles} cycles"] = rss_mib(server.pid)
    await asyncio.gather(*(s.page.context.close() for s in sessions))
    times = [t for s in sessions for t in s.seconds]
    return {"sessions": n, "cycles per session": cycles, "strokes timed": len(times),
            "timeouts": sum(s.timeouts for s in sessions), **percentiles(times), **cpu, "server rss MiB": memory,
            "per session": [{"seconds": s.seconds, "timeouts": s.timeouts} for s in sessions]}


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
        print(json.dumps({"cpu cores": os.cpu_count(), "conversions": CONVERSIONS, "results": results}))
        return
    print(f"{os.cpu_count()} CPU cores; {args.cycles} timed cycles per session after one warm-up; "
          "seconds from the stroke's release to the predictions shown")
    print(load_table(results, "stroke"))
    print(conversions_line())


if __name__ == "__main__":
    main()
