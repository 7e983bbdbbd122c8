"""What a tool call that cannot be served raises: a code, a message and details.

The server turns a ``ToolFailure`` into an error result (``isError``) whose text is
JSON, so agents can branch on ``code`` and people can read ``message``. Nothing is
defaulted or guessed instead: a call that lacks what it needs fails and says what.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scribe.errors import ScribeError

INVALID_CONTEXT = "invalid_context"  # the execution context is missing or wrong
INVALID_ARGUMENT = "invalid_argument"  # a tool argument is missing or wrong
WRONG_MODE = "wrong_mode"  # a project tool in sentinel mode, or the reverse
SCOPE_VIOLATION = "scope_violation"  # a path outside what may be read or written
NOT_FOUND = "not_found"  # an unknown project, case, document or file
CONFLICT = "conflict"  # a precondition (hash, state) no longer holds
BUSY = "busy"  # a lock could not be taken within its retry budget
TIMEOUT = "timeout"  # a search or other bounded work ran out of time
UNAVAILABLE = "unavailable"  # the journal or disk cannot take the write
INTERNAL = "internal"  # a fault in Scribe itself: logged with its traceback


class ToolFailure(ScribeError):
    """A tool call refused or failed; ``details`` is JSON-ready extra context."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: Mapping[str, Any] = details

    def to_json(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}
