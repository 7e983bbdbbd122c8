"""The ``scribe`` command: a thin layer over the engine.

Exit codes: 0 success; 1 ``check`` found files to change, or a file could not be
processed; 2 invalid rules or settings.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from scribe import __version__, quarantine, records
from scribe.certs_cli import app as certs_app
from scribe.cli_options import (
    ListenOption,
    LogFileOption,
    LogLevelOption,
    RootArgument,
    RulesOption,
)
from scribe.config import (
    STATE_DIR,
    Loaded,
    Settings,
    load_layers,
    load_settings,
    settings_schema,
)
from scribe.errors import ContentChanged, FileBusy, ScribeError
from scribe.journal.commands import register as register_journal_commands
from scribe.journal.entry import (
    BREAKER_CLOSED,
    BREAKER_HALF_OPEN,
    BREAKER_OPENED,
    ENGINE_STARTED,
    FILE_WRITTEN,
    NewEntry,
    Query,
)
from scribe.journal.writer import JournalWriter
from scribe.observe import tracing
from scribe.plugins_cli import app as plugins_app
from scribe.progress import progress_bar
from scribe.startup import (
    build_engine,
    ignore_for,
    load_repository_rules,
    open_journal,
    open_store,
    required_journal,
    restore_quarantine,
    start_journal,
    stop_journal,
)
from scribe.watch import Ignore, scan
from scribe.worker_cli import worker_command

if TYPE_CHECKING:  # the engine and its actions load with the commands that use them
    from scribe.engine import Engine, Outcome
    from scribe.plan import Ahead, Plan
    from scribe.rules.match import CompiledRule

app = typer.Typer(
    name="scribe",
    help="Keep a plain-text repository tidy: declarative rules applied as safe rewrites.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)
log = logging.getLogger("scribe")


class SchemaOf(StrEnum):
    RULES = "rules"
    CONFIG = "config"


RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root", help="Repository root (default: found from the paths or the current directory)."
    ),
]
PathsArgument = Annotated[
    list[Path] | None, typer.Argument(help="Files or directories (default: the whole repository).")
]


def find_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` holding Scribe rules or settings."""
    start = start.resolve()
    here = start if start.is_dir() else start.parent
    for candidate in (here, *here.parents):
        if (candidate / STATE_DIR / "rules.yaml").is_file() or (
            candidate / "scribe.yaml"
        ).is_file():
            return candidate
    return here


def _setup(
    root: Path | None, rules: Path | None, paths: list[Path] | None, **overrides: Any
) -> tuple[Path, Settings, list[CompiledRule]]:
    base, loaded, _, compiled = _load(root, rules, paths, **overrides)
    return base, loaded.settings, compiled


def _load(
    root: Path | None, rules: Path | None, paths: list[Path] | None, **overrides: Any
) -> tuple[Path, Loaded, Path, list[CompiledRule]]:
    """The root, the settings with their sources, the rules file and its rules."""
    base = root.resolve() if root else find_root(paths[0] if paths else Path.cwd())
    loaded = load_layers(base, **overrides)
    rules_path = rules.resolve() if rules else base / loaded.settings.rules
    return (
        base,
        loaded,
        rules_path,
        load_repository_rules(
            base, loaded.settings, rules_path, display=_display(rules_path, base)
        ),
    )


def _display(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _targets(root: Path, paths: list[Path] | None, ignore: Ignore) -> list[str]:
    if not paths:
        return list(scan(root, ignore))
    found: list[str] = []
    for given in paths:
        absolute = given.resolve() if given.is_absolute() or given.exists() else (root / given)
        try:
            rel = absolute.relative_to(root).as_posix() if absolute != root else ""
        except ValueError:
            raise typer.BadParameter(f"{given} is outside the repository root {root}") from None
        if absolute.is_dir():
            found.extend(scan(root, ignore, under=rel))
        elif absolute.exists() or absolute.is_symlink():
            if not ignore(rel):
                found.append(rel)
        else:
            raise typer.BadParameter(f"{given} does not exist")
    return list(dict.fromkeys(found))


def _progress(total: int) -> Progress:
    return progress_bar(err, hidden=total < 200)


def _apply_once(
    engine: Engine, files: list[str], label: str, settings: Settings
) -> Iterator[Outcome]:
    """Handle each file once, in order of ``files``, in batches (their writes share a
    journal commit).

    Worker processes plan the batches ahead (``scribe.ahead``) for as long as
    nothing has happened that their plans may read. While many files are being
    rewritten, batches run on ``workers`` threads, which overlap one batch's disk
    waits with the next; otherwise one thread is faster: threads that only read and
    plan contend for the interpreter lock and slow each other down several times
    over. Both go together only when the rules are ``independent`` of other files:
    then no batch can change what the next one's plans read.
    """
    from scribe.ahead import PlanPool

    workers = settings.workers
    size = max(1, min(settings.max_batch, -(-len(files) // (workers * 4))))
    batches = [files[at : at + size] for at in range(0, len(files), size)]
    planner = PlanPool.for_run(engine, batches, settings.plan_processes)

    def handle(batch: list[str], ahead: Mapping[str, Ahead] | None = None) -> list[Outcome]:
        return engine.handle_many([engine.scan_event(rel) for rel in batch], ahead)

    seen = written = 0
    try:
        with _progress(len(files)) as progress, ThreadPoolExecutor(workers) as pool:
            task = progress.add_task(label, total=len(files))

            def account(done: list[Outcome]) -> list[Outcome]:
                nonlocal seen, written
                seen, written = seen + len(done), written + _rewritten(done)
                progress.advance(task, len(done))
                return done

            def rewriting() -> bool:
                return written * 10 >= seen  # a tenth or more of the files so far

            running: deque[Future[list[Outcome]]] = deque()
            for number, batch in enumerate(batches):
                ahead = planner.take(number) if planner is not None and planner.running else None
                if planner is not None and ahead is not None and not planner.independent:
                    done = handle(batch, ahead)
                    yield from account(done)
                    # Its plans may read what just changed; or the run has turned into
                    # a run of rewrites, whose syncs the threads below overlap instead.
                    if planner.outdated_by(done) or rewriting():
                        planner.stop()
                    continue
                writing = not seen or rewriting()
                if writing:
                    running.append(pool.submit(handle, batch, ahead))
                while running and (not writing or len(running) >= workers):
                    yield from account(running.popleft().result())
                if not writing:
                    yield from account(handle(batch, ahead))
            for future in running:
                yield from account(future.result())
    finally:  # also when the caller stops early (an error, Ctrl-C)
        if planner is not None:
            planner.stop()


def _rewritten(outcomes: Sequence[Outcome]) -> int:
    from scribe.engine import Status

    return sum(o.status is Status.WRITTEN for o in outcomes)


#: Control characters (a file name can hold any) shown as U+FFFD, never sent on.
_CONTROLS = dict.fromkeys([*range(9), *range(10, 32), 127], "\ufffd")


def _report_problems(outcomes: Iterable[Outcome]) -> int:
    """Tell what went wrong; how many problems fail the command (exit 1).

    Everything is printed at once: a check over a large repository can report
    thousands of findings, and one print per line costs a third of a millisecond.
    Where no terminal reads them (CI logs, pipes) they are written as plain text:
    laying out thousands of coloured lines costs rich half a second.
    """
    from scribe.engine import Status

    failures = 0
    lines: list[tuple[str, str, str]] = []  # label, its style, the rest of the line
    for outcome in outcomes:
        for found in outcome.findings:
            failures += found.fail
            where = f"{found.path}:{found.line}" if found.line else found.path
            lines.append(
                (found.code, "red" if found.fail else "yellow", f"{where}: {found.message}")
            )
        if outcome.status is Status.SKIPPED and outcome.reason:
            lines.append(("skipped", "yellow", f"{outcome.path}: {outcome.reason}"))
        elif outcome.status in (Status.CONFLICT, Status.BUSY, Status.FAILED):
            failures += 1
            lines.append(("not written", "red", f"{outcome.path}: {outcome.reason}"))
        for failure in outcome.failures:
            failures += 1
            lines.append(
                (f"rule {failure.rule} failed", "red", f"on {outcome.path}: {failure.reason}")
            )
    if not lines:
        return failures
    if err.is_terminal:
        report = Text("\n").join(
            Text.assemble((label, style), f" {rest}") for label, style, rest in lines
        )
        err.print(report, soft_wrap=True)
    else:
        text = "".join(f"{label} {rest}".translate(_CONTROLS) + "\n" for label, _, rest in lines)
        err.file.write(text)
        err.file.flush()
    return failures


def _print_diff(diff: str) -> None:
    for line in diff.splitlines():
        style = (
            "bold"
            if line.startswith(("+++", "---"))
            else "green"
            if line.startswith("+")
            else "red"
            if line.startswith("-")
            else "cyan"
            if line.startswith("@@")
            else ""
        )
        out.print(Text(line, style=style), soft_wrap=True)


@app.command()
def init(root: Annotated[Path, typer.Argument(help="Repository root.")] = Path(".")) -> None:
    """Create .scribe/rules.yaml with a commented timestamp rule."""
    from scribe.starter import write_starter

    path = write_starter(root.resolve())
    out.print(f"created {path}; edit it, then run [bold]scribe watch[/]")


@app.command()
def run(paths: PathsArgument = None, root: RootOption = None, rules: RulesOption = None) -> None:
    """Apply the rules once to PATHS (default: every file) and write the results."""
    from scribe.engine import Status
    from scribe.recovery import finish_open_work

    base, settings, compiled = _setup(root, rules, paths)
    tracing.configure("engine")  # on only when OTEL_* variables ask; flushed at exit
    journal = open_journal(base, settings)
    if journal is not None:
        start_journal(journal, compiled, "run")
        closing, _ = finish_open_work(journal.store, base)  # this run redoes every file anyway
        journal.append(closing)
    engine = build_engine(base, settings, compiled, dry_run=False, journal=journal)
    if journal is not None:
        restore_quarantine(engine, journal)
    targets = _targets(base, paths, ignore_for(base, settings))
    try:
        outcomes = list(_apply_once(engine, targets, "applying rules", settings))
        raised = [event for o in outcomes for event in o.emitted]
        if raised:  # custom events the rules raised, and the chains they start
            outcomes += engine.handle_all(raised)
    finally:
        engine.state.close()
        if journal is not None:
            stop_journal(journal, "run")
    for outcome in outcomes:
        if outcome.status is Status.WRITTEN and outcome.plan:
            out.print(f"rewrote {outcome.path} [dim]({', '.join(outcome.plan.rules)})[/]")
    failures = _report_problems(outcomes)
    written = sum(o.status is Status.WRITTEN for o in outcomes)
    err.print(f"{written} rewritten, {len(outcomes) - written} unchanged or skipped")
    raise typer.Exit(1 if failures else 0)


def _dry_run(
    paths: list[Path] | None, root: Path | None, rules: Path | None, label: str
) -> tuple[list[tuple[str, Plan]], int, list[Plan]]:
    """Plan every target without writing: the changes, how many failures, and the
    plans with effects (which a dry run does not run)."""
    from scribe.engine import Status

    base, settings, compiled = _setup(root, rules, paths)
    tracing.configure("engine")
    engine = build_engine(base, settings, compiled, dry_run=True)
    targets = _targets(base, paths, ignore_for(base, settings))
    outcomes = list(_apply_once(engine, targets, label, settings))
    planned = [(o.path, o.plan) for o in outcomes if o.status is Status.PLANNED and o.plan]
    effects = [o.plan for o in outcomes if o.plan is not None and o.plan.effects]
    return planned, _report_problems(outcomes), effects


@app.command()
def plan(paths: PathsArgument = None, root: RootOption = None, rules: RulesOption = None) -> None:
    """Show the diff the rules would make to PATHS; writes nothing."""
    from scribe.actions.effects import WriteFile
    from scribe.effect_runner import describe as describe_effects

    planned, failures, effects = _dry_run(paths, root, rules, "planning")
    for _, change in planned:
        _print_diff(change.diff())
    others: set[str] = set()
    for with_effects in effects:
        for line in describe_effects(with_effects.effects):
            out.print(Text(f"{with_effects.path}: {line}", style="magenta"), soft_wrap=True)
        others.update(
            p.effect.path for p in with_effects.effects if isinstance(p.effect, WriteFile)
        )
    beyond = f"; effects would write {len(others)} other file(s)" if others else ""
    err.print(f"{len(planned)} file(s) would change{beyond}")
    raise typer.Exit(1 if failures else 0)


@app.command()
def check(
    paths: PathsArgument = None,
    root: RootOption = None,
    rules: RulesOption = None,
    diff: Annotated[bool, typer.Option("--diff", help="Also print the diffs.")] = False,
) -> None:
    """Exit 1 if the rules would change any of PATHS (for CI and pre-commit)."""
    planned, failures, _ = _dry_run(paths, root, rules, "checking")
    for path, change in planned:
        out.print(f"would change {path} [dim]({', '.join(change.rules)})[/]")
        if diff:
            _print_diff(change.diff())
    if planned:
        err.print(f"{len(planned)} file(s) would change; run `scribe run` to apply")
    raise typer.Exit(1 if planned or failures else 0)


rules_app = typer.Typer(help="List, validate, enable and disable the rules.")
app.add_typer(rules_app, name="rules")
app.add_typer(plugins_app, name="plugins")
app.add_typer(certs_app, name="certs")


@rules_app.callback(invoke_without_command=True)
def rules_command(
    ctx: typer.Context,
    root: RootOption = None,
    rules: RulesOption = None,
    explain: Annotated[
        Path | None,
        typer.Option(
            "--explain", help="Say which rules match this file, and why the others do not."
        ),
    ] = None,
) -> None:
    """List and validate the rules."""
    if ctx.invoked_subcommand is not None:
        return
    base, settings, compiled = _setup(root, rules, [explain] if explain else None)
    if explain is not None:
        _explain(base, settings, compiled, explain)
        return
    table = Table(
        "id", "on", "paths", "steps", "priority", "enabled", title=f"{len(compiled)} rule(s), valid"
    )
    for rule in compiled:
        table.add_row(
            rule.id,
            ", ".join(rule.triggers()),
            ", ".join(rule.paths) + (f"  (not {', '.join(rule.exclude)})" if rule.exclude else ""),
            ", ".join(step.action.name for step in rule.steps),
            str(rule.priority),
            "yes" if rule.enabled else "no",
        )
    out.print(table)


RuleId = Annotated[str, typer.Argument(help="The rule's id.")]


@rules_app.command("disable")
def rules_disable(rule_id: RuleId, root: RootOption = None, rules: RulesOption = None) -> None:
    """Set a rule's `enabled: false` in the rules file (nothing else in it changes)."""
    _set_enabled(rule_id, False, root, rules)


@rules_app.command("enable")
def rules_enable(rule_id: RuleId, root: RootOption = None, rules: RulesOption = None) -> None:
    """Set a rule's `enabled: true` in the rules file (nothing else in it changes)."""
    _set_enabled(rule_id, True, root, rules)


def _set_enabled(rule_id: str, enabled: bool, root: Path | None, rules: Path | None) -> None:
    """Edit the rules file, journal first like any write Scribe makes for someone."""
    from scribe.diffs import unified_diff
    from scribe.files import read_text, sha256
    from scribe.rules.edit import set_enabled
    from scribe.rules.load import parse_rules
    from scribe.undo import write_journaled

    base = root.resolve() if root else find_root(Path.cwd())
    settings = load_settings(base)
    path = rules.resolve() if rules else base / settings.rules
    display = _display(path, base)
    try:
        file = read_text(path.parent.resolve(), path.name)
    except FileNotFoundError:
        raise ScribeError(f"{display} does not exist (scribe init writes one)") from None
    word = "enabled" if enabled else "disabled"
    text = set_enabled(file.text, rule_id, enabled)
    if text == file.text:
        err.print(f"rule {rule_id} is already {word}")
        return
    parse_rules(text, display)  # the edit must leave a valid file, or none is made
    journal = open_journal(base, settings)
    if journal is not None and Path(display).is_absolute():
        journal.close()
        raise ScribeError(f"{display} is outside the repository; edit it by hand")
    data = file.encode(text)
    intent = NewEntry(
        FILE_WRITTEN,
        records.USER,
        path=display,
        before_hash=file.sha256,
        after_hash=sha256(data),
        diff=unified_diff(display, file.text, text),
        message=f"rule {rule_id} {word} (scribe rules {'enable' if enabled else 'disable'})",
        payload={"rule": rule_id, "enabled": enabled, "pid": os.getpid()},
    )
    try:
        write_journaled(file, data, intent, journal)
    except (ContentChanged, FileBusy):
        raise ScribeError(f"{display} changed while it was being edited; try again") from None
    finally:
        if journal is not None:
            journal.close()
    out.print(f"rule {rule_id} {word} in {display}")


def _explain(base: Path, settings: Settings, compiled: list[CompiledRule], target: Path) -> None:
    from scribe.actions import FileContext
    from scribe.files import read_text

    found = _targets(base, [target], Ignore(base)) if target.exists() else [target.as_posix()]
    if not found:
        raise ScribeError(f"{target} is ignored: Scribe never applies rules to it")
    rel = found[0]
    engine = build_engine(base, settings, compiled, dry_run=True)
    kind = engine.scan_event(rel).kind
    out.print(f"{rel} (as a {kind.value!r} event):")
    file = read_text(base, rel, max_bytes=settings.max_file_bytes)
    ctx = FileContext(
        path=rel,
        text=file.text,
        time=datetime.now(UTC),
        regex_timeout=settings.regex_timeout,
    )
    for rule in compiled:
        verdict = rule.wants(kind, rel)
        if verdict.matched:
            try:
                verdict = rule.check(ctx, len(file.raw))
            except Exception as exc:  # report, don't crash: this is a diagnostic
                out.print(
                    f"  [red]✗ {rule.id}[/]: condition failed with {type(exc).__name__}: {exc}"
                )
                continue
        mark = "[green]✓" if verdict.matched else "[dim]·"
        out.print(f"  {mark} {rule.id}[/]: {verdict.reason}")
    outcome = engine.handle(engine.scan_event(rel))
    if outcome.plan and outcome.plan.changed:
        out.print(f"  would change it ({', '.join(outcome.plan.rules)})")
    else:
        out.print("  would leave it unchanged")


@app.command("undo")
def undo_command(
    seq: Annotated[int, typer.Argument(help="Journal entry of the write to revert.")],
    root: RootOption = None,
) -> None:
    """Revert a write Scribe made, if the file still holds exactly what it wrote."""
    from scribe.files import read_text
    from scribe.undo import UndoError, undo, written_path

    base = root.resolve() if root else find_root(Path.cwd())
    settings = load_settings(base)
    journal = required_journal(base, settings)
    try:
        entry = journal.store.get(seq)
        if entry is None:
            raise UndoError(f"no journal entry {seq}")
        path = written_path(entry)
        try:
            file = read_text(base, path, max_bytes=settings.max_file_bytes)
        except FileNotFoundError:
            raise UndoError(f"{path} no longer exists") from None
        sealed = undo(file, entry, journal, actor=records.USER)
    finally:
        journal.close()
    out.print(f"reverted {path} (entry {seq}); journaled as entry {sealed.seq}")


quarantine_app = typer.Typer(
    help="Files on which a rule failed, held back until the file or the rule changes.",
    no_args_is_help=True,
)
app.add_typer(quarantine_app, name="quarantine")


def _held(
    root: Path | None, paths: list[Path] | None, rule: str | None
) -> tuple[Path, Settings, JournalWriter, list[quarantine.Held]]:
    base = root.resolve() if root else find_root(paths[0] if paths else Path.cwd())
    settings = load_settings(base)
    journal = required_journal(base, settings)
    wanted = {_display(p.resolve() if p.exists() else base / p, base) for p in paths or []}
    items = [
        item
        for item in quarantine.held(journal.store)
        if (not wanted or item.path in wanted) and (rule is None or item.rule == rule)
    ]
    return base, settings, journal, items


RuleFilter = Annotated[str | None, typer.Option("--rule", help="Only this rule.")]
QuarantinePaths = Annotated[
    list[Path] | None, typer.Argument(help="Files (default: every quarantined file).")
]


@quarantine_app.command("list")
def quarantine_list(
    paths: QuarantinePaths = None,
    root: RootOption = None,
    rule: RuleFilter = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List what is quarantined: file, rule, since when and why."""
    _, _, journal, items = _held(root, paths, rule)
    journal.close()
    if as_json:
        for item in items:
            row = {"path": item.path, "rule": item.rule, "since": item.entry.ts}
            typer.echo(json.dumps({**row, "seq": item.entry.seq, "reason": item.reason}))
        return
    if not items:
        err.print("nothing is quarantined")
        return
    table = Table("file", "rule", "since", "entry", "reason", box=None)
    for item in items:
        table.add_row(item.path, item.rule, item.entry.ts[:19], str(item.entry.seq), item.reason)
    out.print(table)


@quarantine_app.command("retry")
def quarantine_retry(
    paths: QuarantinePaths = None, root: RootOption = None, rule: RuleFilter = None
) -> None:
    """Release quarantined files and apply the rules to them now."""
    base, settings, journal, items = _held(root, paths, rule)
    try:
        journal.append([quarantine.release(i, "retry asked for", records.USER) for i in items])
        compiled = load_repository_rules(
            base, settings, base / settings.rules, display=settings.rules
        )
        engine = build_engine(base, settings, compiled, dry_run=False, journal=journal)
        files = list(dict.fromkeys(item.path for item in items))
        outcomes = list(_apply_once(engine, files, "retrying", settings))
        engine.state.close()
    finally:
        journal.close()
    for outcome in outcomes:
        verdict = "failed again" if outcome.failures else str(outcome.status)
        out.print(f"{outcome.path}: {verdict}")
    raise typer.Exit(1 if _report_problems(outcomes) else 0)


@quarantine_app.command("drop")
def quarantine_drop(
    paths: QuarantinePaths = None, root: RootOption = None, rule: RuleFilter = None
) -> None:
    """Release quarantined files without retrying now (the next change retries them)."""
    _, _, journal, items = _held(root, paths, rule)
    try:
        journal.append([quarantine.release(i, "dropped", records.USER) for i in items])
    finally:
        journal.close()
    err.print(f"released {len(items)} quarantined rule(s)")


@app.command()
def breakers(root: RootOption = None) -> None:
    """Rules whose circuit breaker is not closed in the running watcher."""
    base = root.resolve() if root else find_root(Path.cwd())
    with open_store(base, load_settings(base).journal_url) as store:
        started = store.query(Query(kinds=[ENGINE_STARTED], newest_first=True, limit=1))
        since = started[0].seq if started else 0
        moves = store.query(
            Query(kinds=[BREAKER_OPENED, BREAKER_HALF_OPEN, BREAKER_CLOSED], after_seq=since)
        )
    latest = {str(entry.payload.get("rule")): entry for entry in moves}
    open_ = {rule: e for rule, e in latest.items() if e.kind != BREAKER_CLOSED}
    if not open_:
        err.print("every breaker is closed")
        return
    table = Table("rule", "state", "since", "failures in a row", box=None)
    for rule, entry in sorted(open_.items()):
        state = "open" if entry.kind == BREAKER_OPENED else "half-open"
        table.add_row(rule, state, entry.ts[:19], str(entry.payload.get("failures", "")))
    out.print(table)


@app.command()
def schema(
    which: Annotated[
        SchemaOf, typer.Argument(help="The rules file or the settings file (scribe.yaml).")
    ] = SchemaOf.RULES,
) -> None:
    """Print the JSON Schema of the rules file or of scribe.yaml (for editors)."""
    from scribe.rules.model import rules_schema

    out.print_json(json.dumps(rules_schema() if which is SchemaOf.RULES else settings_schema()))


@app.command("config")
def config_command(
    root: RootOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Print the effective settings and where each value came from."""
    base = root.resolve() if root else find_root(Path.cwd())
    loaded = load_layers(base)
    values = loaded.settings.model_dump(mode="json")
    if as_json:
        report = {k: {"value": v, "source": str(loaded.sources[k])} for k, v in values.items()}
        out.print_json(json.dumps(report))
        return
    table = Table("setting", "value", "from", box=None)
    for key, value in values.items():
        source = loaded.sources[key]
        shown = json.dumps(value) if not isinstance(value, str) else value
        table.add_row(key, shown, str(source) if source.kind != "default" else "[dim]default[/]")
    out.print(table)


@app.command("watch")
def watch_command(
    root: RootArgument = None,
    rules: RulesOption = None,
    scan_first: Annotated[
        bool, typer.Option("--scan", help="Apply the rules to existing files first.")
    ] = False,
    poll: Annotated[
        bool | None, typer.Option("--poll", help="Poll instead of OS events (network drives, WSL).")
    ] = None,
    quiet_ms: Annotated[
        int | None, typer.Option("--quiet-ms", help="Quiet window where closes are not reported.")
    ] = None,
    listen: ListenOption = None,
    log_level: LogLevelOption = None,
    log_file: LogFileOption = None,
    bus: Annotated[
        str | None,
        typer.Option(
            "--bus",
            help="nats://HOST:PORT (tls:// for TLS): carry events through NATS JetStream "
            "(default: in this process).",
        ),
    ] = None,
    no_workers: Annotated[
        bool,
        typer.Option(
            "--no-workers", help="With a bus: only publish events, for scribe worker processes."
        ),
    ] = False,
) -> None:
    """Watch the repository and apply the rules on every save until stopped."""
    from scribe.daemon import WatchService
    from scribe.observe import logs

    flags: dict[str, object] = {
        "poll": poll,
        "quiet_ms": quiet_ms,
        "listen": listen,
        "log_level": log_level.lower() if log_level else None,
        "log_file": str(log_file) if log_file else None,
        "bus": bus,
    }
    logs.configure("info")  # until the settings (the level among them) are known
    base, loaded, rules_path, compiled = _load(root, rules, [root] if root else None, **flags)
    settings = loaded.settings
    log_path = Path(settings.log_file) if settings.log_file else None
    logs.configure(settings.log_level, log_file=base / log_path if log_path is not None else None)
    if no_workers and not settings.bus:
        raise typer.BadParameter("give a bus (--bus or the bus setting)", param_hint="--no-workers")
    tracing.configure("engine")
    service = WatchService(
        base,
        settings,
        compiled,
        rules_file=rules_path,
        rules_display=_display(rules_path, base),
        rules_fixed=rules is not None,
        flags=flags,
        listen_given=loaded.sources["listen"].kind != "default",
        console=err,
        consume=not no_workers,
    )
    try:
        service.run(scan_first=scan_first)
    finally:
        tracing.shutdown()


@app.command("read")
def read_command(
    path: Annotated[str, typer.Argument(help="File to read, relative to the root.")],
    mode: Annotated[
        str,
        typer.Option("--mode", help="scan_only, chunk, line_range, page, full_stream or search."),
    ] = "scan_only",
    root: RootOption = None,
    chunk_index: Annotated[int | None, typer.Option("--chunk-index", help="chunk: which.")] = None,
    start_line: Annotated[
        int | None, typer.Option("--start-line", help="line_range: from.")
    ] = None,
    end_line: Annotated[int | None, typer.Option("--end-line", help="line_range: to.")] = None,
    page: Annotated[int | None, typer.Option("--page", help="page: which, from 1.")] = None,
    page_size: Annotated[int | None, typer.Option("--page-size", help="page: lines.")] = None,
    pattern: Annotated[str | None, typer.Option("--pattern", help="search: what to find.")] = None,
    regex: Annotated[bool | None, typer.Option("--regex", help="search: a regex.")] = None,
    ignore_case: Annotated[
        bool | None, typer.Option("--ignore-case", help="search: ignore case.")
    ] = None,
    context: Annotated[
        int | None, typer.Option("--context", help="search: lines around a match.")
    ] = None,
) -> None:
    """Read a file the way agents do over MCP, as JSON lines: its scan (size, lines,
    sha256, newlines, encoding, chunks) and what MODE asks for; journaled."""
    from scribe.mcp.failures import ToolFailure
    from scribe.mcp.reader import provenance_entry, read_for_cli

    base = root.resolve() if root else find_root(Path.cwd())
    settings = load_settings(base)
    options: dict[str, Any] = {
        "chunk_index": chunk_index,
        "start_line": start_line,
        "end_line": end_line,
        "page": page,
        "page_size": page_size,
        "pattern": pattern,
        "regex": regex,
        "ignore_case": ignore_case,
        "context": context,
    }
    journal = open_journal(base, settings)
    try:
        for answer in read_for_cli(
            base,
            path,
            mode,
            deny=settings.mcp_deny,
            chunk_bytes=settings.mcp_chunk_bytes,
            **options,
        ):
            provenance = answer.pop("provenance", None)
            if provenance is not None and journal is not None:
                journal.append([provenance_entry("user", provenance)])
            sys.stdout.write(json.dumps(answer, ensure_ascii=False) + "\n")
    except ToolFailure as failure:
        err.print(Text(f"{failure.code}: {failure.message}", style="red"), soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        if journal is not None:
            journal.close()


@app.command("mcp")
def mcp_command(
    roots: Annotated[
        list[Path] | None,
        typer.Argument(help="Repositories to serve (default: found from the current directory)."),
    ] = None,
    http: Annotated[
        str | None,
        typer.Option(
            "--http",
            metavar="HOST:PORT",
            help="Serve streamable HTTP here instead of stdio; beyond loopback a bearer "
            "token (SCRIBE_MCP_TOKEN or --token-file) is required.",
        ),
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="File holding the HTTP bearer token.")
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error (to stderr).")
    ] = "warning",
) -> None:
    """Serve the MCP server to AI agents: over stdio, or streamable HTTP with --http."""
    from scribe.mcp.http import run_http
    from scribe.mcp.server import build_server, run_stdio
    from scribe.observe import logs
    from scribe.observe.server import parse_listen
    from scribe.tls import server_context

    logs.configure(log_level.lower(), json=True)  # stderr only: stdout is the protocol's
    bases = [r.resolve() for r in roots] if roots else [find_root(Path.cwd())]
    for base in bases:
        if not base.is_dir():
            raise typer.BadParameter(f"{base} is not a directory")
    address = None
    if http is not None:
        try:
            address = parse_listen(http)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--http") from None
        if address[1] == 0:  # clients must be told the port, and Host checks need it
            raise typer.BadParameter("give a port other than 0", param_hint="--http")
    settings = load_settings(bases[0])  # the HTTP settings are the first root's
    token = _mcp_token(bases[0], settings, token_file) if address else None
    tls = server_context(settings, bases[0]) if address else None
    server, door = build_server(bases)
    try:
        if address is None:
            run_stdio(server, door)
        else:
            run_http(server, address[0], address[1], token, settings.mcp_allowed_hosts, tls)
    finally:
        door.close()


def _mcp_token(root: Path, settings: Settings, token_file: Path | None) -> str | None:
    """The bearer token: --token-file, else SCRIBE_MCP_TOKEN / mcp_token, else mcp_token_file."""
    path = token_file or (root / settings.mcp_token_file if settings.mcp_token_file else None)
    if path is None:
        return settings.mcp_token
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ScribeError(f"cannot read the token file {path}: {exc.strerror}") from None
    if not token:
        raise ScribeError(f"the token file {path} is empty")
    return token


def _version(value: bool) -> None:
    if value:
        out.print(f"scribe {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Scribe keeps plain-text repositories tidy and accountable."""


register_journal_commands(app)
app.command("worker")(worker_command)


def main() -> None:
    """Console entry point: Scribe's errors become exit codes, never a traceback.

    Usage errors are typer's own (exit 2, with the usage line).
    """
    try:
        app()
    except ScribeError as exc:
        err.print(Text(str(exc), style="red"), soft_wrap=True)
        sys.exit(exc.exit_code)
