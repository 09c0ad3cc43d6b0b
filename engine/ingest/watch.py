"""File-system events as hints: which paths changed since the source last looked.

inotify (watchdog's native observer) when it can, the polling observer when
inotify is unavailable or its limits are exhausted, or when asked
(RIVULET_TAIL_POLLING=1). Events only say "look here soon"; the source reads
to the end of a file on any event and rescans on a timer, so a lost or
coalesced event costs latency, never data. An observer whose thread died, or
whose folder vanished or was replaced, is started again.
"""
from __future__ import annotations

import logging
import os
import threading

from watchdog.events import (DirCreatedEvent, DirDeletedEvent, DirMovedEvent, FileClosedEvent, FileCreatedEvent,
                             FileDeletedEvent, FileModifiedEvent, FileMovedEvent, FileSystemEventHandler)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserverVFS

log = logging.getLogger("rivulet")
POLL_SECONDS = 0.5
# not opened / closed-without-write: our own reads would wake us up again, file after file
HINTS = [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent, FileDeletedEvent,
         DirCreatedEvent, DirMovedEvent, DirDeletedEvent]


def polling_forced() -> bool:
    return os.environ.get("RIVULET_TAIL_POLLING", "").strip().lower() in ("1", "true", "yes", "on")


class _Hints(FileSystemEventHandler):
    def __init__(self, watch: "Watch"):
        self.watch = watch

    def on_any_event(self, event) -> None:
        paths = [os.fsdecode(p) for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        with self.watch.lock:
            self.watch.dirty.update(paths)
            if event.event_type in ("created", "moved"):      # a path may now name another file
                self.watch.appeared.update(paths)


class Watch:
    def __init__(self, folder: str, recursive: bool, polling: bool | None = None):
        self.folder = folder
        self.recursive = recursive
        self.polling = polling_forced() if polling is None else polling
        self.lock = threading.Lock()
        self.dirty: set[str] = set()
        self.appeared: set[str] = set()
        self.observer = None
        self.folder_id: tuple[int, int] | None = None
        self.mode = "none"           # "inotify" | "polling" | "none" (folder missing)
        self.warning: str | None = None
        self.restarts = 0
        self.interval = POLL_SECONDS       # polling: seconds between two looks at the folder

    def take(self) -> tuple[set[str], set[str]]:
        """The paths with events since the last call, and those created or moved."""
        with self.lock:
            dirty, self.dirty = self.dirty, set()
            appeared, self.appeared = self.appeared, set()
        return dirty, appeared

    @property
    def alive(self) -> bool:
        return self.observer is not None and self.observer.is_alive()

    def ensure(self) -> None:
        """Start the observer, or start it again when its thread died or its folder changed."""
        try:
            st = os.stat(self.folder)
            folder_id = (st.st_dev, st.st_ino)
        except OSError:
            folder_id = None
        if self.alive and folder_id == self.folder_id:
            return
        if self.observer is not None:
            self.restarts += 1
            log.warning("restarting the file observer on %s", self.folder)
            self.stop()
        self.folder_id = folder_id
        if folder_id is None:
            self.mode = "none"
            return
        if not self.polling:
            try:
                self._start(Observer())
                self.mode = "inotify"
                return
            except OSError as e:      # no inotify, or max_user_watches / max_user_instances exhausted
                self.warning = (f"inotify is not available ({e.strerror or e}); polling every "
                                f"{self.interval:g}s instead (raise fs.inotify.max_user_watches / max_user_instances)")
                log.warning("%s", self.warning)
        # lstat: a symlinked folder is not walked into, so a symlink loop cannot recurse without end
        self._start(PollingObserverVFS(os.lstat, os.scandir, polling_interval=self.interval))
        self.mode = "polling"

    def pace(self, seconds: float) -> None:
        """Poll at most every `seconds`: polling a big folder costs as much as a scan of it."""
        interval = max(POLL_SECONDS, seconds)
        if self.mode == "polling" and self.alive and not self.interval / 2 <= interval <= self.interval * 2:
            self.interval = interval
            self.stop()
            self._start(PollingObserverVFS(os.lstat, os.scandir, polling_interval=self.interval))

    def _start(self, observer) -> None:
        try:
            observer.schedule(_Hints(self), self.folder, recursive=self.recursive, event_filter=HINTS)
            observer.start()
        except BaseException:
            try:
                observer.stop()
            except (OSError, RuntimeError):
                pass
            raise
        self.observer = observer

    def stop(self) -> None:
        obs, self.observer = self.observer, None
        if obs is not None:
            try:
                obs.stop()
                obs.join(timeout=2)
            except (OSError, RuntimeError) as e:
                log.warning("stopping the file observer: %s", e)

    def status(self) -> dict:
        return {"observer": self.mode, "observer_restarts": self.restarts, "warning": self.warning}
