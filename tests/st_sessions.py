"""Streamlit sessions without a browser, for the many-sessions test and `bench/sessions.py --clients websocket`.

Each session is one websocket to `streamlit run app.py` that asks for what a browser tab asks for: a
full run of a page when it opens or moves by the sidebar, and a run of each live fragment every
time its `run_every` interval passes (the browser's timer does not wait for the previous run
either; the server folds pending requests of a session together). Nothing is drawn, so all the
CPU they cost is the server's. Counted per session: full runs and fragment runs finished, how
long each page visit took from request to its run's end, exceptions drawn.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

FINISHED = ForwardMsg.FINISHED_SUCCESSFULLY
FRAGMENT_FINISHED = ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY


@dataclass
class Counts:
    runs: int = 0                 # full script runs finished
    fragment_runs: int = 0
    exceptions: list[str] = field(default_factory=list)    # exception elements drawn: an uncaught error
    visits: list[float] = field(default_factory=list)     # seconds from asking for a page to its run's end
    unanswered: int = 0           # page visits still waiting when the session stopped (after the drain)
    errors: list[str] = field(default_factory=list)       # connection failures


class Session:
    def __init__(self, port: int, counts: Counts):
        self.url = f"ws://127.0.0.1:{port}/_stcore/stream"
        self.counts = counts
        self.pages: dict[str, str] = {}          # page name -> its script hash, from the navigation message
        self.page = ""                          # the current page's script hash
        self.timers: dict[str, list[float]] = {}     # fragment id -> [interval, next due]
        self.asked: float | None = None          # when the pending page visit was asked for
        self.counting = True

    async def run(self, until: float, dwell: float, order: list[str], drain: float = 0.0) -> None:
        import websockets
        try:
            async with websockets.connect(self.url, subprotocols=["streamlit"], max_size=None,
                                          open_timeout=60, ping_interval=None) as ws:
                reader = asyncio.create_task(self._read(ws))
                try:
                    await self._visit(ws, "")
                    step = 0
                    next_move = time.monotonic() + dwell
                    while time.monotonic() < until and not reader.done():
                        now = time.monotonic()
                        if now >= next_move and self.pages and self.asked is None:
                            step += 1
                            await self._visit(ws, self.pages.get(order[step % len(order)], ""))
                            next_move = now + dwell
                        for fid, timer in list(self.timers.items()):
                            if now >= timer[1]:
                                timer[1] = now + timer[0]
                                await ws.send(rerun(self.page, fragment_id=fid))
                        await asyncio.sleep(0.05)
                    while self.asked is not None and time.monotonic() < until + drain and not reader.done():
                        await asyncio.sleep(0.05)     # the visit asked for last may still arrive
                finally:
                    reader.cancel()
        except (OSError, asyncio.TimeoutError, Exception) as e:    # a refused or dropped session is a result
            self.counts.errors.append(f"{type(e).__name__}: {e}")
        if self.asked is not None:
            self.counts.unanswered += 1

    async def _visit(self, ws, page_hash: str) -> None:
        self.asked = time.monotonic()
        self.timers.clear()                 # a full run registers the page's fragments again
        await ws.send(rerun(page_hash))

    async def _read(self, ws) -> None:
        async for data in ws:
            if isinstance(data, str):
                continue
            msg = ForwardMsg.FromString(data)
            kind = msg.WhichOneof("type")
            if kind == "navigation":
                self.pages = {p.page_name: p.page_script_hash for p in msg.navigation.app_pages}
                self.page = msg.navigation.page_script_hash
            elif kind == "auto_rerun":
                interval = msg.auto_rerun.interval
                self.timers[msg.auto_rerun.fragment_id] = [interval, time.monotonic() + interval]
            elif kind == "stop_auto_rerun":
                for fid in msg.stop_auto_rerun.fragment_ids:
                    self.timers.pop(fid, None)
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element" \
                    and msg.delta.new_element.WhichOneof("type") == "exception":
                e = msg.delta.new_element.exception
                self.counts.exceptions.append(f"{e.type}: {e.message}")
            elif kind == "script_finished":
                if msg.script_finished == FINISHED:
                    self.counts.runs += 1
                    if self.asked is not None:
                        self.counts.visits.append(time.monotonic() - self.asked)
                        self.asked = None
                elif msg.script_finished == FRAGMENT_FINISHED:
                    self.counts.fragment_runs += 1


def rerun(page_hash: str, fragment_id: str = "") -> bytes:
    msg = BackMsg()
    state = msg.rerun_script
    state.page_script_hash = page_hash
    state.widget_states.SetInParent()
    if fragment_id:
        state.fragment_id = fragment_id
        state.is_auto_rerun = True
    return msg.SerializeToString()


def run_sessions(port: int, n: int, seconds: float, dwell: float = 5.0, pages: list[str] | None = None,
                 stagger: float = 0.2, drain: float = 0.0, on_end=None) -> list[Counts]:
    """`n` sessions for `seconds`, each moving through `pages` (by name) every `dwell` seconds, the
    first ones `stagger` seconds apart, as tabs opened one after another; one Counts per session.
    After `seconds` (when `on_end()` is called), sessions ask for nothing more and wait up to `drain`
    seconds for the visit they asked for last: one still unanswered then is counted."""
    order = pages or ["Overview", "Sources", "Preprocessing", "Aggregates", "Correlations", "Models", "Export"]

    async def main() -> list[Counts]:
        counts = [Counts() for _ in range(n)]
        until = time.monotonic() + seconds

        async def one(i: int) -> None:
            await asyncio.sleep(i * stagger)
            await Session(port, counts[i]).run(until, dwell, order[i % len(order):] + order[:i % len(order)], drain)

        async def ended() -> None:
            await asyncio.sleep(max(0.0, until - time.monotonic()))
            if on_end:
                on_end()
        await asyncio.gather(ended(), *(one(i) for i in range(n)))
        return counts
    return asyncio.run(main())
