"""Helpers for the sandbox tests: a real bwrap (installed from Debian's package when
missing), small executable scripts, and ways to see which processes are still alive.

bwrap is required, not optional: without it half of the escape suite would prove
nothing, so a machine where it cannot be had fails the tests with the reason.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from apt_helpers import apt_install, can_install

#: A script that prints its arguments (argv[0] included) and working directory as JSON.
ARGV_PRINTER = """
import json, os, sys
print(json.dumps({"argv": sys.argv, "cwd": os.getcwd()}))
"""


@functools.cache
def bwrap_binary() -> str:
    """bwrap's path, installed with apt-get if need be (once a session)."""
    found = shutil.which("bwrap")
    if found:
        return found
    if not can_install():
        pytest.fail("bwrap is not installed and cannot be (installing needs root and apt-get)")
    try:
        status, output = apt_install("bubblewrap")
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"apt-get timed out after {exc.timeout} s while installing bubblewrap")
    found = shutil.which("bwrap")
    if not found:
        pytest.fail(f"apt-get install bubblewrap failed (exit {status}):\n{output[-3000:]}")
    return found


def python_script(path: Path, body: str) -> Path:
    """An executable Python script at ``path`` run by the interpreter of the tests."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n{body}", encoding="utf-8")
    path.chmod(0o755)
    return path


def shell_script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}", encoding="utf-8")
    path.chmod(0o755)
    return path


def marker() -> str:
    """Digits no other process has on its command line: ``sleep 100.<marker>`` is a
    sleep that can be found again (from outside a pid namespace too)."""
    return str(uuid.uuid4().int)[:12]


def processes_with(text: str) -> list[int]:
    """Live processes (not zombies) whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile
        if text.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def pids_hierarchy() -> Path:
    """The directory of this process's cgroup in the pids hierarchy (v1 or v2)."""
    own = Path("/proc/self/cgroup").read_text().splitlines()
    for line in Path("/proc/self/mounts").read_text().splitlines():
        where, fstype, options = line.split()[1:4]
        for hierarchy, names, rel in (entry.split(":", 2) for entry in own):
            v1 = fstype == "cgroup" and "pids" in options.split(",") and "pids" in names.split(",")
            v2 = fstype == "cgroup2" and hierarchy == "0" and (Path(where) / "pids.max").exists()
            if v1 or v2:
                return Path(where + rel.rstrip("/"))
    pytest.fail("no pids cgroup hierarchy on this machine: the process count cannot be bounded")


def leftover_cgroups() -> list[str]:
    """Cgroups the sandbox made for this process and did not remove."""
    return sorted(p.name for p in pids_hierarchy().glob(f"scribe-{os.getpid()}-*"))
