"""The NATS bus end to end: a real nats-server, ``scribe watch --no-workers``
publishing, real ``scribe worker`` processes handling, a real repository."""

from __future__ import annotations

import hashlib
import http.client
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import journaled, make_repo, scribe
from live_helpers import ScribeProcess, wait_until
from nats_helpers import (
    NatsServer,
    WorkerProcess,
    bus,
    nats_server,
    pending_messages,
    stored_messages,
)
from scribe.journal.entry import FILE_WRITTEN, QUARANTINED, WORK_DONE

__all__ = ["bus", "nats_server"]  # fixtures, used by name

RULES = """\
rules:
  - id: mark
    on: [created, modified]
    paths: ["**/*.md"]
    do:
      - set: {field: checked, value: "yes"}
"""


def edit(n: int, i: int) -> str:
    """The n-th edit of file i, as a user saves it."""
    return f"---\nn: {n}\n---\nbody of file {i}, edit {n}\n"


def marked(n: int, i: int) -> str:
    """The n-th edit of file i once the rule has run on it."""
    return f"---\nn: {n}\nchecked: 'yes'\n---\nbody of file {i}, edit {n}\n"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Cluster:
    """A watcher publishing and workers consuming, on one repository."""

    def __init__(self, root: Path, logs: Path, url: str) -> None:
        self.root, self.logs, self.url = root, logs, url
        self.processes: list[ScribeProcess] = []

    def watcher(self, *args: str) -> ScribeProcess:
        process = ScribeProcess(
            self.root,
            "--bus",
            self.url,
            "--no-workers",
            "--listen",
            "off",
            *args,
            log_path=self.logs / f"watch-{len(self.processes)}.log",
        )
        self.processes.append(process)
        process.wait_ready()
        return process

    def worker(self) -> WorkerProcess:
        process = WorkerProcess(
            self.root, self.url, log_path=self.logs / f"worker-{len(self.processes)}.log"
        )
        self.processes.append(process)
        process.wait_ready()
        return process

    def close(self) -> None:
        for process in self.processes:
            process.close()


@pytest.fixture
def cluster(tmp_path: Path, bus: NatsServer) -> Iterator[Cluster]:
    root = make_repo(tmp_path / "repo", RULES, {"bus_ack_wait": 2})
    logs = tmp_path / "logs"
    logs.mkdir()
    made = Cluster(root, logs, bus.url)
    try:
        yield made
    finally:
        made.close()


def settled(root: Path, expected: dict[str, str], timeout: float = 60) -> bool:
    def done() -> bool:
        return all((root / rel).read_text() == text for rel, text in expected.items())

    return wait_until(done, timeout, interval=0.1)


def writes_by_path(root: Path) -> dict[str, list[tuple[str | None, str | None]]]:
    """Each file's writes that were made (their ``work.done`` says written), oldest
    first, as (before, after) hashes. Every write must have been closed."""
    done = {e.ref: e.payload["status"] for e in journaled(root, WORK_DONE)}
    found: dict[str, list[tuple[str | None, str | None]]] = defaultdict(list)
    for entry in journaled(root, FILE_WRITTEN):
        assert entry.path is not None
        assert entry.seq in done, f"{entry.path}: write {entry.seq} never closed"
        if done[entry.seq] == "written":  # else a save came in between: re-planned
            found[entry.path].append((entry.before_hash, entry.after_hash))
    return found


def test_three_workers_handle_5000_edits_with_every_file_right(
    cluster: Cluster, bus: NatsServer
) -> None:
    files, rounds = 500, 10
    root = cluster.root
    cluster.watcher()
    workers = [cluster.worker() for _ in range(3)]
    for n in range(rounds):
        for i in range(files):
            (root / f"f{i:03}.md").write_text(edit(n, i))
    expected = {f"f{i:03}.md": marked(rounds - 1, i) for i in range(files)}
    assert settled(root, expected), "files not all handled"
    assert wait_until(lambda: pending_messages(bus.url) == 0, 30, interval=0.2)

    writes = writes_by_path(root)
    for i in range(files):
        rel = f"f{i:03}.md"
        made = writes[rel]
        # Each write starts from one of the user's saves and ends at its marked form;
        # no save is rewritten twice (nothing duplicated), the last one is (nothing lost).
        assert 1 <= len(made) <= rounds, (rel, made)
        befores = [before for before, _ in made]
        assert len(set(befores)) == len(befores), (rel, made)
        saves = {sha(edit(n, i)): sha(marked(n, i)) for n in range(rounds)}
        assert all(before is not None and saves.get(before) == after for before, after in made), (
            rel,
            made,
        )
        assert made[-1] == (sha(edit(rounds - 1, i)), sha(marked(rounds - 1, i)))
    # Two workers never rewrite one file at once: each write of a file is journaled
    # after the one before it was closed (its work.done), whoever made them.
    closed_at = {e.ref: e.seq for e in journaled(root, WORK_DONE)}
    last: dict[str, int] = {}
    for intent in journaled(root, FILE_WRITTEN):
        assert intent.path is not None
        assert intent.seq > last.get(intent.path, 0), intent.path
        last[intent.path] = closed_at[intent.seq]
    handled_by = {p.proc.pid for p in workers}
    assert len({e.payload["pid"] for e in journaled(root, FILE_WRITTEN)} & handled_by) >= 2


def test_a_killed_worker_loses_nothing(cluster: Cluster, bus: NatsServer) -> None:
    root = cluster.root
    cluster.watcher()
    doomed = cluster.worker()
    for i in range(200):
        (root / f"k{i:03}.md").write_text(edit(0, i))
    assert wait_until(lambda: bool(doomed.records("rewrote")), 30)
    doomed.kill()  # mid-load: what it held unacknowledged is delivered again
    cluster.worker()
    expected = {f"k{i:03}.md": marked(0, i) for i in range(200)}
    assert settled(root, expected)
    assert wait_until(lambda: pending_messages(bus.url) == 0, 30, interval=0.2)
    done = {e.ref: e.payload["status"] for e in journaled(root, WORK_DONE)}
    swaps: dict[str, int] = defaultdict(int)
    cut: dict[str, list[int]] = defaultdict(list)
    for intent in journaled(root, FILE_WRITTEN):
        assert intent.path is not None
        if intent.seq in done:
            swaps[intent.path] += done[intent.seq] == "written"
        else:  # interrupted by the kill, before or after its swap
            cut[intent.path].append(intent.payload["pid"])
    for rel in expected:
        # One effect per file: a write completed once, or cut short by the kill and
        # then found done (the echo) or made again by the other worker.
        assert swaps[rel] <= 1, rel
        assert cut[rel] in ([], [doomed.proc.pid]), rel
        assert swaps[rel] + len(cut[rel]) >= 1, rel
    # What the killed worker had in hand: at most one event per shard.
    assert sum(len(pids) for pids in cut.values()) <= 16


def test_a_restarted_server_loses_nothing_acknowledged(cluster: Cluster, bus: NatsServer) -> None:
    root = cluster.root
    cluster.watcher()
    for i in range(50):  # no worker yet: the events wait in the stream
        (root / f"r{i:02}.md").write_text(edit(0, i))
    assert wait_until(lambda: stored_messages(bus.url) >= 50, 20, interval=0.1)
    bus.restart()
    cluster.worker()
    assert settled(root, {f"r{i:02}.md": marked(0, i) for i in range(50)})
    bus.restart()  # under a running watcher and worker: both reconnect
    for i in range(50):
        (root / f"r{i:02}.md").write_text(edit(1, i))
    expected = {f"r{i:02}.md": marked(1, i) for i in range(50)}
    assert settled(root, expected)
    writes = writes_by_path(root)
    assert all(len(writes[rel]) == 2 for rel in expected)


def test_a_scan_is_published_and_handled(cluster: Cluster) -> None:
    root = cluster.root
    for i in range(20):
        (root / f"s{i:02}.md").write_text(edit(0, i))
    cluster.worker()
    cluster.watcher("--scan")
    assert settled(root, {f"s{i:02}.md": marked(0, i) for i in range(20)})


def test_an_event_that_keeps_failing_is_quarantined(cluster: Cluster, bus: NatsServer) -> None:
    import asyncio

    import nats

    cluster.worker()

    async def poison() -> None:
        client = await nats.connect(bus.url)
        await client.jetstream().publish("scribe.events.3", b"not an event")
        await client.close()

    asyncio.run(poison())
    assert wait_until(lambda: bool(journaled(cluster.root, QUARANTINED)), 30)
    [entry] = journaled(cluster.root, QUARANTINED)
    assert "after 5 deliveries" in entry.message
    assert "not a Scribe event" in entry.message
    assert wait_until(lambda: pending_messages(bus.url) == 0, 10, interval=0.2)
    listed = scribe("quarantine", "list", "--json", "--root", str(cluster.root), cwd=cluster.root)
    assert '"rule": "bus"' in listed.stdout
    cluster.worker()  # a start with the entry in the journal goes on (and releases it)


def test_a_worker_stops_cleanly_on_sigterm(cluster: Cluster) -> None:
    worker = cluster.worker()
    assert worker.terminate(timeout=10) == 0
    assert worker.records("stopped")


def test_clear_errors(tmp_path: Path, nats_server: NatsServer) -> None:
    root = make_repo(tmp_path / "repo", RULES)
    down = scribe("worker", str(root), "--bus", "nats://127.0.0.1:1", cwd=root)
    assert down.returncode != 0
    assert "Traceback" not in down.stderr
    assert "nats://127.0.0.1:1 is not answering" in down.stderr
    bad = scribe("watch", str(root), "--bus", "http://x", "--no-workers", cwd=root)
    assert bad.returncode == 2
    assert "not a bus URL" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = scribe(
        "worker", str(root), "--bus", nats_server.url, cwd=root, env={"SCRIBE_BUS_CA": "/nope"}
    )
    assert missing.returncode == 2
    assert "bus_ca: /nope is not a file" in missing.stderr
    off = scribe(
        "worker", str(root), "--bus", nats_server.url, cwd=root, env={"SCRIBE_JOURNAL": "false"}
    )
    assert off.returncode == 1
    assert "handling events from the bus needs the journal" in off.stderr
    plain = NatsServer(tmp_path / "plain", jetstream=False)
    try:
        disabled = scribe("worker", str(root), "--bus", plain.url, cwd=root)
    finally:
        plain.stop()
    assert disabled.returncode == 1
    assert f"the NATS server at {plain.url} has JetStream disabled" in disabled.stderr


def test_a_worker_answers_probes_and_says_when_the_bus_is_down(
    tmp_path: Path, bus: NatsServer
) -> None:
    root = make_repo(tmp_path / "repo", RULES, {"bus_ack_wait": 2})
    worker = WorkerProcess(root, bus.url, "--listen", "127.0.0.1:0", log_path=tmp_path / "w.log")
    try:
        worker.wait_ready()
        host, port = worker.records("working")[0]["listen"].rsplit(":", 1)

        def get(path: str) -> tuple[int, str]:
            connection = http.client.HTTPConnection(host, int(port), timeout=10)
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                return response.status, response.read().decode()
            finally:
                connection.close()

        assert get("/healthz")[0] == 200
        assert get("/readyz")[0] == 200
        status = json.loads(get("/status")[1])
        assert (status["role"], status["bus"], status["ready"]) == ("worker", bus.url, True)
        assert "scribe_" in get("/metrics")[1]
        bus.stop()
        assert wait_until(lambda: get("/readyz")[0] == 503, 20, interval=0.2)
        assert "not connected to the bus" in get("/readyz")[1]
        assert get("/healthz")[0] == 200  # alive: it reconnects by itself
    finally:
        worker.close()
