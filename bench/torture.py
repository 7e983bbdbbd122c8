"""Crash torture: SIGKILL ``scribe watch`` hundreds of times while a user keeps saving.

The harness lives in ``tests/torture_helpers.py`` and is shared with the CI-sized
``tests/test_torture.py``; this is the long run. It prints a table and writes
``bench/results/torture.json``. Run ``.venv/bin/python bench/torture.py [--kills N]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))  # the harness shared with the tests

from engine import machine  # noqa: E402
from torture_helpers import Config, Report, median_ms, torture  # noqa: E402

DEFAULT_OUT = BENCH_DIR / "results" / "torture.json"


def rows(report: Report) -> list[tuple[str, str, str, bool | None]]:
    """(metric, value, target, passed); passed is None for information."""
    cfg = report.config
    ready = median_ms(report.ready_s)
    info: list[tuple[str, str, str, bool | None]] = [
        ("kills (SIGKILL)", f"{report.kills:,}", f"{cfg.kills:,}", report.kills == cfg.kills),
        ("starts", f"{len(report.ready_s):,}", "info", None),
        ("  median start to 'watching'", f"{ready:.0f} ms" if ready else "—", "info", None),
        ("saves", f"{report.saves:,}", "info", None),
        ("  while Scribe was down", f"{report.saves_while_down:,}", "info", None),
        ("journal entries", f"{report.entries:,}", "info", None),
        ("writes journaled (file.written)", f"{report.writes_journaled:,}", "info", None),
        ("  closed at start-up (recovered)", f"{report.recovered:,}", "info", None),
    ]
    info += [
        (f"  work.done {status}", f"{n:,}", "info", None) for status, n in report.statuses.items()
    ]
    checks: list[tuple[str, str, str, bool | None]] = [
        (f"{name}", f"{count:,}", "0", count == 0) for name, count in report.problems().items()
    ]
    return info + checks


def render(report: Report, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("metric", "value", "target", "pass"):
        table.add_column(column, justify="left" if column in ("metric", "target") else "right")
    for metric, value, target, passed in rows(report):
        mark = "—" if passed is None else "[green]pass[/]" if passed else "[red]FAIL[/]"
        table.add_row(metric, value, target, mark)
    return table


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every ``finally``: watchers are stopped


def run(cfg: Config, out: Path, *, keep: bool) -> Report:
    console = Console(stderr=True)
    scratch = Path(tempfile.mkdtemp(prefix="scribe-torture-", dir="/tmp"))
    every = max(1, cfg.kills // 20)

    def progress(report: Report) -> None:
        if report.kills % every == 0:
            console.print(
                f"{report.kills}/{cfg.kills} kills, {report.saves:,} saves, "
                f"{report.elapsed_s:.0f} s"
            )

    console.print(f"torture: {cfg.kills} kills over {cfg.files} files in {scratch}")
    report = torture(cfg, scratch, progress)
    title = f"scribe crash torture ({report.kills} kills, {report.elapsed_s:.0f} s)"
    Console(width=max(Console().width, 100)).print(render(report, title))
    if not report.ok():
        console.print(f"[red]{report.summary()}[/]")
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_s": report.elapsed_s,
        "machine": machine(),
        "config": asdict(cfg),
        "all_pass": report.ok(),
        "summary": [
            {"metric": m.strip(), "value": v, "target": t, "pass": p} for m, v, t, p in rows(report)
        ],
        "report": report.to_json(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {out}")
    if keep or not report.ok():
        console.print(f"kept {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SIGKILL `scribe watch` while a user saves.")
    parser.add_argument("--kills", type=int, default=500, help="SIGKILLs (default 500)")
    parser.add_argument("--files", type=int, default=30, help="files the user saves")
    parser.add_argument("--seed", type=int, default=Config.seed, help="random seed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory in /tmp")
    args = parser.parse_args(argv)
    cfg = replace(Config(), kills=args.kills, files=args.files, seed=args.seed)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = run(cfg, args.out, keep=args.keep)
    except KeyboardInterrupt:
        print("interrupted; watchers stopped", file=sys.stderr)
        return 130
    return 0 if report.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
