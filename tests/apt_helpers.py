"""Installing a Debian package a test needs (a server, a sandbox), with apt-get.

The test helpers that need a program call ``apt_install`` when it is missing and
then decide by whether the program is there: dpkg may report an error (a service
that cannot start without an init system) although the binary is in place.
"""

from __future__ import annotations

import os
import shutil
import subprocess

# Waits for another apt or dpkg to finish instead of failing at once on its lock.
APT_OPTIONS = ["-o", "DPkg::Lock::Timeout=120"]


def can_install() -> bool:
    """Whether this process may install packages (root, with apt-get)."""
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def _apt_get(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", *APT_OPTIONS, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def apt_install(package: str) -> tuple[int, str]:
    """Install ``package`` (updating the package lists first if they do not know it):
    apt-get's exit status and output. Raises ``subprocess.TimeoutExpired``."""
    install = ["install", "-y", "--no-install-recommends", package]
    result = _apt_get(install)
    output = result.stdout + result.stderr
    if "Unable to locate package" in output or "no installation candidate" in output:
        update = _apt_get(["update"])
        result = _apt_get(install)
        output = update.stdout + update.stderr + result.stdout + result.stderr
    return result.returncode, output
