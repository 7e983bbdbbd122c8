"""The watcher: real files, a real inotify watcher (and the polling backend).

Each test runs ``scribe.watch.watch`` in a thread (``Recorder``) or drives
``InotifyTree`` directly, does what a user or an editor does to the files, and
checks the ``Change`` records Scribe would act on.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest
from inotify_simple import INotify

from live_helpers import Recorder, holds_for, merged
from scribe.events import EventKind
from scribe.files import read_text, write_cas
from scribe.inotify import InotifyTree
from scribe.watch import Change, Ignore, scan

CREATED, MODIFIED, DELETED, MOVED = (
    EventKind.CREATED,
    EventKind.MODIFIED,
    EventKind.DELETED,
    EventKind.MOVED,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    return repo.resolve()


def by_path(changes: list[Change]) -> list[Change]:
    return sorted(changes, key=lambda c: (c.path, c.dest or ""))


# -- kinds ---------------------------------------------------------------------


def test_create_modify_delete_are_reported_with_their_kinds(root: Path) -> None:
    with Recorder(root) as rec:
        (root / "a.md").write_text("one\n")
        rec.wait_closed("a.md")
        changes = rec.settled()
        assert changes[0] == Change(CREATED, "a.md")
        assert merged(changes, "a.md") is CREATED
        assert {c.path for c in changes} == {"a.md"}

        rec.clear()
        with open(root / "a.md", "a") as f:
            f.write("two\n")
        rec.wait_closed("a.md")
        changes = rec.settled()
        assert {c.kind for c in changes} == {MODIFIED}
        assert changes[-1] == Change(MODIFIED, "a.md", closed=True)

        rec.clear()
        (root / "a.md").unlink()
        rec.wait_for(lambda cs: bool(cs))
        assert rec.settled() == [Change(DELETED, "a.md", closed=True)]


def test_a_write_is_reported_closed_only_when_its_writer_closes_the_file(root: Path) -> None:
    (root / "a.md").write_text("start\n")
    with Recorder(root) as rec:
        with open(root / "a.md", "a") as f:
            f.write("more\n")
            f.flush()
            rec.wait_for(lambda cs: any(c.path == "a.md" for c in cs))
            # still open: nothing may claim the writer is done
            assert holds_for(lambda: not any(c.closed for c in rec.changes), 0.2)
            assert rec.changes == [Change(MODIFIED, "a.md")]
            f.write("the end\n")
        rec.wait_closed("a.md")
        assert rec.settled()[-1] == Change(MODIFIED, "a.md", closed=True)


def test_a_rename_inside_the_tree_is_one_move(root: Path) -> None:
    (root / "a.md").write_text("x\n")
    (root / "sub").mkdir()
    with Recorder(root) as rec:
        os.rename(root / "a.md", root / "sub" / "b.md")
        rec.wait_for(lambda cs: bool(cs))
        assert rec.settled() == [Change(MOVED, "a.md", "sub/b.md", closed=True)]


def test_a_file_moved_in_from_outside_is_created_and_one_moved_out_is_deleted(
    root: Path, tmp_path: Path
) -> None:
    (tmp_path / "outside.md").write_text("from afar\n")
    (root / "leaving.md").write_text("bye\n")
    with Recorder(root) as rec:
        os.rename(tmp_path / "outside.md", root / "arrived.md")
        os.rename(root / "leaving.md", tmp_path / "left.md")
        rec.wait_for(lambda cs: len(cs) >= 2)
        assert by_path(rec.settled()) == [
            Change(CREATED, "arrived.md", closed=True),
            Change(DELETED, "leaving.md", closed=True),
        ]


# -- editor save patterns ------------------------------------------------------


@pytest.mark.parametrize("temp", [".note.md.tmp", "note.md.swp", ".#note.md"])
def test_an_atomic_save_is_one_closed_modification_and_nothing_for_the_temp_file(
    root: Path, temp: str
) -> None:
    (root / "note.md").write_text("old\n")
    with Recorder(root) as rec:
        (root / temp).write_text("new\n")
        os.replace(root / temp, root / "note.md")
        rec.wait_closed("note.md")
        assert rec.settled() == [Change(MODIFIED, "note.md", closed=True)]


def test_a_rename_over_an_existing_file_from_an_unknown_name_is_a_modification(
    root: Path,
) -> None:
    """Some editors save through a temp name Scribe does not ignore (a "safe write"):
    the note was replaced, so rules on ``modified`` must run for it."""
    (root / "note.md").write_text("old\n")
    (root / "draft.txt").write_text("seen before\n")
    with Recorder(root) as rec:
        os.replace(root / "draft.txt", root / "note.md")
        rec.wait_closed("note.md")
        changes = rec.settled()
    assert Change(MODIFIED, "note.md", closed=True) in changes
    assert Change(DELETED, "draft.txt", closed=True) in changes
    assert not [c for c in changes if c.kind is EventKind.MOVED]


def test_backup_then_write_coalesces_to_a_modification(root: Path) -> None:
    """Vim's default: probe with 4913, rename the file to a backup~, write a new
    one, delete the backup."""
    (root / "note.md").write_text("old\n")
    with Recorder(root) as rec:
        (root / "4913").write_text("")
        (root / "4913").unlink()
        os.rename(root / "note.md", root / "note.md~")
        (root / "note.md").write_text("new\n")
        (root / "note.md~").unlink()
        rec.wait_closed("note.md")
        changes = rec.settled()
        assert {c.path for c in changes} == {"note.md"}  # nothing about the probe or the backup
        assert merged(changes, "note.md") is MODIFIED
        assert changes[-1] == Change(MODIFIED, "note.md", closed=True)


def test_backup_moved_out_of_the_tree_then_write_is_a_modification(
    root: Path, tmp_path: Path
) -> None:
    """Vim with ``backupdir`` elsewhere moves the file out of the tree, then writes
    a new one: the new file must not be reported deleted after it was written."""
    backups = tmp_path / "backups"
    backups.mkdir()
    for i in range(5):
        (root / f"note{i}.md").write_text("old\n")
    with Recorder(root) as rec:
        for i in range(5):
            os.rename(root / f"note{i}.md", backups / f"note{i}.md~")
            (root / f"note{i}.md").write_text("new\n")
        rec.wait_for(
            lambda cs: all(
                any(c.closed and c.target == f"note{i}.md" for c in cs) for i in range(5)
            )
        )
        changes = rec.settled()
        for i in range(5):
            assert merged(changes, f"note{i}.md") is MODIFIED, [
                c for c in changes if c.path == f"note{i}.md"
            ]


def test_scribes_own_write_reports_nothing_and_leaves_the_file_known(root: Path) -> None:
    """Scribe's swap is recognised by its temp file's cookie: no echo to re-check,
    no deletion, and the user's next save is still an ordinary modification."""
    (root / "note.md").write_text("body\n")
    with Recorder(root) as rec:
        for _ in range(3):
            write_cas(read_text(root, "note.md"), b"---\nmodified: now\n---\nbody\n")
        assert rec.settled() == []
        (root / "note.md").write_text("the user's edit\n")
        rec.wait_closed("note.md")
        assert merged(rec.settled(), "note.md") is MODIFIED


# -- directories ---------------------------------------------------------------


def test_a_directory_moved_within_the_tree_moves_its_files_and_stays_watched(root: Path) -> None:
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "a.md").write_text("a\n")
    (root / "d" / "sub" / "b.md").write_text("b\n")
    with Recorder(root) as rec:
        os.rename(root / "d", root / "e")
        rec.wait_for(lambda cs: len(cs) >= 2)
        assert by_path(rec.settled()) == [
            Change(MOVED, "d/a.md", "e/a.md", closed=True),
            Change(MOVED, "d/sub/b.md", "e/sub/b.md", closed=True),
        ]

        rec.clear()
        (root / "e" / "sub" / "b.md").write_text("b, edited\n")
        (root / "e" / "sub" / "c.md").write_text("c\n")
        rec.wait_closed("e/sub/c.md")
        changes = rec.settled()
        assert {c.target for c in changes} == {"e/sub/b.md", "e/sub/c.md"}
        assert merged(changes, "e/sub/b.md") is MODIFIED
        assert merged(changes, "e/sub/c.md") is CREATED


def test_files_written_quickly_into_a_new_directory_are_all_reported(root: Path) -> None:
    expected: set[str] = set()
    with Recorder(root) as rec:
        for i in range(5):
            deep = root / f"new{i}" / "deeper" / "still"
            deep.mkdir(parents=True)
            for j in range(10):
                (deep / f"n{j}.md").write_text(f"{i}.{j}\n")
                expected.add(f"new{i}/deeper/still/n{j}.md")
            (root / f"new{i}" / "top.md").write_text("top\n")
            expected.add(f"new{i}/top.md")
        rec.wait_for(lambda cs: expected <= {c.target for c in cs})
        changes = rec.settled()
        assert {c.target for c in changes} == expected
        for path in expected:
            assert merged(changes, path) is CREATED


def test_a_file_still_open_in_a_new_directory_is_not_reported_closed(root: Path) -> None:
    """``cp -r`` or an editor creating ``d/x.md``: the file exists before the new
    directory's watch does, and may still be being written."""
    with Recorder(root) as rec:
        (root / "d").mkdir()
        with open(root / "d" / "f.md", "w") as f:
            f.write("part 1\n")
            f.flush()
            rec.wait_for(lambda cs: any(c.target == "d/f.md" for c in cs))
            assert holds_for(lambda: not any(c.closed for c in rec.about("d/f.md")), 0.2)
            f.write("part 2\n")
        rec.wait_closed("d/f.md")
        assert merged(rec.settled(), "d/f.md") is CREATED


def test_a_directory_moved_out_of_the_tree_deletes_its_files(root: Path, tmp_path: Path) -> None:
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "a.md").write_text("a\n")
    (root / "d" / "sub" / "b.md").write_text("b\n")
    with Recorder(root) as rec:
        os.rename(root / "d", tmp_path / "away")
        rec.wait_for(lambda cs: len(cs) >= 2)
        assert by_path(rec.settled()) == [
            Change(DELETED, "d/a.md", closed=True),
            Change(DELETED, "d/sub/b.md", closed=True),
        ]

        rec.clear()
        (tmp_path / "away" / "sub" / "b.md").write_text("edited out there\n")
        (root / "sentinel.md").write_text("s\n")
        rec.wait_closed("sentinel.md")
        assert {c.target for c in rec.settled()} == {"sentinel.md"}


def test_a_directory_moved_out_and_recreated_at_once_is_watched_again(
    root: Path, tmp_path: Path
) -> None:
    (root / "d").mkdir()
    (root / "d" / "a.md").write_text("a\n")
    with Recorder(root) as rec:
        os.rename(root / "d", tmp_path / "away")
        (root / "d").mkdir()
        (root / "d" / "b.md").write_text("b\n")
        rec.wait_for(lambda cs: any(c.target == "d/b.md" for c in cs))
        changes = rec.settled()
        assert merged(changes, "d/a.md") is DELETED
        assert merged(changes, "d/b.md") is CREATED

        rec.clear()
        (root / "d" / "c.md").write_text("c\n")
        rec.wait_closed("d/c.md")
        assert merged(rec.settled(), "d/c.md") is CREATED


# -- what is ignored -----------------------------------------------------------


def test_vcs_state_and_editor_temp_files_are_ignored(root: Path) -> None:
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    with Recorder(root) as rec:
        (root / ".git" / "HEAD").write_text("ref: refs/heads/other\n")
        (root / ".git" / "objects" / "ab").mkdir(parents=True)
        (root / ".git" / "objects" / "ab" / "cdef").write_bytes(b"x")
        (root / ".git" / "index.lock").write_text("")
        (root / ".scribe").mkdir()
        (root / ".scribe" / "rules.yaml").write_text("rules: []\n")
        (root / ".scribe" / "state.db").write_bytes(b"db")
        (root / "sub").mkdir()
        for name in (
            "note.md.swp",
            "sub/.note.md.swx",
            "note.md~",
            ".#note.md",
            "#note.md#",
            "4913",
            "x.tmp",
            "sub/.scribe-a.md.42.beef.tmp",
        ):
            (root / name).write_text("temp\n")
            os.rename(root / name, root / f"{name}.swp")  # and renamed between ignored names
            (root / f"{name}.swp").unlink()
        (root / "sentinel.md").write_text("s\n")
        rec.wait_closed("sentinel.md")
        assert {c.target for c in rec.settled()} == {"sentinel.md"}


def test_configured_globs_and_gitignore_are_honoured(root: Path) -> None:
    (root / ".gitignore").write_text("drafts/\n*.bak\n/build\n")
    ignore = Ignore(root, ["**/*.log", "private/**"], gitignore=True)
    kept = ["sub/keep.md", "sub/build/kept.md", "sub/drafts.md", "keep.log.md"]
    with Recorder(root, ignore) as rec:
        for name in (
            "drafts/a.md",
            "sub/drafts/b.md",
            "x.bak",
            "sub/y.bak",
            "build/out.md",
            "app.log",
            "sub/deep/app.log",
            "private/secret.md",
            *kept,
        ):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text("x\n")
        rec.wait_for(lambda cs: set(kept) <= {c.target for c in cs})
        assert {c.target for c in rec.settled()} == set(kept)


def test_gitignore_is_not_used_unless_asked(root: Path) -> None:
    (root / ".gitignore").write_text("*.md\n")
    with Recorder(root, Ignore(root)) as rec:
        (root / "a.md").write_text("x\n")
        rec.wait_closed("a.md")


def test_a_symlink_loop_does_not_hang_the_start(root: Path) -> None:
    (root / "dir").mkdir()
    os.symlink("..", root / "dir" / "up")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    with Recorder(root) as rec:  # ready within its bounded wait
        (root / "dir" / "a.md").write_text("x\n")
        rec.wait_closed("dir/a.md")
    assert sorted(scan(root, Ignore(root))) == ["dir/a.md", "dir/up", "loop1", "loop2"]


# -- polling -------------------------------------------------------------------


def test_polling_reports_create_modify_and_delete(root: Path) -> None:
    with Recorder(root, poll=True) as rec:
        (root / "a.md").write_text("one\n")
        (root / "a.md.swp").write_text("ignored\n")
        (root / ".git").mkdir()
        (root / ".git" / "HEAD").write_text("ignored\n")
        rec.wait_for(lambda cs: any(c.target == "a.md" for c in cs))
        changes = rec.settled(window=0.6)
        assert {c.target for c in changes} == {"a.md"}
        assert merged(changes, "a.md") is CREATED

        rec.clear()
        (root / "a.md").write_text("one, and then two\n")
        rec.wait_for(lambda cs: bool(cs))
        assert merged(rec.settled(window=0.6), "a.md") is MODIFIED

        rec.clear()
        (root / "a.md").unlink()
        rec.wait_for(lambda cs: bool(cs))
        assert rec.settled(window=0.6) == [Change(DELETED, "a.md")]


def test_polling_reports_saves_within_the_same_second_and_atomic_saves(root: Path) -> None:
    note = root / "note.md"
    note.write_text("v1\n")
    second = note.stat().st_mtime_ns // 10**9 * 10**9
    os.utime(note, ns=(second, second + 100_000_000))
    with Recorder(root, poll=True) as rec:
        for i, offset in enumerate((200_000_000, 300_000_000, 400_000_000), start=2):
            rec.clear()
            note.write_text(f"v{i}\n")
            os.utime(note, ns=(second, second + offset))  # every save in one and the same second
            rec.wait_for(lambda cs: bool(cs))
            # A poll may fall between the write and the utime: two reports, both right.
            assert set(rec.settled(window=0.3)) == {Change(MODIFIED, "note.md")}

        rec.clear()
        (root / ".note.md.tmp").write_text("atomic\n")
        os.replace(root / ".note.md.tmp", note)
        rec.wait_for(lambda cs: bool(cs))
        assert rec.settled(window=0.3) == [Change(MODIFIED, "note.md")]


# -- overflow and the watch limit ----------------------------------------------


def test_rescan_reports_every_file_modified_and_missing_ones_deleted(root: Path) -> None:
    (root / "sub").mkdir()
    for name in ("a.md", "sub/b.md", "gone.md", "x.swp"):
        (root / name).write_text("x\n")
    got: list[Change] = []
    with InotifyTree(root, Ignore(root), got.append) as tree:
        # as if these events were lost in an overflow: the tree never read them
        (root / "gone.md").unlink()
        (root / "newdir").mkdir()
        (root / "newdir" / "c.md").write_text("c\n")
        tree.rescan()
        assert by_path(got) == [
            Change(MODIFIED, "a.md"),
            Change(DELETED, "gone.md", closed=True),
            Change(MODIFIED, "newdir/c.md"),
            Change(MODIFIED, "sub/b.md"),
        ]
        # the directory that appeared unseen is watched from now on
        got.clear()
        (root / "newdir" / "d.md").write_text("d\n")
        for _ in range(50):  # bounded: each read blocks at most 100 ms
            assert tree.read(timeout_ms=100) is False
            if any(c.closed for c in got):
                break
        assert merged(got, "newdir/d.md") is CREATED
        assert got[-1] == Change(MODIFIED, "newdir/d.md", closed=True)


def test_a_real_queue_overflow_rescans_and_misses_no_file(root: Path) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 100_000:
        pytest.skip(f"max_queued_events is {limit}: too slow to overflow")
    got: list[Change] = []
    with InotifyTree(root, Ignore(root), got.append) as tree:
        names = [f"f{i}.md" for i in range(limit // 2 + 200)]
        for name in names:  # CREATE + CLOSE_WRITE each, unread: the queue overflows
            os.close(os.open(root / name, os.O_CREAT | os.O_WRONLY))
        assert tree.read(timeout_ms=1000) is True
    last = {c.path: c for c in got}  # the rescan reported every file, last
    assert set(last) == set(names)
    assert {c.kind for c in last.values()} == {MODIFIED}


def _no_more_watches(self: INotify, path: object, mask: int) -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_hitting_the_watch_limit_falls_back_to_polling_with_help(
    root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(INotify, "add_watch", _no_more_watches)
    caplog.set_level(logging.WARNING, logger="scribe")
    with Recorder(root) as rec:
        (root / "a.md").write_text("x\n")
        rec.wait_for(lambda cs: any(c.target == "a.md" for c in cs))
        assert merged(rec.settled(window=0.6), "a.md") is CREATED
    assert "fs.inotify.max_user_watches" in caplog.text
    assert "sudo sysctl fs.inotify.max_user_watches=" in caplog.text


def test_hitting_the_watch_limit_on_a_new_directory_loses_none_of_its_files(
    root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scribe")
    real_add_watch = INotify.add_watch

    def limited(self: INotify, path: object, mask: int) -> int:
        if Path(str(path)).name == "one-too-many":
            return _no_more_watches(self, path, mask)
        return int(real_add_watch(self, path, mask))

    (root / "old.md").write_text("old\n")
    with Recorder(root) as rec:
        monkeypatch.setattr(INotify, "add_watch", limited)
        (root / "one-too-many").mkdir()
        (root / "one-too-many" / "new.md").write_text("new\n")
        rec.wait_for(lambda cs: any(c.target == "one-too-many/new.md" for c in cs))
        assert "fs.inotify.max_user_watches" in caplog.text
        # and polling carries on
        rec.clear()
        (root / "one-too-many" / "new.md").write_text("new, edited\n")
        rec.wait_for(lambda cs: any(c.target == "one-too-many/new.md" for c in cs))


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "polling"])
def test_a_stop_hands_over_the_changes_already_made_before_it(tmp_path: Path, poll: bool) -> None:
    """What was saved before a stop is reported, even if the watcher had not read it
    yet: ``scribe watch`` then journals it as left for the next start."""
    import threading

    from scribe.watch import watch

    (tmp_path / "notes").mkdir()
    reported: list[Change] = []
    first, release, stop, ready = (threading.Event() for _ in range(4))

    def emit(change: Change) -> None:
        if not first.is_set():
            first.set()
            assert release.wait(10)  # the watcher is busy: what comes next waits unread
        reported.append(change)

    thread = threading.Thread(
        target=watch,
        args=(tmp_path, Ignore(tmp_path), emit, stop),
        kwargs={"poll": poll, "ready": ready},
        daemon=True,
    )
    thread.start()
    assert ready.wait(10)
    (tmp_path / "notes" / "first.md").write_text("first\n")
    assert first.wait(10)
    names = [f"n{i}.md" for i in range(100)]
    for name in names:
        (tmp_path / "notes" / name).write_text("saved before the stop\n")
    stop.set()
    release.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    seen = {change.target for change in reported}
    assert {f"notes/{name}" for name in names} <= seen
