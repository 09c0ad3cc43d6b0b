"""The embedded Log (seams.py): which source reads a stream, from its stored config and positions."""
from __future__ import annotations

from ..errors import UserError
from ..schema import Schema
from .demo import DemoSource
from .replay import ReplaySource, Speed
from .source import Source
from .tail import TailSource


def open_log(config: dict, offsets: dict[str, dict], schema: Schema | None = None) -> Source:
    """The source a stream's config names, resuming from `offsets` (the store's, by source key)."""
    if config["source"] == "tail":
        return TailSource(config["pattern"], fmt=config.get("format"), position=offsets, schema=schema,
                          roots=config.get("roots"), polling=config.get("polling"),
                          time_column=config.get("time_column"), time_format=config.get("time_format"))
    position = next(iter(offsets.values()), None)
    if config["source"] == "demo":
        return DemoSource(rate=config.get("rate", 20.0), position=position)
    if config["source"] == "replay":
        sp = config.get("speed") or {}
        return ReplaySource(config["path"], position=position, speed=Speed(sp.get("mode", "max"), sp.get("value", 0)),
                            loop=config.get("loop", False), time_column=config.get("time_column"), schema=schema,
                            time_format=config.get("time_format"))
    raise UserError(f"unknown source kind {config['source']!r}")
