"""Script runs take turns (ui/turns.py) and uploads are copied one at a time (engine/ingest/uploads.py)."""
import io
import threading

from engine.ingest.uploads import Spool
from tests.conftest import wait_for
from ui.turns import Turns


def test_turns_bound_runs_and_serve_full_runs_first():
    turns = Turns(2)
    gates = [threading.Event(), threading.Event()]      # one per first holder; waiters go straight through
    done = threading.Event()
    done.set()
    running, most, order = [0], [0], []
    lock = threading.Lock()

    def run(name: str, urgent: bool, gate: threading.Event) -> None:
        with turns.turn(urgent):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
                order.append(name)
            gate.wait()
            with turns.turn(urgent):          # a fragment drawn inside its full run: no second turn
                pass
            with lock:
                running[0] -= 1

    holders = [threading.Thread(target=run, args=(f"first{i}", True, gates[i])) for i in range(2)]
    for t in holders:
        t.start()
    assert wait_for(lambda: len(order) == 2)
    waiters = []
    for name, urgent in [("refresh1", False), ("refresh2", False), ("page", True)]:
        t = threading.Thread(target=run, args=(name, urgent, done))
        t.start()
        waiters.append(t)
        assert wait_for(lambda n=len(waiters): turns.waiting() == n)
    # one slot frees while the other stays held: the waiters pass through it one by one, so the order
    # they record is the order they were let in (with both freed at once, two threads race to record)
    gates[0].set()
    assert wait_for(lambda: len(order) == 5)
    gates[1].set()
    for t in holders + waiters:
        t.join(timeout=10)
    assert most[0] == 2
    assert order[2:] == ["page", "refresh1", "refresh2"]      # the page opened last went first


class Slow(io.BytesIO):
    """An upload whose copy waits on `go` (its first read, the column preview, does not), holding
    the one copying slot meanwhile."""
    def __init__(self, data, go):
        super().__init__(data)
        self.go, self.reads = go, 0

    def read(self, n=-1):
        self.reads += 1
        if self.reads > 1:
            self.go.wait()
        return super().read(n)


def test_uploads_are_copied_one_at_a_time_and_start_when_saved(tmp_path):
    go = threading.Event()
    released = []
    first = Spool(Slow(b"a,b\n1,2\n", go), "first.csv", str(tmp_path), 8, release=lambda: released.append(1))
    assert wait_for(lambda: first.state == "saving")
    second = Spool(io.BytesIO(b"a,b\n3,4\n"), "second.csv", str(tmp_path), 8, release=lambda: released.append(2))
    assert second.state == "queued"                        # "another upload is being saved"
    started = []
    second.then(lambda part: started.append(open(part).read()) or "stream")
    assert not started and second.pending
    go.set()
    assert second.done.wait(10)
    assert started == ["a,b\n3,4\n"] and second.state == "started" and second.stream == "stream"
    assert first.state == "saved" and sorted(released) == [1, 2]
    second.then(lambda part: started.append("again"))        # one upload, one replay
    assert started == ["a,b\n3,4\n"]
