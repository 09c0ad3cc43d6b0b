"""A built-in stream of sensor readings so a fresh dashboard has live data.

Four sites report temperature, humidity, pressure, vibration and power. The
numbers are correlated the way plant data is (humidity falls as temperature
rises, power follows temperature and vibration), about 0.5% of humidity
readings are missing, and `alarm` is a label that depends on the numbers, so a
classifier has something real to learn.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pyarrow as pa

from ..schema import Column, Schema
from .source import Batch, Source

TICK = 0.2        # seconds of rows a batch gathers at least: one row per commit would cost more than it shows
SITES = np.array(["north", "south", "east", "west"])
SCHEMA = Schema((Column("ts", "time"), Column("site", "text"), Column("temperature", "number"),
                 Column("humidity", "number"), Column("pressure", "number"), Column("vibration", "number"),
                 Column("power", "number"), Column("alarm", "number")))


class DemoSource(Source):
    kind = "demo"
    schema = SCHEMA
    time_column = "ts"

    def __init__(self, rate: float = 20.0, position: dict | None = None, seed: int = 7):
        self.rate = rate
        self.row = int((position or {}).get("row", 0))
        self.rng = np.random.default_rng(seed + self.row)
        self.last = time.monotonic()       # pacing; the rows' timestamps are wall time
        self.lock = threading.RLock()

    def next_batch(self) -> Batch | None:
        now = time.monotonic()
        due = int((now - self.last) * self.rate)
        if self.paused or due < max(1, int(self.rate * TICK)):
            if self.paused:
                self.last = now
            return None
        due = min(due, int(self.rate * 2) + 1)    # never burst after a stall
        self.last += due / self.rate
        if now - self.last > 2:
            self.last = now
        table = self.rows(due, time.time())
        self.row += due
        return Batch(table, [], self.position(), nbytes=due * 64)

    def rows(self, n: int, now: float) -> pa.Table:
        rng = self.rng
        ts = now - (n - 1 - np.arange(n)) / self.rate
        site = rng.integers(0, len(SITES), n)
        day = np.sin(2 * np.pi * (ts % 600) / 600)              # a 10-minute "day"
        temperature = 22 + 4 * day + site * 0.8 + rng.normal(0, 0.7, n)
        humidity = 70 - 1.6 * (temperature - 22) + rng.normal(0, 2.5, n)
        humidity[rng.random(n) < 0.005] = np.nan
        pressure = 1013 + 0.4 * np.cumsum(rng.normal(0, 0.05, n)) + rng.normal(0, 0.6, n)
        vibration = np.abs(rng.gamma(2.0, 0.6, n) + 0.15 * (site == 2))
        power = 40 + 2.5 * (temperature - 22) + 6 * vibration + rng.normal(0, 1.5, n)
        logit = 1.4 * (vibration - 2.0) + 0.6 * (temperature - 24)
        alarm = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
        return pa.table({
            "ts": pa.array((ts * 1e6).astype("int64"), pa.timestamp("us")),
            "site": pa.array(SITES[site]),
            "temperature": temperature.round(3), "humidity": humidity.round(2),
            "pressure": pressure.round(2), "vibration": vibration.round(4),
            "power": power.round(2), "alarm": alarm,
        })

    def position(self) -> dict:
        return {"row": self.row}

    def status(self) -> dict:
        return {"state": "paused" if self.paused else "running", "rate": self.rate}
