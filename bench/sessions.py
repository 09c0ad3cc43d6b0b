"""Many viewers while data flows: ingest rate of a 100,000 rows/s replay, alone and with 20 browser tabs.

    python bench/sessions.py [--sessions 20] [--seconds 60] [--rate 100000] [--alone 30] [--browser idle normal]
                             [--clients chromium|websocket]

A real `streamlit run app.py` server (demo stream on, as shipped) starts its engine
with a first visit, which resumes a paced replay at --rate rows/s from its data folder. The
file repeats a 1,000,000-row block as often as the run needs: a loop's later passes are not
stored again (a source row is stored once), so each row counted must be a row of the file. First
it runs alone for --alone seconds; then --sessions headless Chromium tabs (one
browser, one context each, so one Streamlit session each) move through every page
by the sidebar's links, staying --dwell seconds on each while its live parts refresh
every second, for --seconds.

Ingest is counted after the server stops, from the stored rows' ingest times
(retention off for this stream), so measuring adds no load. Errors: uncaught page
errors in the browser, and Streamlit exception blocks drawn on a page. Chromium
runs on the same two cores as the server. In the `idle` phase it runs at SCHED_IDLE,
so it draws with the CPU the server leaves, as viewers' own machines would; in the
`normal` phase the server also competes with 20 tabs drawing. The server's own CPU
seconds are printed beside each, and the work it served: script and fragment runs finished (from
the websocket messages), page visits drawn by the end of the dwell. `--clients websocket` puts
sessions that ask for the same runs and draw nothing (tests/st_sessions.py) in the tabs' place,
which also gives each visit's time from asking to its run's end.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, machine, make_file, print_table  # noqa: E402

sys.path.insert(0, ROOT)
HEADINGS = {"Overview": "Rivulet"}      # a page's h1 where it is not its title
PAGES = ["Overview", "Sources", "Preprocessing", "Aggregates", "Correlations", "Models", "Export"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")     # utime + stime


class Waits:
    """Seconds the server's threads spent runnable but waiting for a CPU (schedstat's run-queue
    time), summed over its threads, sampled 4 times a second: tells a server starved of CPU from a
    server with nothing to do when both show low CPU seconds. A thread that ends loses at most its
    last quarter second; script threads come and go with each run."""

    def __init__(self, pid: int):
        self.pid, self.seen, self.total = pid, {}, 0.0
        self.samples: list[tuple[float, float]] = []      # (epoch seconds, total so far)
        self.stop, self.lock = threading.Event(), threading.Lock()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(0.25):
            self.sample()

    def sample(self) -> float:
        with self.lock:
            return self._sample()

    def _sample(self) -> float:
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return self.total
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/schedstat") as f:
                    waited = int(f.read().split()[1]) / 1e9
            except (OSError, IndexError, ValueError):
                continue
            self.total += waited - self.seen.get(tid, waited)
            self.seen[tid] = waited
        self.samples.append((time.time(), self.total))
        return self.total

    def at(self, t: float) -> float:
        """The total at the last sample taken at or before epoch second `t`."""
        return next((w for s, w in reversed(self.samples) if s <= t), 0.0)


def idle_autogroups() -> None:
    """Put the scheduling groups of this process's descendants other than its own at nice 19.

    Chromium starts each browser in a session of its own (setsid), and with autogroup scheduling
    (on here, as on most desktop Linux) each session is a group that gets a fair share of the CPU
    against the server's group, whatever the priority of the tasks inside it: 5 browsers at
    SCHED_IDLE took 1.15 of the 2 CPUs while the server's threads waited runnable 4.4 s a second.
    At nice 19 a group weighs 15 against the server's 1024. Without autogroups this does nothing."""
    try:
        with open("/proc/self/autogroup") as f:
            mine = f.read().split()[0]
    except OSError:
        return
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parents[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    ours = {os.getpid()}
    for _ in range(10):                         # descendants, a generation a pass
        ours |= {pid for pid, parent in parents.items() if parent in ours}
    for pid in ours - {os.getpid()}:
        try:
            with open(f"/proc/{pid}/autogroup") as f:
                if f.read().split()[0] == mine:
                    continue
            with open(f"/proc/{pid}/autogroup", "w") as f:
                f.write("19")
        except OSError:
            continue


BLOCK = 1_000_000
OPEN_SECONDS = 120        # how long a tab may take to render its first page


def long_file(path: str, blocks: int) -> None:
    """`blocks` copies of a BLOCK-row file's rows under one header: rows at other offsets are other rows."""
    make_file(path, BLOCK)
    with open(path, "rb") as f:
        f.readline()
        body = f.read()
    with open(path, "ab") as f:
        for _ in range(blocks - 1):
            f.write(body)


def prepare(data_dir: str, path: str, rate: float) -> None:
    """Create the paced stream in the data folder; the server's engine resumes it on start."""
    from engine.runtime import Engine
    from engine.ingest.replay import Speed
    with Engine(data_dir) as engine:
        engine.add_replay(path, name="load", speed=Speed("rows", rate), loop=True, retention_rows=None)


def start_server(data_dir: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "RIVULET_DATA_DIR": data_dir, "RIVULET_DEMO": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the Streamlit server did not start: " + proc.stderr.read()[-2000:])


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ingested_between(data_dir: str, start: float, end: float, newest: bool = False):
    """Rows of the paced stream whose ingest time falls in [start, end) (epoch seconds); with `newest`,
    the newest such row's ingest time instead."""
    from engine.store.duck import DuckStore, rows_table
    store = DuckStore(data_dir)
    try:
        sid = next(s["id"] for s in store.streams() if s["name"] == "load")
        what = "epoch_us(max(_ingest)) / 1e6" if newest else "count(*)"
        end = min(end, 4e9)
        with store.read() as cur:
            return cur.execute(f"SELECT {what} FROM {rows_table(sid)} WHERE _ingest >= make_timestamp(?) "
                               f"AND _ingest < make_timestamp(?)", [int(start * 1e6), int(end * 1e6)]).fetchone()[0]
    finally:
        store.close()


def wake(port: int) -> None:
    """The engine starts with the first session: open one tab until the Overview draws, then close it."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
        page.get_by_text("Rows stored").first.wait_for(timeout=60_000)
        browser.close()


def browse(port: int, sessions: int, seconds: float, dwell: float, mark, browsers: int = 5,
           stagger: float = 0.2, drain: float = 15.0, idle: bool = False) -> dict:
    """Tabs that open the app and then move through every page by the sidebar's links for `seconds`.

    `sessions` tabs (one context each, so one Streamlit session each) spread over `browsers` Chromium
    processes, driven concurrently (asyncio). A tab opens `stagger` seconds after the one before. A
    page is rendered when its heading shows and the server has sent the end of its script run (the
    websocket frame) since the tab asked for it; a visit's time runs from the click (or the tab's
    open) to then. Each tab asks for its next page `dwell` seconds after the last one rendered, or
    after `dwell` if it has not; after `seconds`, tabs stop asking and `drain` seconds let what was
    asked for arrive: a visit still not rendered then was never answered. `mark()` is called once
    every tab has opened (or given up) and again at the end, so the browser's start-up is not
    counted against ingest."""
    import asyncio
    from playwright.async_api import Error as PlaywrightError, async_playwright
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    finished_ok = ForwardMsg.FINISHED_SUCCESSFULLY
    stats = {"opens": [], "never_opened": 0, "visits": [], "late": 0, "unanswered": 0, "page_errors": 0,
             "exceptions": 0, "messages": 0, "runs": 0, "fragment_runs": 0}
    counting = [False]

    class Tab:
        def __init__(self, page):
            self.page, self.ends = page, []       # monotonic times of full script runs ended (frames)
            page.on("pageerror", lambda _: stats.__setitem__("page_errors", stats["page_errors"] + 1))
            page.on("websocket", lambda ws: ws.on("framereceived", self.frame))

        def frame(self, payload) -> None:
            if counting[0]:
                stats["messages"] += 1
            if isinstance(payload, bytes) and len(payload) < 512:       # script_finished is a few bytes
                msg = ForwardMsg.FromString(payload)
                if msg.WhichOneof("type") == "script_finished":
                    if msg.script_finished == finished_ok:
                        self.ends.append(time.monotonic())
                    if counting[0]:
                        kind = "runs" if msg.script_finished == finished_ok else "fragment_runs"
                        stats[kind] += msg.script_finished in (finished_ok, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY)

        async def rendered(self, heading: str, asked: float, until: float) -> float | None:
            """Seconds from `asked` until the page shows `heading` and a run has ended since; None if not by `until`."""
            try:
                await self.page.locator("h1", has_text=heading).first.wait_for(
                    timeout=max(1.0, until - time.monotonic()) * 1000)
            except PlaywrightError:
                return None
            while time.monotonic() < until:
                if any(t > asked for t in self.ends):
                    return max(time.monotonic(), min(t for t in self.ends if t > asked)) - asked
                await asyncio.sleep(0.05)
            return None

    async def one(browser, i: int, opened: asyncio.Event, all_open: asyncio.Event, end: list) -> None:
        await asyncio.sleep(i * stagger)
        tab = Tab(await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page())
        asked = time.monotonic()
        try:
            await tab.page.goto(f"http://127.0.0.1:{port}/", wait_until="commit", timeout=OPEN_SECONDS * 1000)
            took = await tab.rendered(HEADINGS["Overview"], asked, asked + OPEN_SECONDS)
        except PlaywrightError:
            took = None
        if took is None:
            stats["never_opened"] += 1
        else:
            stats["opens"].append(took)
        opened.set()
        await all_open.wait()
        if took is None:
            return
        step = i
        while time.monotonic() < end[0]:
            step += 1
            title = PAGES[step % len(PAGES)]
            asked = time.monotonic()
            try:
                await tab.page.locator('[data-testid="stSidebarNavLink"]', has_text=title).first.click(timeout=dwell * 1000)
            except PlaywrightError:                 # a click that times out under load is a late visit
                stats["late"] += 1
                continue
            took = await tab.rendered(HEADINGS.get(title, title), asked, asked + dwell)
            if took is None:
                stats["late"] += 1
                took = await tab.rendered(HEADINGS.get(title, title), asked, max(end[0], time.monotonic()) + drain)
                if took is None:
                    stats["unanswered"] += 1
                    return
            stats["visits"].append(took)
            stats["exceptions"] += await tab.page.locator('[data-testid="stException"]').count()
            await asyncio.sleep(max(0.0, asked + dwell - time.monotonic()))

    async def main() -> None:
        async with async_playwright() as pw:
            procs = [await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                     for _ in range(browsers)]
            if idle:
                idle_autogroups()
            all_open, end = asyncio.Event(), [float("inf")]
            events = [asyncio.Event() for _ in range(sessions)]
            tasks = [asyncio.create_task(one(procs[i % browsers], i, events[i], all_open, end)) for i in range(sessions)]
            await asyncio.gather(*(e.wait() for e in events))
            if idle:
                idle_autogroups()                   # in case a process started a session of its own since
            mark()
            counting[0] = True
            end[0] = time.monotonic() + seconds
            all_open.set()
            await asyncio.sleep(seconds)
            counting[0] = False
            mark()
            await asyncio.gather(*tasks)
            for b in procs:
                await b.close()
    asyncio.run(main())
    opens, visits = sorted(stats.pop("opens")), sorted(stats.pop("visits"))
    return {**stats, "opened": len(opens), "visits": len(visits) + stats["unanswered"],
            "drawn": sum(v <= dwell for v in visits), "timeouts": stats["unanswered"],
            "open_p50": pct(opens, 0.5), "open_p95": pct(opens, 0.95),
            "visit_p50": pct(visits, 0.5), "visit_p95": pct(visits, 0.95)}


def pct(values: list[float], q: float) -> float | None:
    return values[min(len(values) - 1, int(len(values) * q))] if values else None


def websocket_sessions(port: int, sessions: int, seconds: float, dwell: float, mark, drain: float = 15.0) -> dict:
    """Sessions that ask for what the tabs ask for (tests/st_sessions.py), with nothing drawn, so the
    CPU they cost is the server's; a visit counts as drawn when its run ended within the dwell."""
    from tests.st_sessions import run_sessions
    mark()
    counts = run_sessions(port, sessions, seconds, dwell, PAGES, stagger=0, drain=drain, on_end=mark)
    visits = sorted(v for c in counts for v in c.visits)
    unanswered = sum(c.unanswered for c in counts)
    return {"visits": len(visits) + unanswered, "drawn": sum(v <= dwell for v in visits),
            "page_errors": sum(len(c.errors) for c in counts), "exceptions": sum(len(c.exceptions) for c in counts),
            "timeouts": unanswered, "messages": None, "opened": None, "never_opened": None,
            "runs": sum(c.runs for c in counts), "fragment_runs": sum(c.fragment_runs for c in counts),
            "open_p50": None, "visit_p50": pct(visits, 0.5), "visit_p95": pct(visits, 0.95)}


def browse_child(args) -> None:
    """`--browse`: run the tabs in this process (started at the wanted priority); print JSON."""
    marks = []
    mark = lambda: marks.append((time.time(), cpu_seconds(args.server_pid)))      # noqa: E731
    if args.clients == "websocket":
        stats = websocket_sessions(args.browse, args.sessions, args.seconds, args.dwell, mark, drain=args.drain)
    else:
        stats = browse(args.browse, args.sessions, args.seconds, args.dwell, mark, browsers=args.browsers,
                       stagger=args.stagger, drain=args.drain, idle=args.priority == "idle")
    print(json.dumps({"stats": stats, "marks": marks}))


def lower(priority: str):
    """How the browsing child starts. Chromium run as root resets its processes' niceness (renderers
    to 0, its browser process to -8), so `idle` uses SCHED_IDLE, which it keeps: the drawing that
    happens on viewers' own machines in real use then takes only the CPU the server leaves."""
    if priority == "idle":
        return lambda: os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    return None


def run_tabs(args, port: int, server_pid: int, priority: str, waits: Waits) -> tuple[dict, tuple, tuple]:
    """The browsing phase in a child process; Chromium and its renderers inherit its scheduling."""
    cmd = [sys.executable, os.path.abspath(__file__), "--browse", str(port), "--server-pid", str(server_pid),
           "--sessions", str(args.sessions), "--seconds", str(args.seconds), "--dwell", str(args.dwell),
           "--clients", args.clients, "--browsers", str(args.browsers), "--stagger", str(args.stagger),
           "--drain", str(args.drain), "--priority", priority]
    out = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=lower(priority), check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    (t0, c0), (t1, c1) = result["marks"]
    return result["stats"], (t0, c0, waits.at(t0)), (t1, c1, waits.at(t1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the tabs browse")
    ap.add_argument("--alone", type=float, default=30.0, help="how long ingest runs without viewers first")
    ap.add_argument("--rate", type=float, default=100_000.0, help="paced replay rows/s")
    ap.add_argument("--dwell", type=float, default=5.0, help="seconds each tab stays on a page")
    ap.add_argument("--browser", nargs="+", choices=["idle", "normal"], default=["idle", "normal"],
                    help="the browser's CPU priority in each browsing phase (idle: only CPU the server leaves)")
    ap.add_argument("--clients", choices=["chromium", "websocket"], default="chromium",
                    help="Chromium tabs, or websocket sessions that ask for the same runs and draw nothing")
    ap.add_argument("--browsers", type=int, default=5, help="Chromium processes the tabs are spread over")
    ap.add_argument("--stagger", type=float, default=0.2, help="seconds between tabs opening")
    ap.add_argument("--drain", type=float, default=15.0,
                    help="seconds after the phase for visits asked for to arrive; later ones were never answered")
    ap.add_argument("--browse", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--priority", default="normal", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.browse:
        return browse_child(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))      # so `finally` stops the server
    load = os.getloadavg()
    tmp = tempfile.mkdtemp(prefix="rivulet-sessions-")
    data_dir = os.path.join(tmp, "data")
    phases = []
    try:
        path = os.path.join(tmp, "load.csv")
        # tabs get up to OPEN_SECONDS to open before a phase counts: a file that ran out before a phase
        # ended would count its missing rows against the viewers
        opening = OPEN_SECONDS if args.clients == "chromium" else 0
        planned = 60 + args.alone + len(args.browser) * (args.seconds + 5 + opening + args.drain)
        blocks = math.ceil(args.rate * planned / BLOCK)
        long_file(path, blocks)
        prepare(data_dir, path, args.rate)
        port = free_port()
        server = start_server(data_dir, port)
        waits = None
        try:
            wake(port)
            waits = Waits(server.pid)
            time.sleep(5)                                  # the engine resumes the stream
            a0, c0, w0 = time.time(), cpu_seconds(server.pid), waits.sample()
            time.sleep(args.alone)
            a1, c1, w1 = time.time(), cpu_seconds(server.pid), waits.sample()
            for priority in args.browser:
                phases.append((priority, *run_tabs(args, port, server.pid, priority, waits)))
                time.sleep(5)                              # the server settles between phases
        finally:
            if waits:
                waits.stop.set()
            stop_server(server)
        alone = ingested_between(data_dir, a0, a1) / (a1 - a0)
        rows = [["ingest alone", f"{alone:,.0f}", "1.00", f"{(c1 - c0) / (a1 - a0):.2f}",
                 f"{(w1 - w0) / (a1 - a0):.2f}", *["-"] * 11]]
        newest = ingested_between(data_dir, a0, float("inf"), newest=True)
        # every row stored and none since the phase's end: the file ran out (a starved server that has
        # not stored its last second yet still has rows to store)
        ran_out = ingested_between(data_dir, 0, float("inf")) >= blocks * BLOCK
        for priority, stats, (b0, cb0, wb0), (b1, cb1, wb1) in phases:
            if ran_out and newest < b1 - 1:
                raise SystemExit(f"the replayed file ran out {b1 - newest:.0f} s before the {priority} phase ended: "
                                 "its ingest rate would be wrong")
            loaded = ingested_between(data_dir, b0, b1) / (b1 - b0)
            who = (f"{args.sessions} websocket sessions, client at {priority} priority" if args.clients == "websocket"
                   else f"{args.sessions} Chromium tabs, browser at {priority} priority")
            rows.append([f"+ {who}", f"{loaded:,.0f}", f"{loaded / alone:.2f}", f"{(cb1 - cb0) / (b1 - b0):.2f}",
                         f"{(wb1 - wb0) / (b1 - b0):.2f}",
                         "-" if stats["messages"] is None else f"{stats['messages'] / (b1 - b0):,.0f}",
                         f"{stats['runs'] / (b1 - b0):.1f}", f"{stats['fragment_runs'] / (b1 - b0):.1f}",
                         per_run(cb1 - cb0 - (c1 - c0) / (a1 - a0) * (b1 - b0), stats["runs"] + stats["fragment_runs"]),
                         "-" if stats["opened"] is None else f"{stats['opened']} / {args.sessions}",
                         seconds_pair(stats["open_p50"], stats.get("open_p95")),
                         f"{stats['drawn']} / {stats['visits']}",
                         seconds_pair(stats["visit_p50"], stats["visit_p95"]),
                         stats["timeouts"], stats["page_errors"], stats["exceptions"]])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n# paced replay at {args.rate:,.0f} rows/s in a `streamlit run` server; {machine()}; "
          f"load average before {load[0]:.1f}, after {os.getloadavg()[0]:.1f}\n")
    print_table(["case", "ingest rows/s", "vs alone", "server CPU s/s", "server waiting for a CPU s/s", "server messages/s", "script runs/s",
                 "fragment runs/s", "server CPU ms a run beyond ingest alone", "tabs rendered / opened", "first render s p50 / p95",
                 f"visits rendered within {args.dwell:g} s / visits", "visit s p50 / p95", "never answered",
                 "page errors", "exceptions drawn"], rows)


def per_run(cpu: float, runs: int) -> str:
    """The server's CPU seconds over its CPU with ingest alone, per script or fragment run, in ms."""
    return f"{cpu / runs * 1000:.0f}" if runs else "-"


def seconds_pair(p50: float | None, p95: float | None) -> str:
    return "-" if p50 is None else f"{p50:.1f} / {p95:.1f}"


if __name__ == "__main__":
    main()
