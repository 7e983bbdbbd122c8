"""Suite-wide setup.

Many tests start ``scribe`` as a real subprocess. Where the environment sets
``PYTHONDONTWRITEBYTECODE`` (as CI images often do), no process leaves bytecode
behind, so each of them would compile every module of the package again (about
half a second). Compiling once, before the first test, lets every later process
load it instead.
"""

from __future__ import annotations

import compileall
from pathlib import Path

import scribe


def pytest_sessionstart() -> None:
    compileall.compile_dir(Path(scribe.__file__).parent, quiet=1)
