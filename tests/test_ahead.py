"""Planning ahead in worker processes (``scribe.ahead``): a one-shot run over many
files, or the initial scan of ``scribe watch --scan``, plans them in another
process, and the outcome is exactly what planning in the engine alone gives,
including when the run's own rewrites change what later plans read, when a file
changes after it was planned, when the rules are reloaded and when a worker dies."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli_helpers import scribe
from live_helpers import ScribeProcess, wait_until
from scribe.ahead import MIN_FILES, PlanPool
from scribe.config import Settings
from scribe.engine import Engine, Status
from scribe.files import read_text
from scribe.plan import Ahead
from scribe.rules.load import parse_rules
from scribe.startup import build_engine

NOTES = MIN_FILES + 100

#: A plug-in that writes down which process planned each file: the command's own,
#: or a planning worker forked from it (which has a parent process).
ROLE = """
import multiprocessing, os
from pydantic import BaseModel
from scribe.actions import Content

class Params(BaseModel):
    pass

def plan(file, params):
    role = "worker" if multiprocessing.parent_process() is not None else "engine"
    with open(os.environ["ROLE_LOG"], "a") as log:
        log.write(f"{role} {file.path}\\n")
    return file.text

action = Content("role", Params, plan, "Notes which process planned the file.")
manifest = {"version": "1.0.0", "permissions": {"write": ["**"]}}
"""

#: A plug-in whose planning worker dies on the first file it is given.
UPPER = """
import multiprocessing, os
from pydantic import BaseModel
from scribe.actions import Content

class Params(BaseModel):
    pass

def plan(file, params):
    if multiprocessing.parent_process() is not None:
        os._exit(3)
    return file.text.upper()

action = Content("upper", Params, plan, "Upper-cases the file (and kills its worker).")
manifest = {"version": "1.0.0", "permissions": {"write": ["**"]}}
"""


def knowledge_base(root: Path, rules: str, processes: int, **actions: str) -> Path:
    """``NOTES`` notes linking each other (every tenth link broken), the rules, and
    ``plan_processes`` set."""
    (root / ".scribe" / "actions").mkdir(parents=True)
    (root / ".scribe" / "rules.yaml").write_text(textwrap.dedent(rules))
    settings = {"plan_processes": processes, "plugins_local": bool(actions)}
    (root / "scribe.yaml").write_text(json.dumps(settings))
    for name, source in actions.items():
        (root / ".scribe" / "actions" / f"{name}.py").write_text(source)
    (root / "m").mkdir()
    for n in range(NOTES):
        target = f"n{(n * 7) % NOTES:04d}" if n % 10 else f"missing {n}"
        (root / "m" / f"n{n:04d}.md").write_text(f"---\nid: {n}\n---\nsee [[{target}]]\n")
    return root


def written(root: Path) -> dict[str, str]:
    """The diff journaled for each file written, by path."""
    with sqlite3.connect(f"file:{root / '.scribe' / 'journal.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT path, diff FROM entries WHERE kind = 'file.written'")
        return dict(rows.fetchall())


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*.md"))
        if ".scribe" not in p.parts
    }


CHECK = """
rules:
  - id: links
    paths: ["**/*.md"]
    do: [{check_links: {}}, {role: {}}]
"""


def test_a_check_of_many_notes_is_planned_by_a_worker_and_tells_the_same(
    tmp_path: Path,
) -> None:
    told = {}
    for processes in (1, 0):
        root = knowledge_base(tmp_path / f"p{processes}", CHECK, processes, role=ROLE)
        log = tmp_path / f"roles-{processes}.txt"
        done = scribe("check", cwd=root, env={"ROLE_LOG": str(log)})
        assert done.returncode == 0, done.stderr
        roles = [line.split()[0] for line in log.read_text().splitlines()]
        assert len(roles) == NOTES
        assert set(roles) == {"worker" if processes else "engine"}
        told[processes] = sorted(line for line in done.stderr.splitlines() if "_link " in line)
    assert len(told[1]) == NOTES // 10
    assert told[1] == told[0]


STALE = """
rules:
  - id: nickname
    paths: ["alias-me.md"]
    do: [{set: {field: aliases, value: Nick}}]
  - id: links
    paths: ["**/*.md"]
    do: [{check_links: {}}]
"""


def test_a_rewrite_stops_planning_ahead_so_later_plans_read_it(tmp_path: Path) -> None:
    # The first file handled gains an alias that the last file links to: a plan
    # made ahead, before the rewrite, would call that link broken.
    results = {}
    for processes in (1, 0):
        root = knowledge_base(tmp_path / f"p{processes}", STALE, processes)
        (root / "alias-me.md").write_text("---\ntitle: me\n---\nbody\n")
        (root / "z").mkdir()
        (root / "z" / "link.md").write_text("ask [[Nick]]\n")
        done = scribe("run", cwd=root)
        assert done.returncode == 0, done.stderr
        assert "[[Nick]]" not in done.stderr
        assert "aliases: Nick" in (root / "alias-me.md").read_text()
        results[processes] = (tree(root), sorted(done.stderr.splitlines()))
    assert results[1] == results[0]


SELF_CONTAINED_ROLE = ROLE.replace(
    '"Notes which process planned the file.")',
    '"Notes which process planned the file.", self_contained=True)',
)
REWRITE = """
rules:
  - id: reword
    paths: ["m/n*55.md"]
    do: [{replace: {pattern: "see ", with: "look at "}}]
  - id: role
    paths: ["**/*.md"]
    do: [{role: {}}]
"""


def planned_by_role(tmp_path: Path, rules: str, rewritten: int) -> dict[int, dict[str, bytes]]:
    """``scribe run`` with a planning worker (1) and without (0), each rewriting
    ``rewritten`` notes by self-contained rules; the trees after. Every file is
    planned where it should be: all by the worker, or all in the engine."""
    trees = {}
    diffs = {}
    for processes in (1, 0):
        root = knowledge_base(tmp_path / f"p{processes}", rules, processes,
                              role=SELF_CONTAINED_ROLE)  # fmt: skip
        log = tmp_path / f"roles-{processes}.txt"
        done = scribe("run", cwd=root, env={"ROLE_LOG": str(log)})
        assert done.returncode == 0, done.stderr
        assert f"{rewritten} rewritten" in done.stderr
        roles = [line.split()[0] for line in log.read_text().splitlines()]
        assert set(roles) == {"worker" if processes else "engine"}
        trees[processes] = tree(root)
        diffs[processes] = written(root)
    # A diff made ahead is the one the engine journals when it plans the file itself.
    assert len(diffs[1]) == rewritten
    assert diffs[1] == diffs[0]
    return trees


def test_a_few_rewrites_by_self_contained_rules_leave_the_planning_to_the_worker(
    tmp_path: Path,
) -> None:
    trees = planned_by_role(tmp_path, REWRITE, NOTES // 100)  # one in a hundred
    reworded = {path for path, text in trees[1].items() if b"look at [[" in text}
    assert reworded == {path for path in trees[1] if path.endswith("55.md")}
    assert trees[1] == trees[0]


REWRITE_ALL = """
rules:
  - id: reword
    paths: ["**/*.md"]
    do: [{replace: {pattern: "see ", with: "look at "}}, {role: {}}]
"""


def test_a_run_rewriting_every_file_by_self_contained_rules_is_planned_ahead(
    tmp_path: Path,
) -> None:
    # Rewrites that cannot change what other files' plans read keep the worker
    # planning while threads write (a run of rewrites used to stop it): each plan
    # made ahead is taken, the engine plans none again.
    trees = planned_by_role(tmp_path, REWRITE_ALL, NOTES)
    assert all(b"look at [[" in text for text in trees[1].values())
    assert trees[1] == trees[0]


def watch_scan(root: Path, log_path: Path) -> None:
    """``scribe watch --scan ROOT`` until its scan is done, then a stop."""
    watch = ScribeProcess(root, "--scan", log_path=log_path)
    try:
        assert wait_until(lambda: "scanned " in watch.log(), 60), watch.log()
        assert watch.terminate() == 0, watch.log()
    finally:
        watch.close()


def scan_roles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rules: str, role: str
) -> dict[int, tuple[set[str], dict[str, bytes]]]:
    """``scribe watch --scan`` with a planning worker (1) and without (0), until the
    scan is done: which processes planned the notes, and the trees after."""
    found = {}
    for processes in (1, 0):
        root = knowledge_base(tmp_path / f"p{processes}", rules, processes, role=role)
        log = tmp_path / f"roles-{processes}.txt"
        monkeypatch.setenv("ROLE_LOG", str(log))
        watch_scan(root, tmp_path / f"watch-{processes}.log")
        roles = [line.split() for line in log.read_text().splitlines()]
        assert {path for _, path in roles} == {f"m/n{n:04d}.md" for n in range(NOTES)}
        found[processes] = ({who for who, _ in roles}, tree(root))
    return found


def test_a_watch_scan_by_self_contained_rules_is_planned_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = scan_roles(tmp_path, monkeypatch, REWRITE_ALL, SELF_CONTAINED_ROLE)
    assert found[1][0] == {"worker"}
    assert found[0][0] == {"engine"}
    rewritten = found[1][1]
    assert len(rewritten) == NOTES
    assert all(b"look at [[" in text for text in rewritten.values())
    assert rewritten == found[0][1]


def test_a_watch_scan_by_rules_that_read_other_files_is_planned_in_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its scheduler takes files in an order of its own, on several threads: plans
    # made ahead could miss what a rewrite just before them changed.
    found = scan_roles(tmp_path, monkeypatch, REWRITE_ALL, ROLE)
    assert found[1][0] == found[0][0] == {"engine"}
    assert found[1][1] == found[0][1]


STAMP = """
rules:
  - id: stamp
    paths: ["**/*.md"]
    do: [{set: {field: modified, value: "{{ now('%Y-%m-%dT%H:%M:%S.%fZ') }}"}}]
"""


def test_a_run_stamped_with_plans_made_ahead_is_not_stamped_again(tmp_path: Path) -> None:
    # What Scribe remembers of each stamped file (its hash without the stamp) came
    # from the worker: if it were wrong, the next run would take the notes for
    # edited ones and stamp them again.
    root = knowledge_base(tmp_path, STAMP, 1)
    first = scribe("run", cwd=root)
    assert first.returncode == 0, first.stderr
    assert f"{NOTES} rewritten" in first.stderr
    stamped = tree(root)
    assert all(b"\nmodified: " in text for text in stamped.values())
    again = scribe("run", cwd=root)
    assert again.returncode == 0, again.stderr
    assert tree(root) == stamped


UPPER_RULES = """
rules:
  - id: shout
    paths: ["m/**"]
    do: [{upper: {}}]
"""


def test_a_worker_that_dies_leaves_the_planning_to_the_engine(tmp_path: Path) -> None:
    root = knowledge_base(tmp_path, UPPER_RULES, 1, upper=UPPER)
    done = scribe("run", cwd=root)
    assert done.returncode == 0, done.stderr
    assert "planning ahead stopped" in done.stderr
    notes = tree(root)
    assert len(notes) == NOTES
    assert all(text == text.upper() for text in notes.values())


# -- the engine's side ------------------------------------------------------------

REPLACE = """
rules:
  - id: fix
    paths: ["**/*.md"]
    do: [{replace: {pattern: teh, with: the}}]
"""


def replace_engine(root: Path) -> Engine:
    """A dry-run engine over ``root`` with one rule, and a note for it to fix."""
    (root / "n.md").write_text("teh cat\n")
    return build_engine(root, Settings(), parse_rules(REPLACE, "rules.yaml"), dry_run=True)


def test_a_plan_made_ahead_of_other_content_is_made_again(tmp_path: Path) -> None:
    engine = replace_engine(tmp_path)
    made = engine.plan_ahead("n.md")
    assert made is not None
    assert made.new_text == "the cat\n"
    (tmp_path / "n.md").write_text("teh dog\n")  # changed after it was planned
    [outcome] = engine.handle_many([engine.scan_event("n.md")], {"n.md": made})
    assert outcome.status is Status.PLANNED
    assert outcome.plan is not None
    assert outcome.plan.new_text == "the dog\n"


def test_a_plan_made_ahead_fits_only_the_same_content_and_decisions(tmp_path: Path) -> None:
    engine = replace_engine(tmp_path)
    made = engine.plan_ahead("n.md")
    assert isinstance(made, Ahead)
    file = read_text(tmp_path, "n.md")
    assert made.fits(file, made.may_restamp, set())
    assert not made.fits(file, not made.may_restamp, set())
    assert not made.fits(file, made.may_restamp, {"fix"})  # a rule held back
    plan = made.plan(file, engine.rules)
    assert plan is not None
    assert (plan.path, plan.old_text, plan.new_text, plan.rules) == (
        "n.md",
        "teh cat\n",
        "the cat\n",
        ("fix",),
    )
    assert made.time <= datetime.now(UTC)
    assert made.plan(file, []) is None  # its rule is gone


def test_plans_made_ahead_are_dropped_once_the_rules_are_reloaded(tmp_path: Path) -> None:
    engine = replace_engine(tmp_path)
    for n in range(3):
        (tmp_path / f"m{n}.md").write_text(f"teh {n}\n")
    paths = [f"m{n}.md" for n in range(3)]
    pool = PlanPool(engine, [paths[:2], paths[2:]], processes=1)
    try:
        made = pool.ready(["m2.md", "m0.md", "elsewhere.md"])  # in any order, any batch
        assert {path: plan.new_text for path, plan in made.items()} == {
            "m0.md": "the 0\n",
            "m2.md": "the 2\n",
        }
        # The same rules, loaded again: the workers planned with the old ones.
        engine.rules = [dataclasses.replace(rule) for rule in engine.rules]
        assert pool.ready(paths) == {}
    finally:
        pool.stop()
    assert pool.ready(paths) == {}
