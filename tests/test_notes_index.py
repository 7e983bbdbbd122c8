"""The note index on real files: listing, titles, resolution, cached reads,
events, and several threads at once."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from scribe.confinement import Confinement
from scribe.notes.index import NoteIndex
from scribe.notes.links import Link, Resolution, find_links, rewrite_links


def write(root: Path, rel: str, text: str = "") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def bump(path: Path, text: str) -> None:
    """Rewrite ``path`` so that its size or mtime surely changes."""
    before = path.stat()
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write(tmp_path, "index.md", "# Index\n[[Machine Learning]] [[ml]] [[Dup]] [[Nowhere]]\n")
    write(
        tmp_path,
        "notes/Machine Learning.md",
        "---\naliases: [ml, Statistical Learning]\n---\nbody\n",
    )
    write(tmp_path, "notes/sub/deep.md", "---\ntags: [a]\n---\ndeep\n")
    write(tmp_path, "a/Dup.md", "one\n")
    write(tmp_path, "b/dup.md", "two\n")
    write(tmp_path, "img/diagram.png", "not really a png\n")
    return tmp_path


def resolve(index: NoteIndex, text: str, source: str = "index.md") -> Resolution:
    (link,) = find_links(text)
    return index.resolve(link, source)


# -- listing -------------------------------------------------------------------------


def test_paths_are_every_note_sorted_and_relative(repo: Path) -> None:
    index = NoteIndex(repo)
    assert index.paths() == ["a/Dup.md", "b/dup.md", "index.md", "notes/Machine Learning.md",
                             "notes/sub/deep.md"]  # fmt: skip
    assert index.titles() == ["Dup", "dup", "index", "Machine Learning", "deep"]
    assert index.exists("img/diagram.png")
    assert not index.is_note("img/diagram.png")
    assert index.is_note("./notes/sub/../sub/deep.md")
    assert not index.exists("missing.md")


def test_the_listing_is_made_on_first_use_not_at_construction(tmp_path: Path) -> None:
    index = NoteIndex(tmp_path)
    write(tmp_path, "late.md")
    assert index.paths() == ["late.md"]


def test_scribe_and_git_folders_temp_files_and_denied_paths_are_left_out(tmp_path: Path) -> None:
    for rel in (".git/x.md", ".scribe/y.md", "notes/.scribe-a.md.123.abcd.tmp", "secret/s.md",
                ".env", "keep.md", "notes/keep.md", "id_rsa"):  # fmt: skip
        write(tmp_path, rel)
    confinement = Confinement(["secret/"])
    index = NoteIndex(tmp_path, deny=lambda rel: confinement.refusal(rel) is not None)
    assert index.paths() == ["keep.md", "notes/keep.md"]
    assert not index.exists(".env")
    assert not index.exists("id_rsa")
    assert index.text("secret/s.md") is None
    assert index.text(".git/x.md") is None
    assert index.problem(".env") == ".env is on the denylist"
    assert index.problem("secret/s.md") == "secret/s.md is on the denylist"
    assert index.problem(".git/x.md") == ".git/x.md is inside .git/, a folder Scribe leaves alone"
    assert index.problem("../x.md") == "../x.md is not a path inside the repository"


def test_other_globs_choose_the_notes(tmp_path: Path) -> None:
    write(tmp_path, "docs/a.md")
    write(tmp_path, "docs/b.markdown")
    write(tmp_path, "other/c.md")
    index = NoteIndex(tmp_path, paths=("docs/**/*.{md,markdown}",))
    assert index.paths() == ["docs/a.md", "docs/b.markdown"]
    assert index.exists("other/c.md")


def test_symlinks_are_listed_only_when_they_lead_to_a_file_inside(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(root, "real/note.md", "inside\n")
    write(outside, "secret.md", "outside\n")
    (root / "inside-link.md").symlink_to(root / "real" / "note.md")
    (root / "outside-link.md").symlink_to(outside / "secret.md")
    (root / "dir-out").symlink_to(outside, target_is_directory=True)
    (root / "dir-in").symlink_to(root / "real", target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    index = NoteIndex(root)
    assert index.paths() == ["inside-link.md", "real/note.md"]
    assert index.text("inside-link.md") == "inside\n"
    assert index.text("outside-link.md") is None
    assert "outside" in (index.problem("outside-link.md") or "")
    assert index.text("dir-out/secret.md") is None


# -- titles and resolution -----------------------------------------------------------


def test_by_title_matches_stems_without_case_then_aliases(repo: Path) -> None:
    index = NoteIndex(repo)
    assert index.by_title("machine learning") == ["notes/Machine Learning.md"]
    assert index.by_title("ML") == ["notes/Machine Learning.md"]
    assert index.by_title("statistical learning") == ["notes/Machine Learning.md"]
    assert index.by_title("dup") == ["a/Dup.md", "b/dup.md"]
    assert index.by_title("nothing") == []


def test_resolve_tells_resolved_ambiguous_and_broken_apart(repo: Path) -> None:
    index = NoteIndex(repo)
    assert resolve(index, "[[MACHINE learning#Intro]]") == Resolution("notes/Machine Learning.md")
    assert resolve(index, "[[ml]]") == Resolution("notes/Machine Learning.md")
    assert resolve(index, "![[diagram.png]]") == Resolution("img/diagram.png")
    assert resolve(index, "[d](notes/sub/deep.md)") == Resolution("notes/sub/deep.md")
    assert resolve(index, "[d](sub/)", "notes/x.md") == Resolution("notes/sub")
    ambiguous = resolve(index, "[[Dup]]")
    assert ambiguous.ambiguous
    assert ambiguous.candidates == ("a/Dup.md", "b/dup.md")
    assert resolve(index, "[[Nowhere]]").broken
    assert resolve(index, "[d](../outside.md)").broken


def test_a_stem_wins_over_another_notes_alias(repo: Path) -> None:
    write(repo, "other.md", "---\naliases: [deep]\n---\n")
    assert resolve(NoteIndex(repo), "[[deep]]") == Resolution("notes/sub/deep.md")


def test_links_to_denied_files_are_broken(repo: Path) -> None:
    write(repo, ".env", "KEY=1\n")
    index = NoteIndex(repo, deny=lambda rel: Confinement().refusal(rel) is not None)
    assert resolve(index, "[e](.env)").broken
    assert resolve(index, "[g](.git/)").broken


def test_a_rename_rewrites_the_links_the_index_resolves_to_the_note(repo: Path) -> None:
    write(
        repo,
        "a/refs.md",
        "[[Machine Learning#Intro|ML]] [[ml]] [[Dup]] [m](../notes/Machine%20Learning.md)\n",
    )
    index = NoteIndex(repo)
    renames = {"notes/Machine Learning.md": "notes/machine-learning.md"}

    def resolver(source: str) -> Callable[[Link], str | None]:
        return lambda link: index.resolve(link, source).path

    rewritten = {
        path: rewrite_links(text, renames, source_path=path, resolve=resolver(path))
        for path in index.paths()
        if (text := index.text(path)) is not None
    }
    assert rewritten["a/refs.md"] == (
        "[[machine-learning#Intro|ML]] [[ml]] [[Dup]] [m](../notes/machine-learning.md)\n"
    )
    assert rewritten["index.md"] == "# Index\n[[machine-learning]] [[ml]] [[Dup]] [[Nowhere]]\n"
    assert rewritten["b/dup.md"] == "two\n"


# -- reading -------------------------------------------------------------------------


def test_frontmatter_is_parsed_and_cached_until_the_file_changes(repo: Path) -> None:
    index = NoteIndex(repo)
    first = index.frontmatter("notes/sub/deep.md")
    assert dict(first) == {"tags": ["a"]}
    assert index.frontmatter("notes/sub/deep.md") is first
    bump(repo / "notes/sub/deep.md", "---\ntags: [b]\n---\ndeep\n")
    assert dict(index.frontmatter("notes/sub/deep.md")) == {"tags": ["b"]}
    with pytest.raises(TypeError):
        first["tags"] = []  # type: ignore[index]


def test_unreadable_frontmatter_is_empty_and_says_why(repo: Path) -> None:
    write(repo, "bad.md", "---\ntitle: [unclosed\n---\nbody\n")
    write(repo, "open.md", "---\ntitle: x\n")
    write(repo, "plain.md", "no frontmatter\n")
    index = NoteIndex(repo)
    assert index.frontmatter("bad.md") == {}
    assert "invalid YAML" in (index.problem("bad.md") or "")
    assert index.frontmatter("open.md") == {}
    assert "never closed" in (index.problem("open.md") or "")
    assert index.frontmatter("plain.md") == {}
    assert index.problem("plain.md") is None
    assert index.text("bad.md") == "---\ntitle: [unclosed\n---\nbody\n"


def test_text_and_sha256_of_real_files(repo: Path) -> None:
    index = NoteIndex(repo)
    assert index.text("a/Dup.md") == "one\n"
    assert index.sha256("a/Dup.md") == hashlib.sha256(b"one\n").hexdigest()
    bump(repo / "a/Dup.md", "changed\n")
    assert index.sha256("a/Dup.md") == hashlib.sha256(b"changed\n").hexdigest()
    assert index.text("missing.md") is None
    assert index.problem("missing.md") == "the file does not exist"


def test_files_too_large_or_binary_are_listed_but_not_read(tmp_path: Path) -> None:
    write(tmp_path, "big.md", "x" * 100)
    (tmp_path / "binary.md").write_bytes(b"\0\1\2")
    index = NoteIndex(tmp_path, max_file_bytes=50)
    assert index.paths() == ["big.md", "binary.md"]
    assert index.text("big.md") is None
    assert "larger than max_file_bytes" in (index.problem("big.md") or "")
    assert index.frontmatter("binary.md") == {}
    assert "binary" in (index.problem("binary.md") or "")


def test_a_crlf_note_with_a_bom_reads_as_the_engine_reads_it(tmp_path: Path) -> None:
    (tmp_path / "w.md").write_bytes(b"\xef\xbb\xbf---\r\naliases: [Win]\r\n---\r\nbody\r\n")
    index = NoteIndex(tmp_path)
    assert index.text("w.md") == "---\r\naliases: [Win]\r\n---\r\nbody\r\n"
    assert index.by_title("win") == ["w.md"]


# -- events --------------------------------------------------------------------------


def test_changed_adds_new_notes_and_removes_vanished_ones(repo: Path) -> None:
    index = NoteIndex(repo)
    index.paths()
    write(repo, "notes/New One.md", "new\n")
    assert not index.is_note("notes/New One.md")  # no walk after the first
    index.changed("notes/New One.md")
    assert index.by_title("new one") == ["notes/New One.md"]
    (repo / "a/Dup.md").unlink()
    index.changed("a/Dup.md")
    assert resolve(index, "[[Dup]]") == Resolution("b/dup.md")


def test_changed_refreshes_aliases(repo: Path) -> None:
    index = NoteIndex(repo)
    assert resolve(index, "[[Nowhere]]").broken
    bump(repo / "notes/sub/deep.md", "---\naliases: [Nowhere]\n---\n")
    index.changed("notes/sub/deep.md")
    assert resolve(index, "[[Nowhere]]") == Resolution("notes/sub/deep.md")
    bump(repo / "notes/sub/deep.md", "no aliases any more\n")
    index.changed("notes/sub/deep.md")
    assert resolve(index, "[[Nowhere]]").broken


def test_moved_files_and_folders(repo: Path) -> None:
    index = NoteIndex(repo)
    index.paths()
    (repo / "index.md").rename(repo / "home.md")
    index.moved("index.md", "home.md")
    (repo / "notes").rename(repo / "archive")
    index.moved("notes", "archive")
    assert index.paths() == ["a/Dup.md", "archive/Machine Learning.md", "archive/sub/deep.md",
                             "b/dup.md", "home.md"]  # fmt: skip
    assert index.by_title("ml") == ["archive/Machine Learning.md"]


def test_removed_folders_take_their_notes_with_them(repo: Path) -> None:
    index = NoteIndex(repo)
    index.paths()
    for path in sorted((repo / "notes").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (repo / "notes").rmdir()
    index.removed("notes")
    assert index.paths() == ["a/Dup.md", "b/dup.md", "index.md"]
    assert index.by_title("statistical learning") == []


def test_a_folder_reported_changed_is_listed_again(repo: Path) -> None:
    index = NoteIndex(repo)
    index.paths()
    write(repo, "new/one.md")
    write(repo, "new/deeper/two.md")
    index.changed("new")
    assert [p for p in index.paths() if p.startswith("new/")] == ["new/deeper/two.md", "new/one.md"]


def test_events_outside_the_root_or_in_skipped_folders_are_ignored(repo: Path) -> None:
    index = NoteIndex(repo)
    before = index.paths()
    write(repo, ".git/hooks.md")
    for path in ("../escape.md", "/etc/passwd", ".git/hooks.md", ""):
        index.changed(path)
        index.removed(path)
    assert index.paths() == before


# -- threads -------------------------------------------------------------------------


def test_readers_and_event_reporters_in_several_threads(tmp_path: Path) -> None:
    for n in range(50):
        write(tmp_path, f"n/{n}.md", f"---\naliases: [alias {n}]\n---\n[[{(n + 1) % 50}]]\n")
    index = NoteIndex(tmp_path)
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def read() -> None:
        start.wait()
        for _ in range(5):
            for path in index.paths():
                for link in find_links(index.text(path) or ""):
                    assert not index.resolve(link, path).broken
                assert index.by_title("alias 3")[0] == "n/3.md"
                index.frontmatter(path)

    def churn(tag: str) -> None:
        start.wait()
        for round_ in range(20):
            rel = f"n/extra {tag} {round_}.md"
            write(tmp_path, rel, "---\naliases: [alias 3]\n---\n")
            index.changed(rel)
            (tmp_path / rel).unlink()
            index.removed(rel)

    def run(work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    works: list[Callable[[], None]] = [read, read, lambda: churn("a"), lambda: churn("b")]
    threads = [threading.Thread(target=run, args=(work,)) for work in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert errors == []
    assert len(index.paths()) == 50
    assert index.by_title("alias 3") == ["n/3.md"]


def test_the_revision_moves_only_when_something_read_may_be_stale(repo: Path) -> None:
    index = NoteIndex(repo)
    index.paths()
    index.frontmatter("notes/Machine Learning.md")
    start = index.revision
    index.changed("notes/Machine Learning.md")  # an event, the same bytes: a scan
    index.changed("index.md")  # never read: nothing computed from it
    assert index.revision == start
    bump(repo / "notes" / "Machine Learning.md", "---\naliases: [ml]\n---\nnew\n")
    index.changed("notes/Machine Learning.md")
    assert index.revision > start
    after_edit = index.revision
    write(repo, "notes/New.md", "new\n")
    index.changed("notes/New.md")
    assert index.revision > after_edit
    after_create = index.revision
    (repo / "notes" / "New.md").unlink()
    index.removed("notes/New.md")
    assert index.revision > after_create


def test_events_during_reads_never_make_a_note_look_empty(tmp_path: Path) -> None:
    """An event that arrives while a note is read keeps the result out of the cache;
    the reader must still get what it read, not nothing (an index built then would
    put the note in the wrong section)."""
    for number in range(20):
        write(tmp_path, f"n{number}.md", f"---\nstatus: todo\nn: {number}\n---\n")
    stop = threading.Event()

    def events() -> None:
        while not stop.is_set():
            for number in range(20):
                index.changed(f"n{number}.md")

    for _ in range(30):
        index = NoteIndex(tmp_path)
        index.paths()
        racer = threading.Thread(target=events)
        racer.start()
        try:
            seen = [index.frontmatter(f"n{number}.md").get("status") for number in range(20)]
        finally:
            stop.set()
            racer.join()
            stop.clear()
        assert seen == ["todo"] * 20


def test_a_note_being_read_again_keeps_its_aliases_meanwhile(tmp_path: Path) -> None:
    """An event on a note makes it be read again; until then its aliases still count.
    Here the event lands just after the lookup made sure every note was read, as
    another worker's event can: the link written with the alias must still resolve."""
    note = write(tmp_path, "Machine Learning.md", "---\naliases: [ml]\n---\nbody\n")

    class EventInBetween(NoteIndex):
        def _read_aliases(self) -> None:
            super()._read_aliases()
            bump(note, "---\naliases: [ml]\n---\nbody, edited\n")
            self.changed("Machine Learning.md")

    index = EventInBetween(tmp_path)
    index.paths()
    (link,) = find_links("[[ml]]")
    assert index.resolve(link, "day.md").path == "Machine Learning.md"
    assert index.resolve(link, "day.md").path == "Machine Learning.md"
