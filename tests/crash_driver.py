"""A process for tests/test_crash_many.py to kill -9 while it backfills and trains.

    python tests/crash_driver.py DATA_DIR PATTERN

It opens an Engine on DATA_DIR, tails PATTERN, then loops: apply the pipeline with a
backfill, wait for it, submit a training job, wait for it. It prints one line at each
moment the test may kill at ("ready", "backfill start", "backfill <state>", "train start",
"save start" (the registry writing the trained model), "train <state> <model id>"), so a kill
between a "start" and its end lands during that work.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.models.spec import ModelSpec  # noqa: E402
from engine.stats.operators import WindowSpec  # noqa: E402
from engine.runtime import Engine  # noqa: E402

WINDOW = WindowSpec("count", 1000)
# keeps the columns, so whichever version a row went through, the final state is the same
SPEC = [{"kind": "clip", "params": {"columns": ["x"], "lower": 5, "upper": 40}}]
MODEL = ModelSpec("regression", "x", ("id",), algorithm="rf", params={"n_estimators": 30}, cv=3)


def say(line: str) -> None:
    print(line, flush=True)


def announce_saves(engine) -> None:
    registry = engine.models.registry
    save = registry.save

    def saving(*args, **kw):
        say("save start")
        return save(*args, **kw)
    registry.save = saving


def main() -> None:
    data, pattern = sys.argv[1:3]
    with Engine(data) as engine:
        name = engine.add_tail(pattern, window=WINDOW, retention_rows=None, trusted=True)
        while engine.snapshot(name) is None or engine.snapshot(name).counts["ingested"] == 0:
            time.sleep(0.05)
        announce_saves(engine)
        say("ready")
        while True:
            engine.apply(name, SPEC, backfill=True)
            say("backfill start")
            say(f"backfill {engine.wait_backfill(name, 120)['state']}")
            job = engine.models.train(name, MODEL, slice={"last": 20_000})
            say("train start")
            j = engine.models.jobs.wait(job, 120)
            say(f"train {j.state} {j.result}")


if __name__ == "__main__":
    main()
