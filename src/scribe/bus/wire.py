"""What travels on the bus: subjects, the shard of a path, and events as JSON.

A move travels on the shard of its destination. The destination is the only file
its handling reads or rewrites; for the source it only forgets what Scribe knew and
journals that the path is gone, which touches no file. So the file a move writes is
always serialised with every other event about that file, whatever the source's
shard is doing.
"""

from __future__ import annotations

import json
import zlib
from datetime import datetime
from typing import Any

from scribe.events import Event, EventKind

STREAM = "SCRIBE_EVENTS"
SUBJECT_PREFIX = "scribe.events"


def shard_of(path: str, shards: int) -> int:
    """The shard of ``path``: CRC-32 of its UTF-8 bytes modulo ``shards``, the same in
    every process and Python version (``hash()`` is salted per process)."""
    return zlib.crc32(path.encode("utf-8", "surrogatepass")) % shards


def subject(shard: int) -> str:
    return f"{SUBJECT_PREFIX}.{shard}"


def durable(shard: int) -> str:
    """The durable consumer of one shard, shared by every worker."""
    return f"scribe-shard-{shard}"


def encode(event: Event) -> bytes:
    document: dict[str, Any] = {
        "id": event.id,
        "kind": event.kind.value,
        "path": event.path,
        "source": event.source,
    }
    if event.dest is not None:
        document["dest"] = event.dest
    if event.time is not None:
        document["time"] = event.time.isoformat()
    if event.kind is EventKind.CUSTOM:
        document.update(name=event.name, data=dict(event.data), depth=event.depth)
    return json.dumps(document, separators=(",", ":")).encode("utf-8", "surrogatepass")


def decode(data: bytes) -> Event:
    """The event in a message; ``ValueError`` for anything else."""
    try:
        document = json.loads(data)
        time = document.get("time")
        return Event(
            EventKind(document["kind"]),
            str(document["path"]),
            dest=document.get("dest"),
            time=datetime.fromisoformat(time) if time else None,
            source=str(document.get("source", "watcher")),
            id=str(document["id"]),
            name=document.get("name"),
            data=dict(document.get("data") or {}),
            depth=int(document.get("depth", 0)),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a Scribe event ({exc})") from None
