"""Hot reload's file watch: every settled change is reported once, early ones too."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_helpers import wait_until
from scribe.reload import Signature, snapshot, watch_files

INTERVAL = 0.02


class Watch:
    """``watch_files`` on a real thread, recording what it reports."""

    def __init__(self, paths: list[Path], since: dict[Path, Signature]) -> None:
        self.reported: list[Path] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=watch_files,
            args=(lambda: paths, self.reported.append, self.stop),
            kwargs={"since": since, "interval": INTERVAL},
            daemon=True,
        )

    def start(self) -> Watch:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def watches() -> Iterator[list[Watch]]:
    started: list[Watch] = []
    yield started
    for w in started:
        w.close()


@pytest.mark.parametrize("before", [None, "workers: 4\n"], ids=["created", "edited"])
def test_a_save_made_before_the_first_look_is_reported(
    tmp_path: Path, watches: list[Watch], before: str | None
) -> None:
    settings = tmp_path / "scribe.yaml"
    if before is not None:
        settings.write_text(before)
    since = snapshot([settings])  # taken when the settings were loaded
    settings.write_text("workers: 2\n")  # saved before the thread looked at all
    watch = Watch([settings], since)
    watches.append(watch.start())
    assert wait_until(lambda: watch.reported == [settings], 5)


def test_files_as_they_were_loaded_are_not_reported_and_a_later_save_is_reported_once(
    tmp_path: Path, watches: list[Watch]
) -> None:
    rules, settings = tmp_path / "rules.yaml", tmp_path / "scribe.yaml"
    rules.write_text("rules: []\n")
    watch = Watch([rules, settings], snapshot([rules, settings]))
    watches.append(watch.start())
    time.sleep(INTERVAL * 10)
    assert watch.reported == []

    rules.write_text("rules: [] # saved\n")
    assert wait_until(lambda: watch.reported == [rules], 5)
    time.sleep(INTERVAL * 10)
    assert watch.reported == [rules]
