"""Helpers for the watcher, scheduler and live tests: bounded waits, a recording
watcher thread and a real ``scribe watch`` process.

Kept out of ``conftest.py`` (owned elsewhere); import what you need from here.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from scribe.events import EventKind, merge_kinds
from scribe.watch import Change, Ignore, watch

#: The console script of the venv running the tests.
SCRIBE = str(Path(sys.executable).with_name("scribe"))


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def holds_for(predicate: Callable[[], bool], window: float) -> bool:
    """True when ``predicate`` keeps holding for the whole ``window`` (a bounded wait
    for it to stop holding, which must time out)."""
    return not wait_until(lambda: not predicate(), window)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Recorder:
    """Runs ``scribe.watch.watch`` in a thread and records every ``Change``."""

    def __init__(self, root: Path, ignore: Ignore | None = None, *, poll: bool = False) -> None:
        self.root = root
        self.ignore = ignore if ignore is not None else Ignore(root)
        self.poll = poll
        self._lock = threading.Lock()
        self._changes: list[Change] = []
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.rescans = 0
        self.thread = threading.Thread(target=self._run, name="test-watcher", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            watch(
                self.root,
                self.ignore,
                self._emit,
                self.stop,
                poll=self.poll,
                ready=self.ready,
                on_rescan=self._on_rescan,
            )
        except BaseException as exc:  # surfaced by the test through ``error``
            self.error = exc
            raise

    def _emit(self, change: Change) -> None:
        with self._lock:
            self._changes.append(change)

    def _on_rescan(self) -> None:
        self.rescans += 1

    def __enter__(self) -> Recorder:
        self.thread.start()
        if not wait_until(lambda: self.ready.is_set() or not self.thread.is_alive(), 10):
            raise AssertionError("the watcher did not become ready within 10 s")
        if self.error is not None:
            raise AssertionError(f"the watcher failed to start: {self.error!r}")
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive(), "the watcher did not stop within 5 s"

    @property
    def changes(self) -> list[Change]:
        with self._lock:
            return list(self._changes)

    def clear(self) -> None:
        with self._lock:
            self._changes.clear()

    def about(self, path: str) -> list[Change]:
        """Changes that concern ``path`` (as the path or the destination of a move)."""
        return [c for c in self.changes if path in (c.path, c.dest)]

    def wait_for(
        self, predicate: Callable[[list[Change]], bool], timeout: float = 5.0
    ) -> list[Change]:
        if not wait_until(lambda: predicate(self.changes), timeout):
            raise AssertionError(f"timed out after {timeout} s; changes so far: {self.changes}")
        return self.changes

    def wait_closed(self, path: str, timeout: float = 5.0) -> list[Change]:
        """Wait for a change of ``path`` whose writer is known to be done."""
        return self.wait_for(lambda cs: any(c.closed and c.target == path for c in cs), timeout)

    def _unchanged(self, count: int) -> Callable[[], bool]:
        return lambda: len(self.changes) == count

    def settled(self, window: float = 0.3, timeout: float = 10.0) -> list[Change]:
        """Wait until no new change has arrived for ``window`` seconds; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            if holds_for(self._unchanged(len(self.changes)), window):
                return self.changes
            if time.monotonic() >= deadline:
                raise AssertionError(f"changes kept coming for {timeout} s: {self.changes[-20:]}")


def merged(changes: list[Change], path: str) -> EventKind | None:
    """What the changes to ``path`` amount to once coalesced, as the scheduler does
    (None: nothing, or the last ones cancel out)."""
    kind: EventKind | None = None
    for change in changes:
        if change.target != path:
            continue
        kind = change.kind if kind is None else merge_kinds(kind, change.kind)
    return kind


class ScribeProcess:
    """A real ``scribe watch ROOT`` process; its log goes to a file outside ROOT."""

    def __init__(self, root: Path, *args: str, log_path: Path) -> None:
        self.root = root
        self.log_path = log_path
        env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [SCRIBE, "watch", str(root), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        """The JSON log lines so far (``event`` set: only those), other output left out."""
        found = []
        for line in self.log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and (event is None or record.get("event") == event):
                found.append(record)
        return found

    def wait_ready(self, timeout: float = 20.0) -> None:
        if not wait_until(
            lambda: bool(self.records("watching")) or self.proc.poll() is not None, timeout
        ):
            raise AssertionError(f"scribe watch not ready after {timeout} s:\n{self.log()}")
        if self.proc.poll() is not None:
            raise AssertionError(f"scribe watch exited with {self.proc.returncode}:\n{self.log()}")

    def rewrites(self, rel: str) -> int:
        """How many times Scribe says it rewrote ``rel``."""
        return sum(record.get("path") == rel for record in self.records("rewrote"))

    def terminate(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then wait; the exit code, or None if it did not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Make sure the process is gone (teardown)."""
        if self.proc.poll() is None and self.terminate(timeout=7.0) is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
