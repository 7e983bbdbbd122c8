"""Reading text that round-trips byte for byte, and writing it back safely.

A file is decoded once into ``TextFile``; ``encode`` turns new text back into bytes
with the same BOM and encoding. ``write_cas`` replaces a file only if it still holds
the content the plan was made from (invariant 1 of the design).
"""

from __future__ import annotations

import codecs
import ctypes
import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from scribe.errors import ContentChanged, Skipped

DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024
TEMP_PREFIX = ".scribe-"
TEMP_SUFFIX = ".tmp"

# BOMs in the order they must be tested (UTF-32 LE starts with the UTF-16 LE BOM).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class TextFile:
    """A decoded text file and everything needed to write it back unchanged."""

    rel: str  # posix path relative to the root
    path: Path  # absolute path of the real file (symlinks inside the root resolved)
    raw: bytes
    text: str  # decoded, without the BOM
    encoding: str
    bom: bytes
    sha256: str
    mode: int
    mtime_ns: int

    def encode(self, text: str) -> bytes:
        """Bytes for ``text`` in this file's encoding, with its BOM."""
        return self.bom + text.encode(self.encoding)


def decode(raw: bytes) -> tuple[str, str, bytes]:
    """Return ``(text, encoding, bom)`` or raise ``Skipped`` for binary or invalid text."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom) :].decode(encoding), encoding, bom
            except UnicodeDecodeError as exc:
                raise Skipped(f"not valid {encoding} text (byte {exc.start})") from None
    if b"\0" in raw[:8192]:
        raise Skipped("binary file (contains NUL bytes)")
    try:
        return raw.decode("utf-8"), "utf-8", b""
    except UnicodeDecodeError as exc:
        raise Skipped(f"not valid UTF-8 text (byte {exc.start})") from None


def resolve_inside(root: Path, rel: str) -> Path:
    """The real path of ``rel`` under ``root``; ``Skipped`` if it leads outside it."""
    candidate = root / rel
    real = Path(os.path.realpath(candidate))
    if real != root and root not in real.parents:
        raise Skipped(f"symlink leads outside the repository (to {real})")
    return real


def read_text(root: Path, rel: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> TextFile:
    """Read and decode ``rel``; raise ``Skipped`` with a reason for anything not editable.

    ``root`` must already be resolved (``Path.resolve()``). Raises FileNotFoundError
    when the file is gone.
    """
    real = resolve_inside(root, rel)
    fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Skipped("not a regular file")
        if st.st_size > max_bytes:
            raise Skipped(f"larger than max_file_bytes ({st.st_size} > {max_bytes} bytes)")
        raw = _read_all(fd, st.st_size)
    finally:
        os.close(fd)
    if len(raw) > max_bytes:
        raise Skipped(f"larger than max_file_bytes ({len(raw)} > {max_bytes} bytes)")
    text, encoding, bom = decode(raw)
    return TextFile(
        rel=rel,
        path=real,
        raw=raw,
        text=text,
        encoding=encoding,
        bom=bom,
        sha256=sha256(raw),
        mode=stat.S_IMODE(st.st_mode),
        mtime_ns=st.st_mtime_ns,
    )


def _read_all(fd: int, hint: int) -> bytes:
    chunks = []
    size = max(hint, 1) + 1  # one more byte tells us whether it grew meanwhile
    while chunk := os.read(fd, size):
        chunks.append(chunk)
        size = 1 << 16
    return b"".join(chunks)


def _read_path(path: str | Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux ``renameat2``); False where unsupported."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), b)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_cas(file: TextFile, data: bytes) -> None:
    """Replace ``file.path`` with ``data`` only if it still holds ``file.raw``.

    Temp file in the same directory, fsync, atomic swap, directory fsync; the mode
    is kept. On Linux the swap is a ``RENAME_EXCHANGE``, so the content displaced
    is checked *after* the swap and given back if someone wrote in the meantime:
    no window exists in which a concurrent save can be lost. Raises
    ``ContentChanged`` when the file no longer holds what the plan was made from.
    """
    target = file.path
    current = _read_path(target)
    if current is None or sha256(current) != file.sha256:
        raise ContentChanged(file.rel)
    tmp = target.with_name(f"{TEMP_PREFIX}{target.name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, file.mode)
    try:
        try:
            os.fchmod(fd, file.mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            swapped = _exchange(str(tmp), str(target))
        except FileNotFoundError:
            raise ContentChanged(file.rel) from None  # deleted since we read it
        if swapped:
            _settle_exchange(file, data, tmp)
        else:
            if sha256(_read_path(target) or b"") != file.sha256:
                raise ContentChanged(file.rel)
            os.replace(tmp, target)
    finally:
        # Once swapped, tmp holds the displaced (planned-from) content; drop it.
        tmp.unlink(missing_ok=True)
    _fsync_dir(target.parent)


def _settle_exchange(file: TextFile, ours: bytes, tmp: Path) -> None:
    """After a swap, make sure the displaced content was the planned-from content.

    If it was not, a user saved between our last check and the swap: swap back so
    their newest bytes stand at the target, then report the conflict.
    """
    displaced = _read_path(tmp)
    if displaced is not None and sha256(displaced) == file.sha256:
        return
    _exchange(str(tmp), str(file.path))  # target: the user's save; tmp: ours, or newer
    leftover = _read_path(tmp)
    if leftover is not None and leftover != ours:
        # The user saved again over our bytes before we swapped back: that is newest.
        _exchange(str(tmp), str(file.path))
    raise ContentChanged(file.rel)
