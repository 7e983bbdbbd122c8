"""End to end with a real Prometheus: it scrapes a running ``scribe watch`` and sees
the rewrites Scribe made."""

from __future__ import annotations

import functools
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from live_helpers import ScribeProcess, wait_until
from prometheus_helpers import free_port, prometheus_binary, running_prometheus

RULES = """\
rules:
  - id: stamp
    on: [created, modified]
    paths: ["**/*.md"]
    do:
      - set: {field: modified, value: "{{ now('%Y-%m-%dT%H:%M:%S.%fZ') }}"}
"""


def _status(url: str) -> int | None:
    """The HTTP status of GET ``url``; None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _stamped(path: Path) -> bool:
    return path.exists() and "\nmodified: " in path.read_text(encoding="utf-8")


@pytest.mark.timeout(240)
def test_prometheus_scrapes_the_rewrites_of_scribe_watch(tmp_path: Path) -> None:
    prometheus_binary()  # skip (or fail under CI) before starting anything
    root = tmp_path / "repo"
    (root / ".scribe").mkdir(parents=True)
    (root / ".scribe" / "rules.yaml").write_text(RULES, encoding="utf-8")
    port = free_port()
    scribe = ScribeProcess(root, "--listen", f"127.0.0.1:{port}", log_path=tmp_path / "scribe.log")
    try:
        readyz = f"http://127.0.0.1:{port}/readyz"
        assert wait_until(
            lambda: scribe.proc.poll() is not None or _status(readyz) == 200, 30, interval=0.05
        ), f"/readyz did not answer 200 within 30 s (last: {_status(readyz)}):\n{scribe.log()}"
        assert scribe.proc.poll() is None, (
            f"scribe watch exited with {scribe.proc.returncode}:\n{scribe.log()}"
        )

        with running_prometheus(tmp_path, [f"127.0.0.1:{port}"]) as prometheus:
            notes = [root / f"note{n}.md" for n in range(3)]
            for n, note in enumerate(notes):
                with open(note, "w", encoding="utf-8") as file:
                    file.write(f"---\ntitle: {n}\n---\nbody\n")
            for note in notes:
                assert wait_until(functools.partial(_stamped, note), 20), (
                    f"{note.name} was not stamped:\n{note.read_text()}\n{scribe.log()}"
                )

            def counted() -> bool:
                samples = prometheus.query('scribe_rewrites_total{rule="stamp"}')
                return any(float(s["value"][1]) >= 3 for s in samples)

            assert wait_until(counted, 30, interval=0.25), (
                "Prometheus never saw 3 rewrites by rule stamp; it has "
                f"{prometheus.query('scribe_rewrites_total')}\n"
                f"Prometheus log:\n{prometheus.log()}\nscribe log:\n{scribe.log()}"
            )
            [sample] = prometheus.query('scribe_rewrites_total{rule="stamp"}')
            assert sample["metric"]["rule"] == "stamp"
            assert sample["metric"]["job"] == "scribe"
            up = prometheus.query('up{job="scribe"}')
            assert [s["value"][1] for s in up] == ["1"], f"{up}\n{prometheus.log()}"
    finally:
        scribe.close()
