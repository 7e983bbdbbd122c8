"""Scribe keeps plain-text repositories tidy and accountable.

The public surface is pinned by ``__all__`` (and a test); everything else is private.
"""

from scribe.errors import ConfigError, ContentChanged, ScribeError, Skipped
from scribe.events import Event, EventKind

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ContentChanged",
    "Event",
    "EventKind",
    "ScribeError",
    "Skipped",
    "__version__",
]
