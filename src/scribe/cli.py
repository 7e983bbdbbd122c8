"""The ``scribe`` command: a thin layer over the engine.

Exit codes: 0 success; 1 ``check`` found files to change, or a file could not be
processed; 2 invalid rules or settings.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from scribe import __version__
from scribe.config import STATE_DIR, Settings, load_settings
from scribe.engine import SCAN_KIND, Engine, Outcome, Status
from scribe.errors import ScribeError
from scribe.events import Event
from scribe.plan import Plan
from scribe.rules.load import load_rules
from scribe.rules.match import CompiledRule
from scribe.rules.model import rules_schema
from scribe.scheduler import Scheduler
from scribe.state import State
from scribe.watch import POLL_INTERVAL, Change, Ignore, scan, watch

#: A polled file is ready once it has looked unchanged for this long: a change is
#: seen up to one interval late, and a writer's next change one more interval on.
POLL_QUIET = 2.5 * POLL_INTERVAL

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

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root", help="Repository root (default: found from the paths or the current directory)."
    ),
]
RulesOption = Annotated[
    Path | None, typer.Option("--rules", help="Rules file (default: .scribe/rules.yaml).")
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
    root: Path | None, rules: Path | None, paths: list[Path] | None, **overrides: object
) -> tuple[Path, Settings, list[CompiledRule]]:
    base = root.resolve() if root else find_root(paths[0] if paths else Path.cwd())
    settings = load_settings(base, **overrides)
    rules_path = rules.resolve() if rules else base / settings.rules
    display = _display(rules_path, base)
    return base, settings, load_rules(rules_path, display=display)


def _display(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _configure_logging(level: str) -> None:
    handler: logging.Handler = RichHandler(
        console=err, show_path=False, markup=False, rich_tracebacks=False
    )
    if not err.is_terminal:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def _engine(root: Path, settings: Settings, rules: list[CompiledRule], *, dry_run: bool) -> Engine:
    state = State(None if dry_run else root / STATE_DIR / "state.db")
    return Engine(
        root,
        rules,
        state=state,
        dry_run=dry_run,
        max_file_bytes=settings.max_file_bytes,
        regex_timeout=settings.regex_timeout,
    )


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
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=total < 200 or not err.is_terminal,
    )


def _apply_once(engine: Engine, files: list[str], label: str, *, workers: int) -> Iterator[Outcome]:
    """Handle each file once, in order of ``files``; ``workers`` threads overlap one
    file's disk waits (fsync) with the planning of the next."""
    with _progress(len(files)) as progress, ThreadPoolExecutor(workers) as pool:
        task = progress.add_task(label, total=len(files))
        for outcome in pool.map(lambda rel: engine.handle(engine.scan_event(rel)), files):
            yield outcome
            progress.advance(task)


def _report_problems(outcomes: Iterable[Outcome]) -> int:
    failures = 0
    for outcome in outcomes:
        if outcome.status is Status.SKIPPED and outcome.reason:
            err.print(f"[yellow]skipped[/] {outcome.path}: {outcome.reason}")
        elif outcome.status in (Status.CONFLICT, Status.BUSY, Status.FAILED):
            failures += 1
            err.print(f"[red]not written[/] {outcome.path}: {outcome.reason}")
        for failure in outcome.failures:
            failures += 1
            err.print(f"[red]rule {failure.rule} failed[/] on {outcome.path}: {failure.reason}")
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
    base, settings, compiled = _setup(root, rules, paths)
    engine = _engine(base, settings, compiled, dry_run=False)
    targets = _targets(base, paths, _ignore(base, settings))
    try:
        outcomes = list(_apply_once(engine, targets, "applying rules", workers=settings.workers))
    finally:
        engine.state.close()
    for outcome in outcomes:
        if outcome.status is Status.WRITTEN and outcome.plan:
            out.print(f"rewrote {outcome.path} [dim]({', '.join(outcome.plan.rules)})[/]")
    failures = _report_problems(outcomes)
    written = sum(o.status is Status.WRITTEN for o in outcomes)
    err.print(f"{written} rewritten, {len(outcomes) - written} unchanged or skipped")
    raise typer.Exit(1 if failures else 0)


def _dry_run(
    paths: list[Path] | None, root: Path | None, rules: Path | None, label: str
) -> tuple[list[tuple[str, Plan]], int]:
    """Plan every target without writing: the changes, and how many failures."""
    base, settings, compiled = _setup(root, rules, paths)
    engine = _engine(base, settings, compiled, dry_run=True)
    targets = _targets(base, paths, _ignore(base, settings))
    outcomes = list(_apply_once(engine, targets, label, workers=settings.workers))
    planned = [(o.path, o.plan) for o in outcomes if o.status is Status.PLANNED and o.plan]
    return planned, _report_problems(outcomes)


@app.command()
def plan(paths: PathsArgument = None, root: RootOption = None, rules: RulesOption = None) -> None:
    """Show the diff the rules would make to PATHS; writes nothing."""
    planned, failures = _dry_run(paths, root, rules, "planning")
    for _, change in planned:
        _print_diff(change.diff())
    err.print(f"{len(planned)} file(s) would change")
    raise typer.Exit(1 if failures else 0)


@app.command()
def check(
    paths: PathsArgument = None,
    root: RootOption = None,
    rules: RulesOption = None,
    diff: Annotated[bool, typer.Option("--diff", help="Also print the diffs.")] = False,
) -> None:
    """Exit 1 if the rules would change any of PATHS (for CI and pre-commit)."""
    planned, failures = _dry_run(paths, root, rules, "checking")
    for path, change in planned:
        out.print(f"would change {path} [dim]({', '.join(change.rules)})[/]")
        if diff:
            _print_diff(change.diff())
    if planned:
        err.print(f"{len(planned)} file(s) would change; run `scribe run` to apply")
    raise typer.Exit(1 if planned or failures else 0)


@app.command("rules")
def rules_command(
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
            ", ".join(sorted(rule.on)),
            ", ".join(rule.paths) + (f"  (not {', '.join(rule.exclude)})" if rule.exclude else ""),
            ", ".join(step.action.name for step in rule.steps),
            str(rule.priority),
            "yes" if rule.enabled else "no",
        )
    out.print(table)


def _explain(base: Path, settings: Settings, compiled: list[CompiledRule], target: Path) -> None:
    from scribe.actions import FileContext
    from scribe.files import read_text

    rel = _targets(base, [target], Ignore(base))[0] if target.exists() else target.as_posix()
    engine = _engine(base, settings, compiled, dry_run=True)
    kind = engine.scan_event(rel).kind
    out.print(f"{rel} (as a {kind.value!r} event):")
    file = read_text(base, rel, max_bytes=settings.max_file_bytes)
    ctx = FileContext(
        path=rel,
        text=file.text,
        time=engine.scan_event(rel).time,
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


@app.command()
def schema() -> None:
    """Print the JSON Schema of the rules file (for editors)."""
    out.print_json(json.dumps(rules_schema()))


@app.command("watch")
def watch_command(
    root: Annotated[
        Path | None,
        typer.Argument(help="Repository root (default: found from the current directory)."),
    ] = None,
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
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = "info",
) -> None:
    """Watch the repository and apply the rules on every save until stopped."""
    _configure_logging(log_level)
    base, settings, compiled = _setup(
        root, rules, [root] if root else None, poll=poll, quiet_ms=quiet_ms
    )
    engine = _engine(base, settings, compiled, dry_run=False)
    ignore = _ignore(base, settings)
    closes_known = sys.platform.startswith("linux") and not settings.poll

    def handle(event: Event) -> None:
        started = time.perf_counter()
        outcome = engine.handle(event)
        if outcome.status is Status.BUSY:  # its writer's close will bring it back
            log.debug("%s is open for writing; waiting for its close", outcome.path)
            return
        _report_problems([outcome])
        if outcome.status is Status.WRITTEN and outcome.plan:
            log.info(
                "rewrote %s (%s) in %.1f ms",
                outcome.path,
                ", ".join(outcome.plan.rules),
                (time.perf_counter() - started) * 1000,
            )

    quiet = settings.quiet_ms / 1000
    scheduler = Scheduler(handle, quiet=quiet, closes_known=closes_known, workers=settings.workers)
    stop, ready = threading.Event(), threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():
            log.warning("second signal: exiting now")
            raise SystemExit(130)
        log.info("stopping (%s): finishing in-flight work", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    scheduler.start()
    watcher = threading.Thread(
        target=watch,
        args=(base, ignore, scheduler.submit, stop),
        kwargs={
            "poll": settings.poll,
            "ready": ready,
            "on_rescan": lambda: log.warning("event queue overflowed; rescanned"),
            "on_polling": lambda: scheduler.expect_no_closes(max(quiet, POLL_QUIET)),
        },
        name="scribe-watcher",
        daemon=True,
    )
    watcher.start()
    while not ready.wait(0.1):
        if not watcher.is_alive():
            raise ScribeError("the watcher failed to start")
    log.info(
        "watching %s with %d rule(s)%s", base, len(compiled), " (polling)" if settings.poll else ""
    )
    if scan_first:
        _initial_scan(base, ignore, engine, scheduler, stop)
    while not stop.wait(0.5):
        pass
    scheduler.stop(timeout=5.0)
    watcher.join(timeout=2.0)
    engine.state.close()
    log.info("stopped")


def _initial_scan(
    base: Path, ignore: Ignore, engine: Engine, scheduler: Scheduler, stop: threading.Event
) -> None:
    files = list(scan(base, ignore))
    started = time.perf_counter()
    before = scheduler.processed
    with _progress(len(files)) as progress:
        task = progress.add_task("scanning", total=len(files))
        for rel in files:
            scheduler.submit(Change(SCAN_KIND, rel, closed=True), live=False)
        while not stop.is_set() and not scheduler.wait_idle(0.1):
            progress.update(task, completed=scheduler.processed - before)
    log.info("scanned %d file(s) in %.2f s", len(files), time.perf_counter() - started)


def _ignore(root: Path, settings: Settings) -> Ignore:
    return Ignore(root, settings.ignore, gitignore=settings.gitignore)


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


def main() -> None:
    """Console entry point: Scribe's errors become exit codes, never a traceback.

    Usage errors are typer's own (exit 2, with the usage line).
    """
    try:
        app()
    except ScribeError as exc:
        err.print(Text(str(exc), style="red"), soft_wrap=True)
        sys.exit(exc.exit_code)
