"""End to end: a real ``scribe watch ROOT`` process, real files, real editors' saves.

Every rule here stamps ``modified`` with microseconds, so each rewrite is visible in
the file, and Scribe's log line ``rewrote PATH`` counts them.
"""

from __future__ import annotations

import os
import random
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from live_helpers import ScribeProcess, holds_for, wait_until

RULES = """\
rules:
  - id: stamp
    on: [created, modified]
    paths: ["**/*.md"]
    do:
      - set: {field: modified, value: "{{ now('%Y-%m-%dT%H:%M:%S.%fZ') }}"}
"""
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
SETTLE = 0.5  # how long a file must stay untouched to count as settled (no echo)

Start = Callable[..., ScribeProcess]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".scribe").mkdir(parents=True)
    (root / ".scribe" / "rules.yaml").write_text(RULES)
    return root.resolve()


@pytest.fixture
def scribe(repo: Path, tmp_path: Path) -> Iterator[Start]:
    """Start ``scribe watch repo`` (waiting until it watches); always stopped at teardown."""
    started: list[ScribeProcess] = []

    def start(*args: str, ready: bool = True) -> ScribeProcess:
        proc = ScribeProcess(repo, *args, log_path=tmp_path / f"scribe-{len(started)}.log")
        started.append(proc)
        if ready:
            proc.wait_ready()
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.close()


def read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""  # between an editor's rename and its write


def stamped(path: Path, body: str, *, title: str | None = None) -> bool:
    """``path`` holds exactly one frontmatter block with a stamp, then ``body``."""
    head = f"title: {title}\n" if title else ""
    return (
        re.fullmatch(rf"---\n{head}modified: {STAMP}\n---\n{re.escape(body)}", read(path))
        is not None
    )


def stamp_of(path: Path) -> str:
    match = re.search(rf"^modified: ({STAMP})$", read(path), re.MULTILINE)
    assert match, read(path)
    return match.group(1)


def settled(path: Path) -> bool:
    """The file stays byte for byte the same for ``SETTLE`` seconds."""
    before = read(path)
    return holds_for(lambda: read(path) == before, SETTLE)


# -- how editors save ----------------------------------------------------------


def save_in_place(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def save_via_temp(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def save_with_backup(path: Path, text: str) -> None:
    """Vim's default: probe with 4913, rename to a backup~, write anew, drop the backup."""
    probe = path.with_name("4913")
    probe.write_text("")
    probe.unlink()
    backup = path.with_name(path.name + "~")
    os.rename(path, backup)
    save_in_place(path, text)
    backup.unlink()


def save_with_backup_elsewhere(path: Path, text: str) -> None:
    """Vim with ``backupdir`` outside the repository: the file is moved out first."""
    backups = path.parent.parent.parent / "backups"  # next to the repo, not in it
    backups.mkdir(exist_ok=True)
    os.rename(path, backups / (path.name + "~"))
    save_in_place(path, text)


SAVES = [save_in_place, save_via_temp, save_with_backup, save_with_backup_elsewhere]


@pytest.mark.parametrize("save", SAVES, ids=lambda f: f.__name__)
def test_each_editor_save_is_one_rewrite_and_no_echo(
    repo: Path, scribe: Start, save: Callable[[Path, str], None]
) -> None:
    note = repo / "notes" / "note.md"
    note.parent.mkdir()
    proc = scribe()
    save_in_place(note, "---\ntitle: Note\n---\nfirst\n")
    assert wait_until(lambda: stamped(note, "first\n", title="Note"), 10), proc.log()
    assert settled(note)
    assert proc.rewrites("notes/note.md") == 1
    first_stamp = stamp_of(note)

    save(note, read(note).replace("first\n", "second\n"))  # the editor keeps the stamp it loaded
    assert wait_until(lambda: stamp_of(note) != first_stamp, 10), proc.log()
    assert settled(note), "Scribe reacted to its own write"
    assert proc.rewrites("notes/note.md") == 2
    assert stamped(note, "second\n", title="Note")
    assert stamp_of(note) > first_stamp
    assert sorted(p.name for p in note.parent.iterdir()) == ["note.md"]


def test_polling_gives_one_rewrite_per_save_and_no_echo(repo: Path, scribe: Start) -> None:
    note = repo / "note.md"
    proc = scribe("--poll")
    save_in_place(note, "first\n")
    assert wait_until(lambda: stamped(note, "first\n"), 10), proc.log()
    assert settled(note)
    first_stamp = stamp_of(note)
    save_via_temp(note, read(note).replace("first", "second"))
    assert wait_until(lambda: stamp_of(note) != first_stamp, 10), proc.log()
    assert settled(note)
    assert stamped(note, "second\n")
    assert proc.rewrites("note.md") == 2


@pytest.mark.parametrize("save", [save_in_place, save_via_temp], ids=lambda f: f.__name__)
def test_a_save_that_changes_nothing_causes_no_rewrite(
    repo: Path, scribe: Start, save: Callable[[Path, str], None]
) -> None:
    note = repo / "note.md"
    proc = scribe()
    save_in_place(note, "body\n")
    assert wait_until(lambda: stamped(note, "body\n"), 10), proc.log()
    assert settled(note)
    content = read(note)

    save(note, content)  # same bytes again (`:w` without an edit)
    assert settled(note)
    assert read(note) == content
    assert proc.rewrites("note.md") == 1

    save(note, content.replace("body", "edited body"))  # still watching: a real edit is stamped
    assert wait_until(lambda: proc.rewrites("note.md") == 2, 10), proc.log()
    assert stamped(note, "edited body\n")


def test_racing_a_writer_1000_times_loses_no_user_edit(repo: Path, scribe: Start) -> None:
    note = repo / "race.md"
    proc = scribe()
    rng = random.Random(20261124)
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            for n in range(1, 1001):
                save = save_in_place if rng.random() < 0.5 else save_via_temp
                save(note, f"body {n}\n")
                time.sleep(rng.uniform(0, 0.003))  # the user's pace; never waits for Scribe
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=writer, name="racing-writer")
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the writer did not finish in 60 s"
    assert failures == []

    assert wait_until(lambda: stamped(note, "body 1000\n"), 15), (
        f"{read(note)!r}\n{proc.log()[-3000:]}"
    )
    assert settled(note)
    assert stamped(note, "body 1000\n"), read(note)  # the user's last edit, stamped once
    assert list(repo.rglob(".scribe-*.tmp")) == []
    assert sorted(p.name for p in repo.iterdir()) == [".scribe", "race.md"]
    assert proc.proc.poll() is None
    assert "Traceback" not in proc.log()


def test_a_file_still_being_written_in_a_new_directory_is_not_cut_short(
    repo: Path, scribe: Start
) -> None:
    """``mkdir d && write d/x.md`` slowly (a copy, a download): Scribe must not
    rewrite the file under its writer, whose later writes would then be lost."""
    proc = scribe()
    (repo / "new").mkdir()
    note = repo / "new" / "copy.md"
    with open(note, "w", encoding="utf-8") as f:
        f.write("part 1\n")
        f.flush()
        assert settled(note)  # nobody touches it while it is open
        f.write("part 2\n")
    assert wait_until(lambda: stamped(note, "part 1\npart 2\n"), 10), (
        f"{read(note)!r}\n{proc.log()}"
    )
    assert settled(note)


def test_a_save_that_truncates_then_pauses_is_never_cut_short(repo: Path, scribe: Start) -> None:
    """Save, then at once reopen the file (truncating it), pause and write: Scribe,
    busy with the first save, must not replace the file while the second is open."""
    proc = scribe()
    note = repo / "slow.md"
    for n in range(1, 16):
        save_in_place(note, f"quick {n}\n")
        with open(note, "w", encoding="utf-8") as f:
            f.flush()
            time.sleep(0.02)  # the writer's own pause, mid-save: part of the scenario
            f.write(f"slow {n}\n")
        assert wait_until(partial(stamped, note, f"slow {n}\n"), 10), (
            f"save {n}: {read(note)!r}\n{proc.log()[-2000:]}"
        )
    assert settled(note)


# -- the process ---------------------------------------------------------------


def test_sigterm_exits_0_within_5_seconds(repo: Path, scribe: Start) -> None:
    proc = scribe()
    save_in_place(repo / "a.md", "a\n")
    assert wait_until(lambda: stamped(repo / "a.md", "a\n"), 10), proc.log()
    started = time.monotonic()
    assert proc.terminate(timeout=5) == 0, proc.log()
    assert time.monotonic() - started < 5
    assert "stopped" in proc.log()


def test_rewrites_wait_while_git_holds_the_index_lock(repo: Path, scribe: Start) -> None:
    (repo / ".git").mkdir()
    lock = repo / ".git" / "index.lock"
    lock.write_text("")
    proc = scribe()
    note = repo / "note.md"
    save_in_place(note, "during a commit\n")
    assert settled(note)
    assert read(note) == "during a commit\n"
    lock.unlink()
    assert wait_until(lambda: stamped(note, "during a commit\n"), 10), proc.log()


def test_scan_stamps_files_that_existed_before_the_watch(repo: Path, scribe: Start) -> None:
    (repo / "sub").mkdir()
    (repo / ".git").mkdir()
    for name in ("a.md", "sub/b.md", ".git/c.md"):
        (repo / name).write_text("old\n")
    (repo / "plain.txt").write_text("no rule for me\n")

    plain = scribe()  # without --scan: existing files are left as they are
    assert settled(repo / "a.md")
    assert read(repo / "a.md") == "old\n"
    assert plain.terminate() == 0

    proc = scribe("--scan")
    assert wait_until(
        lambda: stamped(repo / "a.md", "old\n") and stamped(repo / "sub" / "b.md", "old\n"), 10
    ), proc.log()
    assert read(repo / ".git" / "c.md") == "old\n"
    assert read(repo / "plain.txt") == "no rule for me\n"
    assert wait_until(lambda: "scanned " in proc.log(), 5), proc.log()
    save_in_place(repo / "sub" / "new.md", "new\n")  # and then it watches
    assert wait_until(lambda: stamped(repo / "sub" / "new.md", "new\n"), 10), proc.log()


def test_binary_files_and_symlinks_out_of_the_repo_are_left_alone(
    repo: Path, tmp_path: Path, scribe: Start
) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text("---\ntitle: not yours\n---\n")
    proc = scribe()
    binary = repo / "image.md"
    data = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    binary.write_bytes(data)
    link = repo / "link.md"
    link.symlink_to(outside)
    assert wait_until(
        lambda: "skipped image.md" in proc.log() and "skipped link.md" in proc.log(), 10
    ), proc.log()

    save_in_place(repo / "later.md", "later\n")  # the watcher is still at work
    assert wait_until(lambda: stamped(repo / "later.md", "later\n"), 10), proc.log()
    assert binary.read_bytes() == data
    assert outside.read_text() == "---\ntitle: not yours\n---\n"
    assert link.is_symlink()
    assert link.readlink() == outside
    assert proc.proc.poll() is None


def test_fifos_named_like_notes_do_not_stop_the_watcher(
    repo: Path, tmp_path: Path, scribe: Start
) -> None:
    proc = scribe()
    for i in range(8):  # more than there are workers; moved in, so handled at once
        os.mkfifo(tmp_path / f"pipe{i}.md")
        os.rename(tmp_path / f"pipe{i}.md", repo / f"pipe{i}.md")
    save_in_place(repo / "note.md", "note\n")
    assert wait_until(lambda: stamped(repo / "note.md", "note\n"), 5), proc.log()
    assert wait_until(lambda: proc.log().count("skipped pipe") == 8, 5), proc.log()
    assert all(stat.S_ISFIFO((repo / f"pipe{i}.md").stat().st_mode) for i in range(8))
    assert proc.terminate() == 0, proc.log()


def test_files_scribe_cannot_rewrite_do_not_stop_the_watcher(repo: Path, scribe: Start) -> None:
    """A 240-character name leaves no room for Scribe's temp file name: the write
    fails (ENAMETOOLONG). More such files than workers must not stop the watcher."""
    proc = scribe()
    long_names = [f"{i}{'x' * 236}.md" for i in range(6)]
    for name in long_names:
        save_in_place(repo / name, "long\n")

    def dealt_with(name: str) -> bool:  # reported as failed (or, once fixed, stamped)
        return f"failed to process {name}" in proc.log() or stamped(repo / name, "long\n")

    assert wait_until(lambda: all(dealt_with(name) for name in long_names), 10), proc.log()
    save_in_place(repo / "short.md", "short\n")
    assert wait_until(lambda: stamped(repo / "short.md", "short\n"), 10), proc.log()
    for name in long_names:
        assert read(repo / name) == "long\n" or stamped(repo / name, "long\n")
    assert proc.proc.poll() is None


@pytest.mark.parametrize(
    ("rules", "where"),
    [
        pytest.param(
            'rules:\n  - id: stamp\n    paths: ["**/*.md"]\n    dox: []\n',
            ":4:5: ",
            id="unknown-key",
        ),
        pytest.param("rules:\n  - id: [stamp\n", ":3:1: ", id="bad-yaml"),
    ],
)
def test_an_invalid_rules_file_exits_2_with_its_location(
    repo: Path, scribe: Start, rules: str, where: str
) -> None:
    (repo / ".scribe" / "rules.yaml").write_text(rules)
    proc = scribe(ready=False)
    assert proc.proc.wait(timeout=20) == 2
    log = proc.log()
    assert f".scribe/rules.yaml{where}" in log
    assert re.search(r"\.scribe/rules\.yaml:\d+:\d+: ", log)
    assert "Traceback" not in log
    assert "watching" not in log
