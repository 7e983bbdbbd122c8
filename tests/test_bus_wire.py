"""What travels on the bus: shards every process agrees on, events that come back
as they left, and the package's public names; and no bus at all by default."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import scribe.bus
from cli_helpers import make_repo
from scribe.bus import shard_of
from scribe.bus.wire import decode, encode, subject
from scribe.events import Event, EventKind


def test_a_path_has_the_same_shard_in_every_process() -> None:
    # Pinned values: a salted hash() would give other shards in another process,
    # and one file's events would race on two subjects.
    assert shard_of("notes/a.md", 16) == 5
    assert shard_of("notes/b.md", 16) == 11
    assert shard_of("é/ü.md", 16) == 11
    assert all(0 <= shard_of(f"f{i}.md", 7) < 7 for i in range(100))
    assert subject(5) == "scribe.events.5"


@pytest.mark.parametrize(
    "event",
    [
        Event(EventKind.MODIFIED, "notes/a.md"),
        Event(EventKind.MOVED, "old/a.md", dest="new/a.md", source="scan"),
        Event(EventKind.DELETED, "gone.md", time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        Event(EventKind.CUSTOM, "index.md", name="reindex", data={"n": [1, "x"]}, depth=2),
    ],
)
def test_an_event_comes_back_as_it_left(event: Event) -> None:
    back = decode(encode(event))
    assert back == event
    assert back.data == event.data
    assert back.target == event.target


def test_a_move_travels_on_its_destinations_shard() -> None:
    move = Event(EventKind.MOVED, "old/a.md", dest="new/a.md")
    assert shard_of(move.target, 16) == shard_of("new/a.md", 16)


@pytest.mark.parametrize("data", [b"", b"not json", b"[]", b'{"kind": "exploded"}', b"\xff"])
def test_anything_else_is_refused_with_a_reason(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a Scribe event"):
        decode(data)


def test_the_public_names_are_pinned() -> None:
    assert scribe.bus.__all__ == [
        "NEEDS_JOURNAL",
        "STREAM",
        "Bus",
        "Consumer",
        "Link",
        "NatsBus",
        "check_url",
        "echo_of_write",
        "publish",
        "shard_of",
        "tls_context",
    ]


def test_without_a_bus_watch_keeps_its_in_process_queue(tmp_path: Path) -> None:
    # In a process of its own: other tests here load nats-py.
    root = make_repo(tmp_path / "repo", "rules: []\n", {"listen": "off"})
    program = f"""
import sys
from pathlib import Path
from rich.console import Console
from scribe.config import load_settings
from scribe.daemon import WatchService
from scribe.scheduler import Scheduler
root = Path({str(root)!r})
service = WatchService(root, load_settings(root), [], rules_file=root / ".scribe/rules.yaml",
    rules_display="rules.yaml", rules_fixed=False, flags={{}}, listen_given=False,
    console=Console(stderr=True))
print(type(service.scheduler) is Scheduler, "nats" in sys.modules)
"""
    ran = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.stdout.split() == ["True", "False"], ran.stderr
