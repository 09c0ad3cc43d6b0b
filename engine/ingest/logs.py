"""The embedded Log (seams.py): which source reads a stream, from its stored config and positions."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from ..schema import Schema
    from .source import Source


def open_log(config: dict, offsets: dict[str, dict], schema: Schema | None = None) -> Source:
    """The source a stream's config names, resuming from `offsets` (the store's, by source key)."""
    # each kind is imported when used: a replay need not load the tail's inotify and folder-scan modules
    if config["source"] == "tail":
        from .tail import TailSource
        return TailSource(config["pattern"], fmt=config.get("format"), position=offsets, schema=schema,
                          roots=config.get("roots"), polling=config.get("polling"),
                          time_column=config.get("time_column"), time_format=config.get("time_format"))
    position = next(iter(offsets.values()), None)
    if config["source"] == "demo":
        from .demo import DemoSource
        return DemoSource(rate=config.get("rate", 20.0), position=position)
    if config["source"] == "replay":
        from .replay import ReplaySource, Speed
        sp = config.get("speed") or {}
        return ReplaySource(config["path"], position=position, speed=Speed(sp.get("mode", "max"), sp.get("value", 0)),
                            loop=config.get("loop", False), time_column=config.get("time_column"), schema=schema,
                            time_format=config.get("time_format"))
    raise UserError(f"unknown source kind {config['source']!r}")
