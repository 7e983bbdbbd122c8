"""Reading files that round-trip byte for byte, and compare-and-swap writes."""

from __future__ import annotations

import codecs
import os
import random
import stat
import threading
import time
from pathlib import Path

import pytest

from scribe.errors import ContentChanged, FileBusy, Skipped
from scribe.files import TEMP_PREFIX, enable_writer_probe, read_text, write_cas

MARK = b"<!-- scribe -->\n"


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root.resolve()


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(TEMP_PREFIX))


# -- read_text ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "encoding", "bom"),
    [
        (b"plain\n", "utf-8", b""),
        (codecs.BOM_UTF8 + "caf\u00e9\r\n".encode(), "utf-8", codecs.BOM_UTF8),
        (
            codecs.BOM_UTF16_LE + "\u65e5\u672c\n".encode("utf-16-le"),
            "utf-16-le",
            codecs.BOM_UTF16_LE,
        ),
        (codecs.BOM_UTF16_BE + "x\n".encode("utf-16-be"), "utf-16-be", codecs.BOM_UTF16_BE),
    ],
)
def test_read_text_decodes_and_encodes_back_to_the_same_bytes(
    tmp_path: Path, raw: bytes, encoding: str, bom: bytes
) -> None:
    root = _root(tmp_path)
    (root / "a.md").write_bytes(raw)
    file = read_text(root, "a.md")
    assert (file.encoding, file.bom) == (encoding, bom)
    assert not file.text.startswith("\ufeff")
    assert file.encode(file.text) == raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"PK\x03\x04\x00\x00binary", "binary file (contains NUL bytes)"),
        (b"caf\xe9 latin-1\n", "not valid UTF-8 text (byte 3)"),
        (codecs.BOM_UTF8 + b"ok \xff\n", "not valid utf-8 text (byte 3)"),
    ],
)
def test_read_text_skips_what_is_not_text(tmp_path: Path, raw: bytes, reason: str) -> None:
    root = _root(tmp_path)
    (root / "a.md").write_bytes(raw)
    with pytest.raises(Skipped) as info:
        read_text(root, "a.md")
    assert str(info.value) == reason


def test_read_text_skips_files_over_the_size_limit(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "big.md").write_bytes(b"x" * 101)
    with pytest.raises(Skipped, match=r"larger than max_file_bytes \(101 > 100 bytes\)"):
        read_text(root, "big.md", max_bytes=100)
    assert read_text(root, "big.md", max_bytes=101).text == "x" * 101


def test_read_text_skips_symlinks_that_lead_outside_the_root(tmp_path: Path) -> None:
    root = _root(tmp_path)
    outside = tmp_path / "secret.md"
    outside.write_text("outside\n")
    (root / "link.md").symlink_to(outside)
    with pytest.raises(Skipped, match="symlink leads outside the repository"):
        read_text(root, "link.md")
    with pytest.raises(Skipped, match="outside the repository"):
        read_text(root, "../secret.md")


def test_read_text_follows_symlinks_inside_the_root_to_the_real_file(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "real.md").write_text("real\n")
    (root / "link.md").symlink_to("real.md")
    file = read_text(root, "link.md")
    assert file.path == root / "real.md"
    write_cas(file, b"edited\n")
    assert (root / "link.md").is_symlink()
    assert (root / "real.md").read_bytes() == b"edited\n"


def test_read_text_skips_a_fifo_instead_of_blocking(tmp_path: Path) -> None:
    root = _root(tmp_path)
    os.mkfifo(root / "pipe.md")
    result: list[BaseException | None] = []

    def read() -> None:
        try:
            read_text(root, "pipe.md")
            result.append(None)
        except Exception as exc:
            result.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the reader so the test run can end
        with open(os.open(root / "pipe.md", os.O_WRONLY | os.O_NONBLOCK), "wb"):
            pass
        pytest.fail("read_text blocked opening a FIFO")
    assert len(result) == 1
    assert isinstance(result[0], Skipped)
    assert str(result[0]) == "not a regular file"


def test_read_text_skips_a_directory(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "dir.md").mkdir()
    with pytest.raises(Skipped, match="not a regular file"):
        read_text(root, "dir.md")


def test_read_text_of_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_text(_root(tmp_path), "gone.md")


# -- write_cas ---------------------------------------------------------------------


def test_write_cas_replaces_the_content_and_keeps_the_mode(tmp_path: Path) -> None:
    root = _root(tmp_path)
    path = root / "a.md"
    path.write_bytes(b"old\n")
    path.chmod(0o640)
    file = read_text(root, "a.md")
    inode = path.stat().st_ino
    write_cas(file, b"new\n")
    assert path.read_bytes() == b"new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.stat().st_ino != inode  # a new file was swapped in, not rewritten in place
    assert _leftovers(root) == []


def test_write_cas_keeps_an_unusual_mode_despite_the_umask(tmp_path: Path) -> None:
    root = _root(tmp_path)
    path = root / "a.md"
    path.write_bytes(b"old\n")
    path.chmod(0o666)
    old_umask = os.umask(0o077)
    try:
        write_cas(read_text(root, "a.md"), b"new\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666


def test_write_cas_refuses_when_the_file_changed_since_it_was_read(tmp_path: Path) -> None:
    root = _root(tmp_path)
    path = root / "a.md"
    path.write_bytes(b"planned from this\n")
    stale = read_text(root, "a.md")
    path.write_bytes(b"the user's newer save\n")
    before = path.stat()
    with pytest.raises(ContentChanged):
        write_cas(stale, b"scribe's version\n")
    after = path.stat()
    assert path.read_bytes() == b"the user's newer save\n"
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert _leftovers(root) == []


def test_write_cas_refuses_when_the_file_was_deleted(tmp_path: Path) -> None:
    root = _root(tmp_path)
    path = root / "a.md"
    path.write_bytes(b"x\n")
    stale = read_text(root, "a.md")
    path.unlink()
    with pytest.raises(ContentChanged):
        write_cas(stale, b"y\n")
    assert not path.exists()
    assert _leftovers(root) == []


def test_write_cas_writes_large_content_completely(tmp_path: Path) -> None:
    root = _root(tmp_path)
    path = root / "a.md"
    path.write_bytes(b"small\n")
    big = os.urandom(3 * 1024 * 1024).hex().encode()
    write_cas(read_text(root, "a.md"), big)
    assert path.read_bytes() == big
    assert _leftovers(root) == []


def _race(root: Path, saves: int, *, jitter: bool) -> tuple[bytes, bytes, int]:
    """A user saving over and over (atomically, as most editors do) while Scribe keeps
    writing from whatever it last read. Returns (final content, last save, wins)."""
    path = root / "note.md"
    path.write_bytes(b"user 0\n")
    last = [b"user 0\n"]
    done = threading.Event()
    rng = random.Random(saves)
    # Big enough that reading it takes a while: the windows between Scribe's steps
    # widen, and a lost save, if the swap logic allows one, shows up within seconds.
    padding = b"x" * 256 * 1024

    def user() -> None:
        for i in range(1, saves):
            data = f"user {i}\n".encode() + padding
            swap = root / "note.md.swp"
            swap.write_bytes(data)
            os.replace(swap, path)
            last[0] = data
            if jitter and rng.random() < 0.3:
                time.sleep(rng.random() / 2000)
        done.set()

    thread = threading.Thread(target=user)
    thread.start()
    wins = 0
    try:
        while not done.is_set():
            file = read_text(root, "note.md")
            data = file.raw if file.raw.endswith(MARK) else file.raw + MARK
            try:
                write_cas(file, data)
                wins += 1
            except ContentChanged:
                pass
    finally:
        thread.join()
    return path.read_bytes(), last[0], wins


def test_write_cas_racing_a_user_never_loses_their_latest_save(tmp_path: Path) -> None:
    # Probabilistic by nature: a swap-back that lost a save made during it was
    # caught here in most runs (each round is a fresh race of 100 saves).
    deadline = time.monotonic() + 5
    rounds = wins = 0
    while time.monotonic() < deadline or rounds < 4:
        root = tmp_path / f"round{rounds}"
        root.mkdir()
        final, last, won = _race(root.resolve(), 100, jitter=rounds == 1)
        # Either the user's last save, or Scribe's edit made from exactly that save.
        lost = f"round {rounds}: lost {last[:10]!r}..., the file has {final[:10]!r}..."
        assert final in (last, last + MARK), lost
        assert _leftovers(root) == []
        rounds += 1
        wins += won
    assert wins > 0  # Scribe's writes did get through sometimes: the race was real


# -- writers that still hold the file ----------------------------------------------


def test_write_cas_leaves_a_file_alone_while_another_writer_holds_it_open(
    tmp_path: Path,
) -> None:
    """An editor that truncated the file and has not finished writing would keep
    writing into the replaced (deleted) file: its save would be lost."""
    root = _root(tmp_path)
    note = root / "note.md"
    note.write_bytes(b"")
    assert enable_writer_probe()
    planned_from = read_text(root, "note.md")
    with open(note, "wb") as writer:  # truncated, the rest of the save still to come
        with pytest.raises(FileBusy, match="open for writing by another process"):
            write_cas(planned_from, b"---\nmodified: now\n---\n")
        writer.write(b"the user's words\n")
    assert note.read_bytes() == b"the user's words\n"
    assert _leftovers(root) == []


def test_write_cas_proceeds_once_the_writer_has_closed(tmp_path: Path) -> None:
    root = _root(tmp_path)
    note = root / "note.md"
    with open(note, "wb") as writer:
        writer.write(b"done\n")
    assert enable_writer_probe()
    write_cas(read_text(root, "note.md"), b"done, stamped\n")
    assert note.read_bytes() == b"done, stamped\n"


def test_write_cas_works_for_names_at_the_length_limit(tmp_path: Path) -> None:
    root = _root(tmp_path)
    name = "n" * 252 + ".md"
    (root / name).write_bytes(b"old\n")
    write_cas(read_text(root, name), b"new\n")
    assert (root / name).read_bytes() == b"new\n"
    assert _leftovers(root) == []


def test_without_the_exchange_the_last_checks_still_guard_the_replace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """File systems without RENAME_EXCHANGE: re-hash and writer probe just before
    ``os.replace`` (the kernel feature is the only thing simulated here)."""
    import scribe.files

    monkeypatch.setattr(scribe.files, "_exchange", lambda _a, _b: False)
    root = _root(tmp_path)
    note = root / "note.md"
    note.write_bytes(b"old\n")
    write_cas(read_text(root, "note.md"), b"new\n")
    assert note.read_bytes() == b"new\n"

    stale = read_text(root, "note.md")
    note.write_bytes(b"the user's save\n")
    with pytest.raises(ContentChanged):
        write_cas(stale, b"scribe\n")
    assert note.read_bytes() == b"the user's save\n"

    assert enable_writer_probe()
    planned_from = read_text(root, "note.md")
    with open(note, "ab") as writer:
        with pytest.raises(FileBusy):
            write_cas(planned_from, b"scribe\n")
        writer.write(b"more\n")
    assert note.read_bytes() == b"the user's save\nmore\n"
    assert _leftovers(root) == []


def test_read_text_skips_files_under_a_directory_symlink_leading_outside(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.md").write_text("secret\n")
    (root / "ext").symlink_to(outside)
    with pytest.raises(Skipped, match="symlink leads outside the repository"):
        read_text(root, "ext/secret.md")


def test_read_text_follows_a_directory_symlink_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.md").write_text("hello\n")
    (root / "alias").symlink_to("real")
    file = read_text(root, "alias/a.md")
    assert file.text == "hello\n"
    assert file.path == root / "real" / "a.md"


def _dead_pid() -> int:
    import subprocess

    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_clear_leftovers_removes_a_killed_writers_temp_files(tmp_path: Path) -> None:
    from scribe.files import clear_leftovers, sha256

    target = tmp_path / "a.md"
    target.write_bytes(b"before\n")
    dead = _dead_pid()
    ours_unswapped = tmp_path / f"{TEMP_PREFIX}a.md.{dead}.0001.tmp"
    ours_unswapped.write_bytes(b"after\n")
    partial = tmp_path / f"{TEMP_PREFIX}a.md.{dead}.0002.tmp"
    partial.write_bytes(b"aft")  # killed mid-write, never swapped
    running = tmp_path / f"{TEMP_PREFIX}a.md.{os.getpid()}.0003.tmp"
    running.write_bytes(b"after\n")
    removed = clear_leftovers(target, sha256(b"before\n"), sha256(b"after\n"))
    assert removed == 2
    assert target.read_bytes() == b"before\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.md", running.name])


def test_clear_leftovers_gives_back_a_save_the_killed_swap_displaced(tmp_path: Path) -> None:
    from scribe.files import clear_leftovers, sha256

    target = tmp_path / "a.md"
    target.write_bytes(b"after\n")  # the swap happened...
    displaced = tmp_path / f"{TEMP_PREFIX}a.md.{_dead_pid()}.0001.tmp"
    displaced.write_bytes(b"the user's save\n")  # ...after the user saved
    clear_leftovers(target, sha256(b"before\n"), sha256(b"after\n"))
    assert target.read_bytes() == b"the user's save\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.md"]
