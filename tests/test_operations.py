"""Operating a real ``scribe watch``: hot reload, health endpoints, graceful stop and
a 10,000-file ``git checkout``.

Each test starts the console script as a subprocess on a repository in tmp_path and
talks to it as an operator would: by editing its files, over HTTP on 127.0.0.1, and
with signals.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from live_helpers import SCRIBE, ScribeProcess, wait_until
from scribe.errors import ConfigError
from scribe.journal.entry import Entry, Query
from scribe.journal.sqlite import SqliteJournal
from scribe.rules.load import load_rules

STAMP_RULE = """\
  - id: stamp
    on: [created, modified]
    paths: ["**/*.md"]
    do:
      - set: {field: modified, value: "{{ now('%Y-%m-%dT%H:%M:%S.%fZ') }}"}
"""
REVIEW_RULE = """\
  - id: review
    on: [created, modified]
    paths: ["**/*.md"]
    do:
      - set: {field: reviewed, value: "pending", if_missing: true}
"""
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"

Start = Callable[..., ScribeProcess]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".scribe").mkdir(parents=True)
    (root / ".scribe" / "rules.yaml").write_text("rules:\n" + STAMP_RULE)
    return root.resolve()


@pytest.fixture
def scribe(repo: Path, tmp_path: Path) -> Iterator[Start]:
    started: list[ScribeProcess] = []

    def start(*args: str) -> ScribeProcess:
        proc = ScribeProcess(repo, *args, log_path=tmp_path / f"scribe-{len(started)}.log")
        started.append(proc)
        proc.wait_ready()
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.close()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def has(path: Path, *patterns: str) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    return all(re.search(p, text, re.MULTILINE) for p in patterns)


def entries(root: Path, *kinds: str) -> list[Entry]:
    with SqliteJournal.for_root(root) as store:
        return store.query(Query(kinds=list(kinds)))


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# -- hot reload ------------------------------------------------------------------


def test_a_valid_rules_edit_takes_effect_without_a_restart(repo: Path, scribe: Start) -> None:
    proc = scribe()
    write(repo / "before.md", "---\ntitle: a\n---\nbody\n")
    assert wait_until(lambda: has(repo / "before.md", f"^modified: {STAMP}$"), 10), proc.log()

    rules = repo / ".scribe" / "rules.yaml"
    rules.write_text("rules:\n" + STAMP_RULE + REVIEW_RULE)
    assert wait_until(lambda: bool(proc.records("rules reloaded")), 10), proc.log()
    [reloaded] = proc.records("rules reloaded")
    assert (reloaded["added"], reloaded["path"]) == (["review"], ".scribe/rules.yaml")

    write(repo / "after.md", "---\ntitle: b\n---\nbody\n")
    assert wait_until(
        lambda: has(repo / "after.md", f"^modified: {STAMP}$", "^reviewed: pending$"), 10
    ), proc.log()
    [_, reload] = entries(repo, "rules.loaded")  # the start's, then the reload's
    assert reload.payload["added"] == ["review"]
    assert reload.payload["removed"] == []
    assert reload.payload["reason"] == "reload"
    assert proc.proc.poll() is None  # the same process all along


def test_a_changed_and_a_removed_rule_are_journaled_as_such(repo: Path, scribe: Start) -> None:
    rules = repo / ".scribe" / "rules.yaml"
    rules.write_text("rules:\n" + STAMP_RULE + REVIEW_RULE)
    proc = scribe()
    rules.write_text("rules:\n" + STAMP_RULE.replace("%S.%fZ", "%SZ"))
    assert wait_until(lambda: len(entries(repo, "rules.loaded")) == 2, 10), proc.log()
    reload = entries(repo, "rules.loaded")[-1]
    assert (reload.payload["added"], reload.payload["removed"], reload.payload["changed"]) == (
        [],
        ["review"],
        ["stamp"],
    )
    write(repo / "n.md", "---\ntitle: n\n---\n")
    assert wait_until(
        lambda: has(repo / "n.md", r"^modified: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"), 10
    ), proc.log()
    assert not has(repo / "n.md", "reviewed")


def test_an_invalid_rules_edit_is_refused_with_its_location_and_the_old_rules_run_on(
    repo: Path, scribe: Start
) -> None:
    proc = scribe()
    rules = repo / ".scribe" / "rules.yaml"
    rules.write_text("rules:\n" + STAMP_RULE.replace("- set:", "- sett:"))
    with pytest.raises(ConfigError) as at_start:  # what a start would have said
        load_rules(rules, display=".scribe/rules.yaml")
    assert wait_until(lambda: bool(entries(repo, "rules.rejected")), 10), proc.log()

    [refused] = entries(repo, "rules.rejected")
    assert refused.payload["problems"] == [str(p) for p in at_start.value.problems]
    assert ".scribe/rules.yaml:6:" in refused.payload["problems"][0]
    assert "did you mean 'set'?" in refused.payload["problems"][0]
    assert wait_until(lambda: str(at_start.value.problems[0]) in proc.log(), 5), proc.log()

    write(repo / "still.md", "---\ntitle: s\n---\n")  # the stamp rule still runs
    assert wait_until(lambda: has(repo / "still.md", f"^modified: {STAMP}$"), 10), proc.log()
    assert len(entries(repo, "rules.loaded")) == 1  # no reload happened

    rules.write_text("rules:\n" + STAMP_RULE + REVIEW_RULE)  # fixed: taken at once
    assert wait_until(lambda: len(entries(repo, "rules.loaded")) == 2, 10), proc.log()


def test_a_settings_edit_applies_what_it_can_and_says_what_waits_for_a_restart(
    repo: Path, scribe: Start
) -> None:
    proc = scribe()
    (repo / "scribe.yaml").write_text("max_file_bytes: 64\nworkers: 7\n")
    assert wait_until(lambda: bool(entries(repo, "config.loaded")), 10), proc.log()
    [loaded] = entries(repo, "config.loaded")
    assert loaded.payload["applied"] == {"max_file_bytes": 64}
    assert loaded.payload["at_restart"] == ["workers"]
    assert wait_until(lambda: "workers take(s) effect at the next start" in proc.log(), 5)

    write(repo / "big.md", "---\ntitle: big\n---\n" + "x" * 200 + "\n")
    assert wait_until(lambda: "skipped big.md" in proc.log(), 10), proc.log()
    assert not has(repo / "big.md", "modified")

    (repo / "scribe.yaml").write_text("max_file_bytes: lots\n")
    assert wait_until(lambda: bool(entries(repo, "config.rejected")), 10), proc.log()
    [refused] = entries(repo, "config.rejected")
    assert refused.payload["problems"][0].startswith("scribe.yaml:1:17: max_file_bytes:")


# -- health endpoints ---------------------------------------------------------------


def test_health_endpoints_of_a_running_watch(repo: Path, scribe: Start, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_file = tmp_path / "logs" / "scribe.jsonl"
    os.environ["SCRIBE_STATUS_TOKEN"] = "s3cret"
    try:
        proc = scribe("--listen", f"127.0.0.1:{port}", "--log-file", str(log_file))
    finally:
        del os.environ["SCRIBE_STATUS_TOKEN"]
    assert get(f"{base}/healthz") == (200, "ok\n")
    assert wait_until(lambda: get(f"{base}/readyz")[0] == 200, 10), get(f"{base}/readyz")
    assert get(f"{base}/status")[0] == 401  # the token protects it
    code, body = get(f"{base}/status", token="s3cret")
    assert code == 200
    status: dict[str, Any] = json.loads(body)
    assert status["rules"] == [{"id": "stamp", "enabled": True, "priority": 0, "breaker": "closed"}]
    assert status["last_event_at"] is None
    assert status["queue_depth"] == 0

    write(repo / "a.md", "---\ntitle: a\n---\n")
    assert wait_until(lambda: has(repo / "a.md", "modified"), 10), proc.log()

    def logged() -> list[dict[str, Any]]:
        lines = log_file.read_text().splitlines() if log_file.exists() else []
        return [json.loads(line) for line in lines]

    # The file is visible before Scribe has counted and logged its rewrite; the line
    # comes last, so once it is in the log file the metrics and status hold it too.
    assert wait_until(lambda: any(r["event"] == "rewrote" for r in logged()), 5), proc.log()
    status = json.loads(get(f"{base}/status", token="s3cret")[1])
    assert status["last_event_at"] is not None
    code, text = get(f"{base}/metrics")
    assert code == 200
    assert re.search(r'^scribe_rewrites_total\{rule="stamp"\} [1-9]', text, re.MULTILINE), text
    assert re.search(r"^scribe_event_to_write_seconds_count [1-9]", text, re.MULTILINE), text
    [rewrote] = [r for r in logged() if r["event"] == "rewrote"]
    assert (rewrote["path"], rewrote["rule"], rewrote["result"]) == ("a.md", "stamp", "written")
    assert isinstance(rewrote["seq"], int)
    assert rewrote["duration_ms"] > 0


def test_an_explicit_listen_address_that_is_taken_is_an_error(repo: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [SCRIBE, "watch", str(repo), "--listen", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


# -- stopping -----------------------------------------------------------------------------


def storm(root: Path, count: int, body: str) -> list[Path]:
    paths = [root / "notes" / f"{i // 500}" / f"n{i}.md" for i in range(count)]
    for path in paths:
        write(path, f"---\ntitle: t\n---\n{body}\n")
    return paths


def intact(path: Path, body: str) -> bool:
    """As the user left it, or that plus a complete stamp: never anything torn."""
    text = path.read_text(encoding="utf-8")
    return text == f"---\ntitle: t\n---\n{body}\n" or (
        re.fullmatch(rf"---\ntitle: t\nmodified: {STAMP}\n---\n{body}\n", text) is not None
    )


def test_sigterm_with_work_queued_stops_cleanly_within_five_seconds(
    repo: Path, scribe: Start
) -> None:
    proc = scribe()
    paths = storm(repo, 3000, "queued")
    assert wait_until(lambda: bool(proc.records("rewrote")), 10), proc.log()
    signalled = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    code = proc.proc.wait(timeout=15)
    took = time.monotonic() - signalled
    assert code == 0, proc.log()
    assert took < 5.0 + 1.0, f"took {took:.2f} s to stop"  # 1 s for interpreter start-up noise
    assert all(intact(path, "queued") for path in paths)
    [stopped] = proc.records("stopped")
    assert stopped["duration_ms"] < 5000
    if stopped["left"]:  # journaled for the next start
        [pending] = entries(repo, "work.pending")
        assert len(pending.payload["paths"]) == stopped["left"]
    assert entries(repo, "engine.stopped")
    verify = subprocess.run([SCRIBE, "verify", "--root", str(repo)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # What was left is finished by the next start's catch-up.
    again = scribe()
    assert wait_until(lambda: all(has(p, "^modified:") for p in paths), 60), again.log()[-2000:]


def test_a_second_signal_exits_at_once_and_tears_nothing(repo: Path, scribe: Start) -> None:
    proc = scribe()
    paths = storm(repo, 2000, "twice")
    assert wait_until(lambda: bool(proc.records("rewrote")), 10), proc.log()
    proc.proc.send_signal(signal.SIGTERM)
    # Signals that arrive together are delivered once: the second must come after
    # the first was taken.
    assert wait_until(lambda: "stopping (SIGTERM)" in proc.log(), 5), proc.log()
    proc.proc.send_signal(signal.SIGTERM)
    code = proc.proc.wait(timeout=10)
    assert code == 128 + signal.SIGTERM, proc.log()
    assert "second SIGTERM, exiting at once" in proc.log()
    assert all(intact(path, "twice") for path in paths)
    verify = subprocess.run([SCRIBE, "verify", "--root", str(repo)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


# -- a git checkout of 10,000 files --------------------------------------------------------


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.timeout(300)
def test_a_git_checkout_of_ten_thousand_files_ends_with_every_file_right(
    repo: Path, scribe: Start
) -> None:
    count = 10_000
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitignore").write_text(".scribe/\n")
    paths = storm(repo, count, "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main")
    git(repo, "checkout", "-q", "-b", "other")
    for path in paths:
        write(path, "---\ntitle: t\n---\nother\n")
    git(repo, "commit", "-q", "-am", "other")
    git(repo, "checkout", "-q", "main")

    proc = scribe()
    git(repo, "checkout", "-q", "other")  # 10,000 files rewritten under the watcher
    expected = re.compile(rf"---\ntitle: t\nmodified: {STAMP}\n---\nother\n")

    def right(path: Path) -> bool:
        return expected.fullmatch(path.read_text(encoding="utf-8")) is not None

    assert wait_until(lambda: all(right(p) for p in paths), 120, interval=0.5), (
        f"{sum(not right(p) for p in paths)} files not right\n{proc.log()[-3000:]}"
    )
    assert "Traceback" not in proc.log()
    assert proc.terminate(timeout=10) == 0
