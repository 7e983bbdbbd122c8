"""The naive baseline: the watch-and-rewrite loop anyone would write in an afternoon.

It is the yardstick for "Scribe within 1.5x of naive", so it gets the most
favourable settings a simple loop can have: inotify read directly (no debounce, no
polling, one non-recursive watch on the root), a regex instead of a YAML parser, and
plain ``open(..., "w")`` writes with no fsync. It offers none of Scribe's guarantees:
it can read a half-written file, overwrite a save that landed while it was working,
and it recognises its own echo only because the content equals what it last wrote.

Run: ``python bench/naive.py ROOT [--scan]``. Logs "watching" on stderr when ready
and "naive: N rewrite(s)" when stopped.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from inotify_simple import INotify, flags

STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
FRONTMATTER = re.compile(r"\A---\n(?P<fields>.*?)^---\n", re.DOTALL | re.MULTILINE)
MODIFIED = re.compile(r"^modified:.*$", re.MULTILINE)


def stamp(text: str) -> str:
    """Add or replace the ``modified:`` line of the frontmatter (adding a block if none)."""
    line = f"modified: {datetime.now(UTC).strftime(STAMP_FORMAT)}"
    match = FRONTMATTER.match(text)
    if match is None:
        return f"---\n{line}\n---\n{text}"
    fields = match.group("fields")
    if MODIFIED.search(fields):
        fields = MODIFIED.sub(line, fields, count=1)
    else:
        fields += line + "\n"
    return f"---\n{fields}---\n{text[match.end() :]}"


class Naive:
    """Stamps every markdown file it hears about; remembers only what it last wrote."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.last_written: dict[str, str] = {}
        self.rewrites = 0

    def handle(self, name: str) -> None:
        if not name.endswith(".md") or name.startswith("."):
            return
        path = self.root / name
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
            return
        if text == self.last_written.get(name):
            return  # our own write coming back
        new = stamp(text)
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
        self.last_written[name] = new
        self.rewrites += 1


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("root", type=Path)
    parser.add_argument("--scan", action="store_true", help="stamp existing files first")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    naive = Naive(root)
    signal.signal(signal.SIGTERM, _stop)
    inotify = INotify()
    try:
        inotify.add_watch(root, flags.CLOSE_WRITE | flags.MOVED_TO)
        print("watching", root, file=sys.stderr, flush=True)
        if args.scan:
            for entry in sorted(os.scandir(root), key=lambda e: e.name):
                if entry.is_file(follow_symlinks=False):
                    naive.handle(entry.name)
            print(f"scanned {len(naive.last_written)} file(s)", file=sys.stderr, flush=True)
        while True:
            for event in inotify.read():
                naive.handle(str(event.name))
    finally:
        inotify.close()
        print(f"naive: {naive.rewrites} rewrite(s)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
