"""Reading text that round-trips byte for byte, and writing it back safely.

A file is decoded once into ``TextFile``; ``encode`` turns new text back into bytes
with the same BOM and encoding. ``write_cas`` replaces a file only if it still holds
the content the plan was made from (invariant 1 of the design).
"""

from __future__ import annotations

import codecs
import ctypes
import errno
import fcntl
import hashlib
import os
import signal
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from scribe.errors import ContentChanged, FileBusy, OutsideRoot, Skipped

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


def is_temp_name(name: str) -> bool:
    """True for the names ``write_cas`` gives its temp files."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


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
        raise OutsideRoot(f"symlink leads outside the repository (to {real})")
    return real


def _plain_path(root: Path, rel: str) -> str | None:
    """``root/rel`` when no directory on the way down from ``root`` is a symlink.

    The common case costs one ``lstat`` per directory below the root instead of the
    full ``realpath`` walk from ``/`` (syscalls dominate a scan); None sends the
    caller to ``resolve_inside``.
    """
    parts = rel.split("/")
    if "" in parts or "." in parts or ".." in parts:
        return None
    current = str(root)
    for part in parts[:-1]:
        current = os.path.join(current, part)
        if stat.S_ISLNK(os.lstat(current).st_mode):
            return None
    return os.path.join(current, parts[-1])


def _open_inside(root: Path, rel: str, flags: int) -> tuple[int, Path]:
    """Open ``rel`` without leaving ``root``: its descriptor and its real path."""
    plain = _plain_path(root, rel)
    if plain is not None:
        try:
            return os.open(plain, flags | os.O_NOFOLLOW), Path(plain)
        except OSError as exc:
            if exc.errno != errno.ELOOP:  # ELOOP: the file itself is a symlink
                raise
    real = resolve_inside(root, rel)
    return os.open(real, flags), real


def read_text(root: Path, rel: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> TextFile:
    """Read and decode ``rel``; raise ``Skipped`` with a reason for anything not editable.

    ``root`` must already be resolved (``Path.resolve()``). Raises FileNotFoundError
    when the file is gone.
    """
    # O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; fstat
    # then says it is not a regular file. Reads of regular files ignore the flag.
    fd, real = _open_inside(root, rel, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
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
        if len(chunk) < size:  # a regular file reads short only at its end
            break
        size = 1 << 16
    return b"".join(chunks)


def hash_file(path: Path) -> str | None:
    """sha256 of the file at ``path``; None if it cannot be read (gone, unreadable)."""
    try:
        with open(path, "rb") as handle:
            return sha256(handle.read())
    except OSError:
        return None


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


_F_SETLEASE: int | None = getattr(fcntl, "F_SETLEASE", None)
_writer_probe = False


def enable_writer_probe() -> bool:
    """Let ``write_cas`` ask the kernel whether a file is open for writing.

    The question is a Linux read lease: taking one fails with EAGAIN while any
    process has the file open for writing; it is released at once. A lease broken
    in that instant is signalled with SIGIO, whose default action ends the process,
    so SIGIO is ignored; that is only possible from the main thread. Returns
    whether the probe is on.
    """
    global _writer_probe
    if not _writer_probe and _F_SETLEASE is not None:
        try:
            signal.signal(signal.SIGIO, signal.SIG_IGN)
        except ValueError:  # not the main thread
            return False
        _writer_probe = True
    return _writer_probe


def _has_writer(fd: int) -> bool:
    if not _writer_probe or _F_SETLEASE is None:
        return False
    try:
        fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        # EAGAIN: open for writing. Anything else (not the owner, a file system
        # without leases): the kernel cannot tell us, so rely on the hash checks.
        return exc.errno == errno.EAGAIN
    fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_UNLCK)
    return False


def _read_unless_busy(path: Path, rel: str) -> bytes | None:
    """Content of ``path`` (None if gone); ``FileBusy`` if someone is writing it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    try:
        if _has_writer(fd):
            raise FileBusy(f"{rel} is open for writing by another process")
        return _read_all(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make the renames in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes, *, sync: bool = True) -> os.stat_result:
    """Write all of ``data`` to ``fd`` and (unless told not to) sync it; the
    file's status after."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    if sync:
        os.fsync(fd)
    return os.fstat(fd)


def write_cas(file: TextFile, data: bytes) -> os.stat_result:
    """Replace ``file.path`` with ``data`` only if it still holds ``file.raw``.

    Temp file in the same directory, fsync, atomic swap, directory fsync; the mode
    is kept. A caller writing many files uses ``stage`` and ``swap_in`` instead, and
    makes the batch durable itself (``scribe.durable``). On Linux the swap is a
    ``RENAME_EXCHANGE``, so the content displaced is checked *after* the swap and
    given back if someone wrote in the meantime.
    Raises ``ContentChanged`` when the file no longer holds what the plan was made
    from, and ``FileBusy`` when another process has it open for writing (a writer
    that truncated the file and has not finished would otherwise keep writing into
    the replaced, deleted file: see ``enable_writer_probe``).

    Returns the status of the file written, taken before the swap: a later stat of
    the path could already describe someone else's save.
    """
    placed = swap_in(stage(file, data))
    fsync_dir(file.path.parent)
    return placed


@dataclass(frozen=True)
class Staged:
    """New content written beside the file it is to replace (``stage``)."""

    file: TextFile
    data: bytes
    tmp: Path
    placed: os.stat_result  # the temp file's status, taken before any swap

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


def stage(file: TextFile, data: bytes, *, sync: bool = True) -> Staged:
    """Write ``data`` to a temp file beside ``file``, with its mode, synced unless
    the caller makes the whole batch durable itself (``scribe.durable``) before
    any of it is swapped in."""
    target = file.path
    unique = f"{os.getpid()}.{os.urandom(4).hex()}"
    # Only a prefix of the name: a long name plus our affixes must fit NAME_MAX.
    tmp = target.with_name(f"{TEMP_PREFIX}{target.name[:40]}.{unique}{TEMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, file.mode)
    try:
        try:
            os.fchmod(fd, file.mode)
            placed = _write_all(fd, data, sync=sync)
        finally:
            os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Staged(file, data, tmp, placed)


def swap_in(staged: Staged) -> os.stat_result:
    """Swap a staged temp file into place if the file still holds what it was
    planned from (``write_cas``); the temp is gone afterwards, whatever happened.
    The directory is not synced."""
    file, tmp = staged.file, staged.tmp
    try:
        try:
            swapped = _exchange(str(tmp), str(file.path))
        except FileNotFoundError:
            raise ContentChanged(file.rel) from None  # deleted since we read it
        if swapped:
            _settle_exchange(file, (staged.placed.st_ino, staged.data), tmp)
        else:  # no exchange here: the last check must come just before the replace
            current = _read_unless_busy(file.path, file.rel)
            if current is None or sha256(current) != file.sha256:
                raise ContentChanged(file.rel)
            os.replace(tmp, file.path)
    finally:
        # Once swapped, tmp holds the displaced (planned-from) content; drop it.
        tmp.unlink(missing_ok=True)
    return staged.placed


def _settle_exchange(file: TextFile, ours: tuple[int, bytes], tmp: Path) -> None:
    """After a swap, make sure the displaced content was the planned-from content.

    If it was not, a user saved between our last check and the swap: give the
    target back their newest save (``_restore_newest``), then report the conflict.
    """
    try:
        displaced = _read_unless_busy(tmp, file.rel)
    except FileBusy:
        # A writer opened the file just before the swap: its bytes go to the
        # displaced file, so that file must stand at the target, not ours.
        _restore_newest(file.path, tmp, ours)
        raise
    if displaced is not None and sha256(displaced) == file.sha256:
        return
    _restore_newest(file.path, tmp, ours)
    raise ContentChanged(file.rel)


def _identity(path: Path) -> tuple[int, bytes] | None:
    """Inode and content of ``path``; None when it is gone."""
    try:
        ino = os.lstat(path).st_ino
    except FileNotFoundError:
        return None
    data = _read_path(path)
    return None if data is None else (ino, data)


def _restore_newest(target: Path, tmp: Path, placed: tuple[int, bytes]) -> None:
    """Swap a displaced save (at ``tmp``) back into ``target``, unless newer is there.

    ``placed`` is what we last put at the target. A save made since replaced or
    rewrote it, and is newer than the one at ``tmp``: leave it. Each swap-back is
    checked the same way, since a save can land between the check and the swap:
    what it displaced must be ``placed``, or it is newer and goes back in turn.
    (A single unconditional swap-back lost the newest save in that case.)
    """
    for _ in range(100):
        candidate = _identity(tmp)
        if candidate is None or _identity(target) != placed:
            return
        try:
            if not _exchange(str(tmp), str(target)):
                return
        except FileNotFoundError:
            return
        if _identity(tmp) == placed:
            return
        placed = candidate


def clear_leftovers(target: Path, before_sha: str | None, after_sha: str | None) -> int:
    """Remove the temp files that a killed ``write_cas`` of ``target`` left behind.

    ``before_sha``/``after_sha`` are the write's planned-from and new content. A
    temp holding either is Scribe's own (not swapped yet, or the planned-from
    content it displaced) and goes. One holding anything else was displaced by the
    swap after the user saved it: if the target still holds Scribe's content, the
    save is swapped back first, so it is never lost. Returns how many were removed.
    Temps of a process still running are left alone.
    """
    prefix = f"{TEMP_PREFIX}{target.name[:40]}."
    try:
        names = [n for n in os.listdir(target.parent) if n.startswith(prefix)]
    except OSError:
        return 0
    removed = 0
    for name in names:
        if not is_temp_name(name) or _writer_alive(name):
            continue
        tmp = target.parent / name
        held = _read_path(tmp)
        if held is not None and sha256(held) not in (before_sha, after_sha):
            current = _read_path(target)
            if current is not None and sha256(current) == after_sha:
                _exchange(str(tmp), str(target))  # the user's save goes back in place
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def _writer_alive(temp_name: str) -> bool:
    """Whether the process that named this temp file still runs (or is this one)."""
    try:
        pid = int(temp_name[: -len(TEMP_SUFFIX)].rsplit(".", 2)[1])
    except (IndexError, ValueError):
        return False
    return pid == os.getpid() or other_process_alive(pid)


def other_process_alive(pid: int) -> bool:
    """Whether another process with this pid runs (it may be a later one)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def create_new(root: Path, rel: str, data: bytes, *, mode: int = 0o644) -> os.stat_result:
    """Create ``rel`` under ``root`` holding ``data``; ``FileExistsError`` if it exists.

    The content is written and synced under a temp name and then hard-linked into
    place, which fails rather than replace a file someone created meanwhile.
    Missing parent folders are made; the caller has checked ``rel`` is confined.
    """
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    resolve_inside(root, str(PurePosixPath(rel).parent))  # made folders stay inside
    unique = f"{os.getpid()}.{os.urandom(4).hex()}"  # two threads may create one file
    tmp = target.with_name(f"{TEMP_PREFIX}{target.name[:40]}.{unique}{TEMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        try:
            placed = _write_all(fd, data)
        finally:
            os.close(fd)
        os.link(tmp, target, follow_symlinks=False)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)
    return placed


def move_new(root: Path, rel: str, dest: str) -> None:
    """Move ``rel`` to ``dest`` (both under ``root``) without replacing a file at
    ``dest``: ``FileExistsError`` if there is one."""
    source, target = root / rel, root / dest
    target.parent.mkdir(parents=True, exist_ok=True)
    resolve_inside(root, str(PurePosixPath(dest).parent))
    os.link(source, target, follow_symlinks=False)
    os.unlink(source)
    fsync_dir(target.parent)
    if source.parent != target.parent:
        fsync_dir(source.parent)
