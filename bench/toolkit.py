"""Benchmarks of the knowledge toolkit's core, ``scribe.notes``, one section each.

* ``wikilink``: ``Linker.link`` on a generated 1 MB note (prose with headings,
  code blocks, inline code, URLs and existing links) and 5,000 known titles of
  one to three words, about 2% of the words being mentions. Beside it, in the
  same run: the yardstick, a naive loop of one case-insensitive regex per title
  that links the first mention outside the protected spans (timed on a sample of
  the titles and scaled to all of them: its cost is one pass over the text per
  title, so it grows linearly), and the floor, one ``re.finditer(r"\\w+")`` pass
  over the text, iterated in Python: looking at every word once. Building the
  ``Linker`` (compiling its pattern) is reported apart, and building another of
  the same titles, which finds the pattern kept.
* ``links``: the whole of a link check over a generated knowledge base of
  10,000 notes (``make_knowledge_base``: 1-3 KB each, about ten links each of
  every kind, some broken, some ambiguous, some in code): a fresh ``NoteIndex``,
  then ``text``, ``find_links`` and ``resolve`` for every note. Its counts of
  links, broken and ambiguous ones must be the ones the generator planted
  (``agree``). The floor is listing the tree with ``os.scandir`` and reading
  every note's bytes.
* ``check_links``: ``scribe run`` (the console script, a fresh process, no journal
  or state yet) with one ``check_links`` rule over the same kind of knowledge
  base; its findings must be the broken and ambiguous links planted. Beside it:
  the yardstick, a Python loop that opens each note and checks every link it finds
  with one regex against ``os.path.exists`` or the set of stems (code included,
  aliases unknown, so its count is not the planted one); the floor, a fresh
  ``cat`` of every note; and ``scribe run`` with a step that changes nothing (the
  engine's own share) and with ``workers: 1``.
* ``wikilink_step``: the ``wikilink`` step on the 1 MB note of ``wikilink`` among
  5,000 other notes named by its titles: in this process with its Linker kept
  (the floor is ``Linker.link`` alone; the yardstick builds a Linker per call, as
  a step keeping none would), its first call in a process, and ``scribe plan`` of
  that note, the whole command, beside the same command with a step that changes
  nothing.

Every timing is the median of several runs, taken in turn. Run
``.venv/bin/python bench/toolkit.py [--quick] [--out PATH] [--section NAME] [--keep]``.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from engine import Line, Section, scribe_executable, sections_main
from scribe.actions import FileContext, linking
from scribe.notes import Linker, NoteIndex, find_links, protected_spans
from scribe.notes import linker as linker_module

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "results" / "toolkit.json"
WIKILINK_TARGET_MS = 200.0
CHECK_TARGET_S = 5.0
NAIVE, FLOOR = "naive", "floor"


@dataclass(frozen=True)
class Config:
    """Workload sizes; ``--quick`` makes each about 10x smaller."""

    note_bytes: int  # wikilink: size of the note
    titles: int  # wikilink: known titles
    naive_titles: int  # wikilink: titles the naive loop is timed on
    notes: int  # links: notes in the knowledge base
    runs: int = 5  # wikilink: timed runs of each contender
    check_runs: int = 3  # links: timed runs of the check and of the floor
    seed: int = 0


FULL = Config(note_bytes=1_000_000, titles=5_000, naive_titles=250, notes=10_000)
QUICK = Config(note_bytes=100_000, titles=1_000, naive_titles=100, notes=1_000, runs=3)


def median_time(work: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    """The median wall time of ``runs`` calls of ``work`` (seconds), and every sample."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), samples


# -- words ---------------------------------------------------------------------------

_ONSETS = ("b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "v", "w", "br",
           "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st", "th", "tr")  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ee", "io", "ou", "y")
_CODAS = ("", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "rt")


def vocabulary(rng: random.Random, size: int) -> list[str]:
    """``size`` distinct made-up words that read like English ones."""
    words: set[str] = set()
    while len(words) < size:
        syllables = rng.choice((1, 2, 2, 2, 3, 3, 4))
        words.add("".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                          for _ in range(syllables)))  # fmt: skip
    return sorted(words)


def make_titles(rng: random.Random, words: Sequence[str], count: int) -> list[str]:
    """``count`` distinct titles of one to three words, mostly capitalised."""
    titles: dict[str, str] = {}  # by casefold: titles differing only in case are one
    pool = words[: max(len(words) // 3, 1)]
    while len(titles) < count:
        phrase = " ".join(rng.sample(pool, rng.choice((1, 1, 2, 2, 2, 3))))
        titles.setdefault(phrase.casefold(), phrase.title() if rng.random() < 0.8 else phrase)
    return sorted(titles.values())


class Prose:
    """Words drawn with a Zipf-like frequency, with title mentions mixed in."""

    def __init__(self, rng: random.Random, words: Sequence[str], titles: Sequence[str]) -> None:
        self.rng, self.words, self.titles = rng, list(words), list(titles)
        self.weights = list(_cumulative(1 / (rank + 1) for rank in range(len(words))))

    def sentence(self, mention_rate: float) -> str:
        rng = self.rng
        count = rng.randint(6, 18)
        picked = rng.choices(self.words, cum_weights=self.weights, k=count)
        for i in range(count):
            if rng.random() < mention_rate:
                title = rng.choice(self.titles)
                picked[i] = title.lower() if rng.random() < 0.3 else title
        text = " ".join(picked)
        return text[0].upper() + text[1:] + rng.choice((".", ".", ".", ",", ";", "?"))

    def paragraph(self, mention_rate: float) -> str:
        return " ".join(self.sentence(mention_rate) for _ in range(self.rng.randint(2, 6)))


def _cumulative(values: Iterable[float]) -> Iterator[float]:
    total = 0.0
    for value in values:
        total += value
        yield total


# -- wikilink ------------------------------------------------------------------------


def make_note(rng: random.Random, prose: Prose, size: int) -> str:
    """A markdown note of about ``size`` characters with everything a linker must
    leave alone: frontmatter, code blocks, inline code, URLs, existing links."""
    parts = [f"---\ntitle: {rng.choice(prose.titles)}\ntags: [bench]\n---\n"]
    length = len(parts[0])
    while length < size:
        roll = rng.random()
        if roll < 0.08:
            part = f"## {rng.choice(prose.titles)}\n"
        elif roll < 0.13:
            body = "\n".join(prose.sentence(0.2) for _ in range(rng.randint(2, 6)))
            part = f"```text\n{body}\n```\n"
        elif roll < 0.18:
            title, other = rng.choice(prose.titles), rng.choice(prose.titles)
            part = (f"See [[{title}]], `{other}` and https://example.org/{title.replace(' ', '_')}"
                    f" or [{other}](notes/{title.replace(' ', '%20')}.md).\n")  # fmt: skip
        else:
            part = prose.paragraph(0.02) + "\n"
        parts.append(part + "\n")
        length += len(part) + 1
    return "".join(parts)


def naive_link(text: str, titles: Sequence[str]) -> str:
    """The yardstick: one regex per title, longest first, linking the first mention
    that is neither protected nor inside a mention already linked."""
    spans = protected_spans(text)
    taken: list[tuple[int, int, str]] = []
    for title in sorted(titles, key=len, reverse=True):
        pattern = re.compile(rf"(?<!\w){re.escape(title)}(?!\w)", re.IGNORECASE)
        for m in pattern.finditer(text):
            start, end = m.span()
            if any(s < end and start < e for s, e in spans) or any(
                s < end and start < e for s, e, _ in taken
            ):
                continue
            taken.append((start, end, title))
            break
    pieces: list[str] = []
    last = 0
    for start, end, title in sorted(taken):
        mention = text[start:end]
        link = f"[[{title}]]" if mention == title else f"[[{title}|{mention}]]"
        pieces += (text[last:start], link)
        last = end
    return "".join([*pieces, text[last:]])


def wikilink_section(cfg: Config, scratch: Path, console: Console) -> Section:
    rng = random.Random(cfg.seed)
    words = vocabulary(rng, 20_000)
    titles = make_titles(rng, words, cfg.titles)
    text = make_note(rng, Prose(rng, words, titles), cfg.note_bytes)
    console.print(f"wikilink: {len(text):,} characters, {len(titles):,} titles")

    def fresh_build() -> Linker:
        linker_module._compiled.cache_clear()  # measure the compile, not the kept pattern
        return Linker(titles)

    build_s, builds = median_time(fresh_build, 3)
    again_s, _ = median_time(lambda: Linker(titles), 3)
    linker = Linker(titles)
    linked = linker.link(text)
    first_s, first = median_time(lambda: linker.link(text), cfg.runs)
    every_s, every = median_time(lambda: linker.link(text, first_only=False), cfg.runs)
    word = re.compile(r"\w+")
    floor_s, floors = median_time(lambda: sum(1 for _ in word.finditer(text)), cfg.runs)
    sample = rng.sample(titles, min(cfg.naive_titles, len(titles)))
    sample_s, _ = median_time(lambda: naive_link(text, sample), 1)
    naive_s = sample_s * len(titles) / len(sample)
    added = len(find_links(linked)) - len(find_links(text))
    twice = linker.link(linked) != linked
    lines = [
        Line(f"link {len(text) / 1e6:.1f} MB, {len(titles):,} titles (first mention)", "ms",
             first_s * 1e3, {NAIVE: naive_s * 1e3, FLOOR: floor_s * 1e3},
             f"<= {WIKILINK_TARGET_MS:.0f} ms", first_s * 1e3 <= WIKILINK_TARGET_MS),
        Line("  link every mention", "ms", every_s * 1e3, {FLOOR: floor_s * 1e3}),
        Line("  build the Linker (compiles its pattern)", "ms", build_s * 1e3),
        Line("  build another Linker of the same titles", "ms", again_s * 1e3),
        Line("  links added (first mention of each title)", "count", float(added)),
        Line("  changed by a second run (must be 0)", "count", float(twice), target="0",
             passed=not twice),
    ]  # fmt: skip
    details = {
        "characters": len(text),
        "titles": len(titles),
        "naive_sample_titles": len(sample),
        "naive_sample_s": sample_s,
        "samples_s": {"first": first, "every": every, "floor": floors, "build": builds},
    }
    return Section("wikilink", lines, details)


# -- links ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KnowledgeBase:
    """What ``make_knowledge_base`` planted: what a correct link check must find."""

    root: Path
    notes: int
    links: int  # outside code, every kind
    broken: int
    ambiguous: int
    in_code: int  # links written inside code, which must not be found


def make_knowledge_base(root: Path, notes: int = 10_000, seed: int = 0) -> KnowledgeBase:
    """Write a knowledge base of ``notes`` markdown notes under ``root``.

    Notes sit in 20 folders (some nested), 1-3 KB each, with frontmatter (a
    quarter with ``aliases``) and about ten links each: ``[[Title]]``,
    ``[[Title|alias]]``, ``[[Title#Heading]]``, ``![[Title]]``, links by alias and by
    folder path, relative markdown links (percent-encoded or in ``<...>``), and some
    to attachments. About 4% of the links are broken (no such title or path);
    1% of the notes share their stem with another note, so links to their title
    are ambiguous; each note also holds one or two links inside code. Returns the
    counts a correct check finds.
    """
    rng = random.Random(seed)
    words = vocabulary(rng, 6_000)
    prose = Prose(rng, words, ["x"])
    folders = [f"area-{n:02d}" for n in range(14)] + [f"area-{n:02d}/deep" for n in range(6)]
    stems = make_titles(rng, words, notes)
    paths = [f"{rng.choice(folders)}/{stem}.md" for stem in stems]
    # Twins: a note takes the stem of its neighbour, in another folder.
    twins = sorted(rng.sample(range(0, notes - 1, 2), notes // 100))
    for n in twins:
        taken = paths[n + 1].rsplit("/", 1)[0]
        other = next(f for f in folders if f != taken)
        paths[n] = f"{other}/{stems[n + 1]}.md"
    shared = {stems[n + 1].casefold() for n in twins}
    aliases = {n: f"{stems[n]} Alias" for n in range(0, notes, 4)}
    attachments = [f"assets/figure-{n}.png" for n in range(50)]
    for rel in attachments:
        _write(root / rel, "png\n")
    counts = {"links": 0, "broken": 0, "ambiguous": 0, "in_code": 0}
    for n, rel in enumerate(paths):
        _write(root / rel, _note(rng, prose, n, rel, paths, aliases, attachments, shared, counts))
    return KnowledgeBase(root, notes, counts["links"], counts["broken"], counts["ambiguous"],
                         counts["in_code"])  # fmt: skip


def _note(
    rng: random.Random,
    prose: Prose,
    n: int,
    rel: str,
    paths: list[str],
    aliases: dict[int, str],
    attachments: list[str],
    shared: set[str],
    counts: dict[str, int],
) -> str:
    head = f"---\ntitle: note {n}\ntags: [kb, t{n % 7}]\n"
    if n in aliases:
        head += f"aliases: [{aliases[n]}]\n"
    parts = [head + "---\n", f"# Note {n}\n\n"]
    for _ in range(rng.randint(8, 12)):
        parts.append(prose.paragraph(0.0)[: rng.randint(60, 220)] + " ")
        parts.append(_link(rng, rel, paths, aliases, attachments, shared, counts) + ".\n\n")
    code_target = paths[rng.randrange(len(paths))].rsplit("/", 1)[1][:-3]
    if rng.random() < 0.5:
        parts.append(f"```\n[[{code_target}]] and [x](missing.md)\n```\n")
        counts["in_code"] += 2
    else:
        parts.append(f"Inline `[[No Such {code_target}]]` stays code.\n")
        counts["in_code"] += 1
    return "".join(parts)


def _link(
    rng: random.Random,
    rel: str,
    paths: list[str],
    aliases: dict[int, str],
    attachments: list[str],
    shared: set[str],
    counts: dict[str, int],
) -> str:
    """One link from the note at ``rel``; counts it as the check must see it."""
    counts["links"] += 1
    roll = rng.random()
    if roll < 0.04:
        counts["broken"] += 1
        return rng.choice(("[[No Such Note]]", "[gone](../nowhere/missing.md)", "[[area-99/x]]"))
    target = rng.randrange(len(paths))
    path = paths[target]
    stem = path.rsplit("/", 1)[1][:-3]
    if roll < 0.10:
        return f"![[{rng.choice(attachments).rsplit('/', 1)[1]}]]"
    if roll < 0.25:
        relative = os.path.relpath(path, os.path.dirname(rel))
        if rng.random() < 0.5:
            return f"[see]({relative.replace(' ', '%20')}#Part)"
        return f"[see](<{relative}>)"
    if roll < 0.30:
        return f"[[{path[:-3]}|by path]]"
    if roll < 0.35 and target in aliases:
        return f"[[{aliases[target]}]]"
    if stem.casefold() in shared:
        counts["ambiguous"] += 1
    form = rng.random()
    if form < 0.6:
        return f"[[{stem}]]"
    if form < 0.75:
        return f"[[{stem}|the {stem.lower()}]]"
    if form < 0.9:
        return f"[[{stem}#Part]]"
    return f"![[{stem}]]"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def check(root: Path) -> dict[str, int]:
    """The link check: every note's links found and resolved through a fresh index."""
    index = NoteIndex(root)
    found = {"links": 0, "broken": 0, "ambiguous": 0}
    for path in index.paths():
        for link in find_links(index.text(path) or ""):
            result = index.resolve(link, path)
            found["links"] += 1
            found["broken"] += result.broken
            found["ambiguous"] += result.ambiguous
    return found


def read_floor(root: Path) -> int:
    """List the tree and read every note's bytes: what any check must do at least."""
    total = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.name.endswith(".md"):
                    with open(entry.path, "rb") as handle:
                        total += len(handle.read())
    return total


def links_section(cfg: Config, scratch: Path, console: Console) -> Section:
    root = scratch / "kb"
    started = time.perf_counter()
    kb = make_knowledge_base(root, cfg.notes, cfg.seed)
    console.print(f"links: {kb.notes:,} notes written in {time.perf_counter() - started:.1f} s")
    check_samples, floor_samples = [], []
    found: dict[str, int] = {}
    for _ in range(cfg.check_runs):  # in turn, so that both see the same machine
        check_s, _ = median_time(lambda: found.update(check(root)), 1)
        floor_s, _ = median_time(lambda: read_floor(root), 1)
        check_samples.append(check_s)
        floor_samples.append(floor_s)
    check_s, floor_s = statistics.median(check_samples), statistics.median(floor_samples)
    agree = (found["links"], found["broken"], found["ambiguous"]) == (kb.links, kb.broken,
                                                                     kb.ambiguous)  # fmt: skip
    lines = [
        Line(f"check {kb.notes:,} notes (index, read, find_links, resolve)", "s", check_s,
             {FLOOR: floor_s}, f"<= {CHECK_TARGET_S:.0f} s", check_s <= CHECK_TARGET_S),
        Line("  links found (as planted: outside code)", "count", float(found["links"]),
             {"planted": float(kb.links)}),
        Line("  broken", "count", float(found["broken"]), {"planted": float(kb.broken)}),
        Line("  ambiguous", "count", float(found["ambiguous"]), {"planted": float(kb.ambiguous)}),
        Line("  counts agree with the generator", "count", float(not agree), target="0",
             passed=agree),
        Line("  links per second", "links/s", found["links"] / check_s if check_s else None),
    ]  # fmt: skip
    details = {"planted": {k: v for k, v in asdict(kb).items() if k != "root"}, "found": found,
               "samples_s": {"check": check_samples, "floor": floor_samples}}  # fmt: skip
    return Section("links", lines, details)


# -- check_links and wikilink_step: the actions through the real command -------------------

SCRIBE = scribe_executable()
CHECK_RULES = 'rules:\n  - id: links\n    paths: ["**/*.md"]\n    do:\n      - check_links: {}\n'
#: Every generated note has frontmatter, so this step visits each and changes nothing.
IDLE_RULES = (
    'rules:\n  - id: idle\n    paths: ["**/*.md"]\n    do:\n      - ensure_frontmatter: {}\n'
)
_WIKI_OR_MARKDOWN = re.compile(r"\[\[([^\]|#\n]+)|\]\(<?([^)#>\s]+)")


def scribe_command(
    root: Path, args: Sequence[str], rules: str, settings: str = ""
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Time ``scribe ARGS`` as a fresh process in ``root``, from a repository with no
    journal or state yet (each run does the same work)."""
    shutil.rmtree(root / ".scribe", ignore_errors=True)
    (root / ".scribe").mkdir()
    (root / ".scribe" / "rules.yaml").write_text(rules)
    (root / "scribe.yaml").unlink(missing_ok=True)
    if settings:
        (root / "scribe.yaml").write_text(settings)
    full = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    started = time.perf_counter()
    done = subprocess.run([SCRIBE, *args], cwd=root, capture_output=True, text=True, env=full,
                          check=False)  # fmt: skip
    return time.perf_counter() - started, done


def told(stderr: str, code: str) -> int:
    """How many findings of ``code`` the command printed (one line starts each)."""
    return sum(line.startswith(f"{code} ") for line in stderr.splitlines())


def naive_check(root: Path) -> int:
    """The yardstick: open every note, take its links with one regex (code and all),
    and check each against ``os.path.exists`` or the set of stems; the broken ones."""
    notes = [
        os.path.join(d, n) for d, _, names in os.walk(root) for n in names if n.endswith(".md")
    ]
    stems = {os.path.basename(n)[:-3].casefold() for n in notes}
    broken = 0
    for note in notes:
        with open(note, encoding="utf-8") as handle:
            text = handle.read()
        for wiki, markdown in _WIKI_OR_MARKDOWN.findall(text):
            if markdown:
                target = os.path.join(os.path.dirname(note), urllib.parse.unquote(markdown))
                broken += not os.path.exists(target)
            elif "/" in wiki:
                broken += not os.path.exists(os.path.join(root, wiki.strip() + ".md"))
            else:
                broken += wiki.strip().casefold() not in stems
    return broken


def cat_floor(root: Path) -> float:
    """Seconds for a fresh ``cat`` of every note: reading them, and nothing else."""
    started = time.perf_counter()
    find = subprocess.Popen(["find", str(root), "-name", "*.md", "-print0"], stdout=subprocess.PIPE)
    subprocess.run(["xargs", "-0", "cat"], stdin=find.stdout, stdout=subprocess.DEVNULL, check=True)
    find.wait()
    return time.perf_counter() - started


def check_links_section(cfg: Config, scratch: Path, console: Console) -> Section:
    root = scratch / "kb-check"
    kb = make_knowledge_base(root, cfg.notes, cfg.seed)
    console.print(f"check_links: {kb.notes:,} notes, scribe run x{cfg.check_runs} of each")
    kinds = ("run", "check", "one", "idle", NAIVE, FLOOR, "read")
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    told_broken = told_ambiguous = exit_codes = 0
    naive_broken = 0
    for _ in range(cfg.check_runs):  # in turn, so that all see the same machine
        took, done = scribe_command(root, ["run"], CHECK_RULES)
        samples["run"].append(took)
        told_broken = told(done.stderr, "broken_link")
        told_ambiguous = told(done.stderr, "ambiguous_link")
        exit_codes |= done.returncode
        samples["check"].append(scribe_command(root, ["check"], CHECK_RULES)[0])
        samples["one"].append(scribe_command(root, ["run"], CHECK_RULES, "workers: 1\n")[0])
        samples["idle"].append(scribe_command(root, ["run"], IDLE_RULES)[0])
        started = time.perf_counter()
        naive_broken = naive_check(root)
        samples[NAIVE].append(time.perf_counter() - started)
        samples[FLOOR].append(cat_floor(root))
        samples["read"].append(median_time(lambda: read_floor(root), 1)[0])
    shutil.rmtree(root / ".scribe", ignore_errors=True)
    med = {name: statistics.median(values) for name, values in samples.items()}
    agree = (told_broken, told_ambiguous, exit_codes) == (kb.broken, kb.ambiguous, 0)
    lines = [
        Line(f"scribe run, one check_links rule, {kb.notes:,} notes (fresh process)", "s",
             med["run"], {NAIVE: med[NAIVE], FLOOR: med[FLOOR]}, f"<= {CHECK_TARGET_S:.0f} s",
             med["run"] <= CHECK_TARGET_S),
        Line("  scribe check, the same rule (a dry run: nothing journaled)", "s", med["check"],
             {FLOOR: med[FLOOR]}),
        Line("  the same with the setting workers: 1", "s", med["one"], {FLOOR: med[FLOOR]}),
        Line("  scribe run with a step that changes nothing (the engine's share)", "s",
             med["idle"], {FLOOR: med[FLOOR]}),
        Line("  reading every note in one Python process", "s", med["read"]),
        Line("  broken links told", "count", float(told_broken),
             {NAIVE: float(naive_broken), "planted": float(kb.broken)}),
        Line("  ambiguous links told", "count", float(told_ambiguous),
             {"planted": float(kb.ambiguous)}),
        Line("  findings disagree with the generator, or the run failed", "count",
             float(not agree), target="0", passed=agree),
    ]  # fmt: skip
    details = {"planted": {k: v for k, v in asdict(kb).items() if k != "root"},
               "told": {"broken": told_broken, "ambiguous": told_ambiguous},
               "naive_broken": naive_broken, "samples_s": samples}  # fmt: skip
    return Section("check_links", lines, details)


def wikilink_step_section(cfg: Config, scratch: Path, console: Console) -> Section:
    """The ``wikilink`` step on one big note among many: the step itself in this
    process (kept Linker, first call, a Linker built per call) and ``scribe plan``."""
    rng = random.Random(cfg.seed)
    words = vocabulary(rng, 20_000)
    titles = make_titles(rng, words, cfg.titles)
    text = make_note(rng, Prose(rng, words, titles), cfg.note_bytes)
    root = scratch / "wikilink-step"
    for title in titles:
        _write(root / "notes" / f"{title}.md", f"# {title}\n")
    _write(root / "big.md", text)
    console.print(f"wikilink_step: {len(text):,} characters, {len(titles):,} other notes")
    params = linking.WikilinkParams()
    index = NoteIndex(root)

    def step() -> str:
        ctx = FileContext("big.md", text, datetime.now(UTC), notes=index)
        return linking.plan_wikilink(ctx, params)

    def first_call() -> str:
        nonlocal index
        linker_module._compiled.cache_clear()
        linking._LINKERS = linking._Linkers()
        index = NoteIndex(root)
        return step()

    cold_s, colds = median_time(first_call, 3)
    linked = step()
    kept_s, kept = median_time(step, cfg.runs)
    linker = Linker(index.titles())
    floor_s, floors = median_time(lambda: linker.link(text, exclude=["big"]), cfg.runs)
    per_call_s, _ = median_time(lambda: Linker(index.titles()).link(text), cfg.runs)
    rules = 'rules:\n  - id: link\n    paths: ["big.md"]\n    do:\n      - wikilink: {}\n'
    plans, idles = [], []
    for _ in range(cfg.check_runs):
        took, done = scribe_command(root, ["plan", "big.md"], rules)
        plans.append(took if done.returncode == 0 else float("nan"))
        idles.append(scribe_command(root, ["plan", "big.md"], IDLE_RULES)[0])
    shutil.rmtree(root / ".scribe", ignore_errors=True)
    plan_s, idle_s = statistics.median(plans), statistics.median(idles)
    same = linked == linker.link(text, exclude=["big"])
    lines = [
        Line(f"wikilink step, {len(text) / 1e6:.1f} MB note, {len(titles):,} notes (Linker kept)",
             "ms", kept_s * 1e3, {NAIVE: per_call_s * 1e3, FLOOR: floor_s * 1e3},
             f"<= {WIKILINK_TARGET_MS:.0f} ms", kept_s * 1e3 <= WIKILINK_TARGET_MS),
        Line("  first call in a process (lists the notes, builds the Linker)", "ms",
             cold_s * 1e3, {FLOOR: floor_s * 1e3}),
        Line("  scribe plan big.md, the whole command (fresh process)", "s", plan_s,
             {FLOOR: idle_s}),
        Line("  step output differs from Linker.link (must be 0)", "count", float(not same),
             target="0", passed=same),
    ]  # fmt: skip
    details = {"characters": len(text), "notes": len(titles),
               "samples_s": {"kept": kept, "first": colds, "floor": floors, "plan": plans,
                             "plan_idle": idles}}  # fmt: skip
    return Section("wikilink_step", lines, details)


SECTIONS: dict[str, Callable[[Config, Path, Console], Section]] = {
    "wikilink": wikilink_section,
    "links": links_section,
    "check_links": check_links_section,
    "wikilink_step": wikilink_step_section,
}


def main(argv: list[str] | None = None) -> int:
    return sections_main("Benchmark scribe.notes, the toolkit's core.", "toolkit", SECTIONS,
                         (FULL, QUICK), DEFAULT_OUT, (NAIVE, FLOOR, "planted"), argv)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
