"""The scheduler: coalescing per path, waiting for the writer, one worker per path.

A recording ``handle`` stands in for the engine; everything else is the real
scheduler with real threads.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from live_helpers import holds_for, wait_until
from scribe.events import Event, EventKind
from scribe.scheduler import Scheduler
from scribe.watch import Change

CREATED, MODIFIED, DELETED, MOVED = (
    EventKind.CREATED,
    EventKind.MODIFIED,
    EventKind.DELETED,
    EventKind.MOVED,
)


class Recording:
    """A ``handle`` that records each call and notices two calls for one path at once."""

    def __init__(self, work: float = 0.0, block: str | None = None) -> None:
        self.work = work
        self.block = block  # the first call for this path waits for ``release``
        self.release = threading.Event()
        self.entered = threading.Event()
        self.lock = threading.Lock()
        self.calls: list[tuple[float, Event]] = []
        self.active: set[str] = set()
        self.overlaps: list[str] = []
        self.seen: set[str] = set()
        self.batches: list[int] = []  # the size of each call's batch

    def __call__(self, events: list[Event]) -> None:
        with self.lock:
            self.batches.append(len(events))
        for event in events:
            self._one(event)

    def _one(self, event: Event) -> None:
        path = event.target
        with self.lock:
            if path in self.active:
                self.overlaps.append(path)
            self.active.add(path)
            first = path not in self.seen
            self.seen.add(path)
            self.calls.append((time.monotonic(), event))
        try:
            if path == self.block and first:
                self.entered.set()
                assert self.release.wait(10), "never released"
            elif self.work:
                time.sleep(random.uniform(0, self.work))  # simulated work, widens races
        finally:
            with self.lock:
                self.active.discard(path)

    def events(self, path: str | None = None) -> list[Event]:
        with self.lock:
            return [e for _, e in self.calls if path is None or e.target == path]

    def times(self, path: str) -> list[float]:
        with self.lock:
            return [t for t, e in self.calls if e.target == path]


class _Tracked(Scheduler):
    started = False

    def start(self) -> None:
        self.started = True
        super().start()


Make = Callable[..., Scheduler]


@pytest.fixture
def make() -> Iterator[Make]:
    """Build schedulers (not started); every started one is stopped at teardown."""
    made: list[_Tracked] = []

    def build(handle: Callable[[list[Event]], object], **options: object) -> Scheduler:
        scheduler = _Tracked(handle, **options)  # type: ignore[arg-type]
        made.append(scheduler)
        return scheduler

    yield build
    for scheduler in made:
        if scheduler.started:
            scheduler.stop(timeout=5)


# -- coalescing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            [
                Change(CREATED, "a.md"),
                *[Change(MODIFIED, "a.md")] * 5,
                Change(MODIFIED, "a.md", closed=True),
            ],
            Event(CREATED, "a.md"),
            id="new-file-written",
        ),
        pytest.param(
            [Change(MODIFIED, "a.md", closed=True)] * 3 + [Change(MODIFIED, "a.md")],
            Event(MODIFIED, "a.md"),
            id="saves",
        ),
        pytest.param(
            [Change(MODIFIED, "a.md"), Change(DELETED, "a.md", closed=True)],
            Event(DELETED, "a.md"),
            id="modified-then-deleted",
        ),
        pytest.param(
            [
                Change(DELETED, "a.md", closed=True),
                Change(CREATED, "a.md"),
                Change(MODIFIED, "a.md", closed=True),
            ],
            Event(MODIFIED, "a.md"),
            id="backup-then-write",
        ),
        pytest.param(
            [Change(MOVED, "a.md", "b.md", closed=True), Change(MODIFIED, "b.md", closed=True)],
            Event(MOVED, "a.md", "b.md"),
            id="moved-then-saved",
        ),
    ],
)
def test_a_burst_of_changes_to_one_path_is_one_call_with_the_merged_kind(
    make: Make, changes: list[Change], expected: Event
) -> None:
    handle = Recording()
    scheduler = make(handle, open_writer_grace=0.3)
    for change in changes:
        scheduler.submit(change)
    scheduler.start()
    assert scheduler.wait_idle(5)
    assert holds_for(lambda: len(handle.events()) == 1, 0.3)  # no second call comes later
    [event] = handle.events()
    assert (event.kind, event.path, event.dest) == (expected.kind, expected.path, expected.dest)
    assert event.time is None  # the engine takes the moment it reads the file
    assert event.source == "watcher"


def test_a_burst_while_running_is_one_call(make: Make) -> None:
    handle = Recording()
    scheduler = make(handle, quiet=0.02, open_writer_grace=1.0)
    scheduler.start()
    scheduler.submit(Change(CREATED, "a.md"))
    for _ in range(200):
        scheduler.submit(Change(MODIFIED, "a.md"))
    scheduler.submit(Change(MODIFIED, "a.md", closed=True))
    assert wait_until(lambda: len(handle.events()) >= 1, 5)
    assert holds_for(lambda: len(handle.events()) == 1, 0.3)
    assert handle.events()[0].kind is CREATED
    assert scheduler.coalesced == 201


def test_a_scanned_file_saved_before_it_is_handled_is_a_live_event(make: Make) -> None:
    handle = Recording()
    scheduler = make(handle)
    scheduler.submit(Change(CREATED, "a.md", closed=True), live=False)
    scheduler.submit(Change(MODIFIED, "b.md", closed=True), live=False)
    scheduler.submit(Change(MODIFIED, "a.md", closed=True))
    scheduler.start()
    assert scheduler.wait_idle(5)
    assert {e.path: e.source for e in handle.events()} == {"a.md": "watcher", "b.md": "scan"}


def test_created_then_deleted_before_handling_is_never_handled(make: Make) -> None:
    handle = Recording()
    scheduler = make(handle, open_writer_grace=0.2)
    scheduler.start()
    scheduler.submit(Change(CREATED, "flash.md"))  # still open: waits for its close
    scheduler.submit(Change(DELETED, "flash.md", closed=True))
    assert holds_for(lambda: not handle.events(), 0.5)  # well past the grace
    assert scheduler.idle()
    scheduler.submit(Change(CREATED, "real.md", closed=True))
    assert wait_until(lambda: [e.path for e in handle.events()] == ["real.md"], 5)


# -- when a path is ready ------------------------------------------------------


def test_a_closed_change_is_handled_at_once(make: Make) -> None:
    handle = Recording()
    scheduler = make(handle, quiet=0.5, open_writer_grace=2.0)
    scheduler.start()
    submitted = time.monotonic()
    scheduler.submit(Change(MODIFIED, "a.md", closed=True))
    assert wait_until(lambda: bool(handle.events()), 5)
    assert handle.times("a.md")[0] - submitted < 0.25  # not a quiet window, not the grace


def test_an_open_change_waits_until_the_writer_has_been_quiet(make: Make) -> None:
    handle = Recording()
    scheduler = make(handle, quiet=0.02, open_writer_grace=0.3)
    scheduler.start()
    last = 0.0
    for _ in range(4):  # a writer that keeps writing without closing, every 0.1 s
        last = time.monotonic()
        scheduler.submit(Change(MODIFIED, "slow.md"))
        assert holds_for(lambda: not handle.events(), 0.1)
    assert wait_until(lambda: bool(handle.events()), 5)
    [handled] = handle.times("slow.md")
    assert handled - last >= 0.3 - 0.01  # the window restarts with each write
    assert handled - last < 1.0


def test_an_open_change_that_is_then_closed_goes_at_the_close(make: Make) -> None:
    handle = Recording()
    scheduler = make(handle, quiet=0.02, open_writer_grace=2.0)
    scheduler.start()
    scheduler.submit(Change(CREATED, "a.md"))
    assert holds_for(lambda: not handle.events(), 0.2)
    closed = time.monotonic()
    scheduler.submit(Change(MODIFIED, "a.md", closed=True))
    assert wait_until(lambda: bool(handle.events()), 5)
    assert handle.times("a.md")[0] - closed < 0.25
    assert handle.events()[0].kind is CREATED


def test_without_closes_an_open_change_waits_only_the_quiet_window(make: Make) -> None:
    handle = Recording()
    scheduler = make(handle, quiet=0.15, open_writer_grace=5.0, closes_known=False)
    scheduler.start()
    submitted = time.monotonic()
    scheduler.submit(Change(MODIFIED, "polled.md"))
    assert wait_until(lambda: bool(handle.events()), 5)
    waited = handle.times("polled.md")[0] - submitted
    assert 0.15 - 0.01 <= waited < 1.0


def test_an_open_move_waits_only_the_quiet_window(make: Make) -> None:
    handle = Recording()
    scheduler = make(handle, quiet=0.05, open_writer_grace=5.0)
    scheduler.start()
    scheduler.submit(Change(MOVED, "a.md", "b.md"))
    assert wait_until(lambda: bool(handle.events()), 2)
    assert handle.events()[0].target == "b.md"


# -- one worker per path -------------------------------------------------------


def test_changes_during_a_handle_cause_exactly_one_follow_up(make: Make) -> None:
    handle = Recording(block="a.md")
    scheduler = make(handle, workers=4)
    scheduler.start()
    scheduler.submit(Change(MODIFIED, "a.md", closed=True))
    assert handle.entered.wait(5)
    for _ in range(20):
        scheduler.submit(Change(MODIFIED, "a.md", closed=True))
    scheduler.submit(Change(MODIFIED, "other.md", closed=True))
    # other paths go on meanwhile; a.md waits for its running call
    assert wait_until(lambda: bool(handle.events("other.md")), 5)
    assert holds_for(lambda: len(handle.events("a.md")) == 1, 0.2)
    handle.release.set()
    assert scheduler.wait_idle(5)
    assert holds_for(lambda: len(handle.events("a.md")) == 2, 0.3)
    assert handle.overlaps == []


def test_a_path_is_never_handled_by_two_workers_at_once_under_a_storm(make: Make) -> None:
    handle = Recording(work=0.001)
    scheduler = make(handle, workers=8, quiet=0.001, open_writer_grace=0.005)
    scheduler.start()
    paths = [f"p{i}.md" for i in range(12)]
    last_submit: dict[str, float] = {}
    lock = threading.Lock()

    def storm(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(1500):
            path = rng.choice(paths)
            with lock:
                last_submit[path] = time.monotonic()
                scheduler.submit(Change(MODIFIED, path, closed=rng.random() < 0.7))

    threads = [threading.Thread(target=storm, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert scheduler.wait_idle(20)
    assert handle.overlaps == []
    for path in paths:
        assert handle.times(path), f"{path} never handled"
        assert max(handle.times(path)) >= last_submit[path], (
            f"{path}: its last change was never handled"
        )
    assert scheduler.coalesced > 0


def test_a_storm_of_ten_thousand_paths_is_fully_processed_in_bounded_time(make: Make) -> None:
    handle = Recording()
    scheduler = make(handle, workers=4, quiet=0.01, open_writer_grace=0.05)
    scheduler.start()
    paths = [f"notes/{i // 100}/n{i}.md" for i in range(10_000)]
    last_submit: dict[str, float] = {}

    def storm(mine: list[str]) -> None:
        for path in mine:  # a `git checkout`: created, written, closed
            scheduler.submit(Change(CREATED, path))
            scheduler.submit(Change(MODIFIED, path))
            last_submit[path] = time.monotonic()
            scheduler.submit(Change(MODIFIED, path, closed=True))

    threads = [threading.Thread(target=storm, args=(paths[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert scheduler.wait_idle(30)  # the bound: a storm must not wedge the scheduler
    assert handle.overlaps == []
    first_call: dict[str, Event] = {}
    last_call: dict[str, tuple[float, Event]] = {}
    for at, event in handle.calls:
        first_call.setdefault(event.target, event)
        last_call[event.target] = (at, event)
    assert set(last_call) == set(paths)
    # Usually one CREATED per path; a storm thread descheduled past the grace period
    # splits it into CREATED, then MODIFIED, which is just as right.
    assert all(event.kind is CREATED for event in first_call.values())
    late = [path for path, (at, _) in last_call.items() if at < last_submit[path]]
    assert late == [], f"{len(late)} paths' last change never handled"
    assert scheduler.processed == len(handle.calls)


# -- batches -------------------------------------------------------------------


def test_a_queue_is_taken_in_batches_of_at_most_max_batch(make: Make) -> None:
    handle = Recording()
    scheduler = make(handle, workers=2, max_batch=16)
    for i in range(200):  # all ready before any worker runs
        scheduler.submit(Change(MODIFIED, f"n{i}.md", closed=True))
    scheduler.start()
    assert scheduler.wait_idle(10)
    assert sorted(e.path for e in handle.events()) == sorted(f"n{i}.md" for i in range(200))
    assert max(handle.batches) == 16
    assert len(handle.batches) < 200 // 4  # batches, not one call per path


def test_a_lone_change_is_not_held_for_a_batch(make: Make) -> None:
    handle = Recording()
    scheduler = make(handle, workers=2, max_batch=16)
    scheduler.start()
    for i in range(5):
        path = f"n{i}.md"
        scheduler.submit(Change(MODIFIED, path, closed=True))
        assert wait_until(lambda path=path: bool(handle.events(path)), 5)  # type: ignore[misc]
    assert handle.batches == [1] * 5


def test_a_batch_splits_its_queue_between_the_workers(make: Make) -> None:
    handle = Recording()
    scheduler = make(handle, workers=4, max_batch=64)
    for i in range(20):
        scheduler.submit(Change(MODIFIED, f"n{i}.md", closed=True))
    scheduler.start()
    assert scheduler.wait_idle(10)
    assert max(handle.batches) <= 5  # a quarter of the queue each, not all on one


# -- stopping and failures -----------------------------------------------------


def test_stop_finishes_pending_work(make: Make) -> None:
    handle = Recording(work=0.005)
    scheduler = make(handle, workers=2, open_writer_grace=0.3)
    scheduler.start()
    for i in range(50):
        scheduler.submit(Change(MODIFIED, f"closed{i}.md", closed=True))
    for i in range(3):
        scheduler.submit(Change(MODIFIED, f"open{i}.md"))  # still waiting for the grace
    scheduler.stop(timeout=5)
    handled = {e.path for e in handle.events()}
    assert handled == {f"closed{i}.md" for i in range(50)} | {f"open{i}.md" for i in range(3)}
    assert scheduler.idle()


def test_a_failing_call_does_not_stop_the_workers(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="scribe")
    handled: list[str] = []

    def handle(events: list[Event]) -> None:
        for event in events:
            if event.path.startswith("bad"):
                raise OSError(28, "No space left on device")
        handled.extend(event.path for event in events)

    scheduler = make(handle, workers=1)
    for i in range(3):
        scheduler.submit(Change(MODIFIED, f"bad{i}.md", closed=True))
    scheduler.submit(Change(MODIFIED, "good.md", closed=True))
    scheduler.start()  # all four in one batch
    assert wait_until(lambda: handled == ["good.md"], 5)  # not lost with its batch
    assert scheduler.wait_idle(5)
    assert "bad0.md" in caplog.text
    assert "No space left on device" in caplog.text


def test_event_ids_differ_in_a_forked_child() -> None:
    """Ids come from a seeded generator; a child must not repeat its parent's."""
    import os

    from scribe.events import Event, EventKind

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report one id and leave at once
        os.write(write_end, Event(EventKind.MODIFIED, "a.md").id.encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.waitpid(pid, 0)
    os.close(read_end)
    assert child_id != Event(EventKind.MODIFIED, "a.md").id


# -- back-pressure -------------------------------------------------------------


def test_the_queue_holds_one_entry_per_path_however_many_changes_arrive(make: Make) -> None:
    handle = Recording()
    scheduler = make(handle, workers=1, open_writer_grace=0.2)
    for _ in range(50):  # closed saves and a writer still at work, over and over
        for i in range(100):
            scheduler.submit(Change(MODIFIED, f"n{i}.md", closed=True))
            scheduler.submit(Change(MODIFIED, f"n{i}.md"))
    # Nothing has been handled yet: every structure is bounded by the 100 paths.
    assert scheduler.depth == 100
    assert len(scheduler._ready) + len(scheduler._timers) <= 100
    assert scheduler.coalesced == 50 * 200 - 100
    scheduler.start()
    assert scheduler.wait_idle(10)
    assert sorted(e.path for e in handle.events()) == sorted(f"n{i}.md" for i in range(100))


def test_past_the_high_water_mark_it_reports_saturation_and_drops_nothing(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scribe")
    handle = Recording()
    scheduler = make(handle, workers=2, high_water=100)
    for i in range(300):
        scheduler.submit(Change(MODIFIED, f"n{i}.md", closed=True))
        scheduler.submit(Change(MODIFIED, f"n{i}.md", closed=True))  # coalesced
    assert scheduler.saturated
    assert "over the high-water mark of 100" in caplog.text
    scheduler.start()
    assert scheduler.wait_idle(10)
    assert not scheduler.saturated
    assert "queue back under the high-water mark" in caplog.text
    assert len(handle.events()) == 300  # one call per path: coalesced, never dropped


def test_stop_leaves_pending_work_after_the_drain_but_finishes_what_is_in_flight(
    make: Make,
) -> None:
    handle = Recording(block="n0.md")
    scheduler = make(handle, workers=1, max_batch=1)
    scheduler.start()
    scheduler.submit(Change(MODIFIED, "n0.md", closed=True))
    assert handle.entered.wait(5)  # n0 is in flight and stays there until released
    for i in range(1, 200):
        scheduler.submit(Change(MODIFIED, f"n{i}.md", closed=True))
    threading.Timer(0.3, handle.release.set).start()
    left = scheduler.stop(drain=0.0, timeout=5)
    assert [e.path for e in handle.events()] == ["n0.md"]  # in flight: completed
    assert sorted(left) == sorted(f"n{i}.md" for i in range(1, 200))  # for the next start
    assert set(left.values()) == {MODIFIED}


def test_the_quiet_window_and_batch_limit_change_while_running(make: Make) -> None:
    handle = Recording()
    scheduler = make(handle, workers=1, quiet=30.0, closes_known=False, max_batch=64)
    scheduler.start()
    scheduler.configure(quiet=0.01, max_batch=2)
    for i in range(10):
        scheduler.submit(Change(MODIFIED, f"n{i}.md"))  # no close: waits the quiet window
    assert scheduler.wait_idle(5)  # not 30 s: the new window applies
    assert max(handle.batches) <= 2
