"""Result files that survive a kill, a full disk or a mistyped path (``-o FILE``).

- :func:`check_target` refuses, before anything is computed, an output that is a directory,
  one of the inputs, read-only, or in a folder where no file can be created.
- :func:`write_atomic` replaces a file in one step: the text goes to a temporary file in the
  same folder, is flushed to disk (fsync) and renamed over the target (``os.replace``), so
  the target is always either the old or the new complete file. Devices and FIFOs
  (``/dev/stdout``, ``/dev/full``) are written in place.
- :class:`ResultsFile` streams JSON Lines: each finished record is appended and flushed to
  disk at once, so a killed run keeps every finished input; at the end the file is replaced
  atomically by the complete, ranked document.
"""

from __future__ import annotations

import errno
import hashlib
import fcntl
import os
from pathlib import Path
import stat
import tempfile
from typing import BinaryIO, Callable, Iterable

from sslmon.errors import SslmonError


class OutputError(SslmonError):
    """An output file that cannot be written; the message names it, on one line."""


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def _special(path: Path) -> bool:
    """True for an existing target that is not a regular file (character device, FIFO, socket)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def open_regular(path: str | Path) -> BinaryIO:
    """``path`` opened for reading in binary, only when it is a regular file: checked with ``os.stat`` before the open
    (a device is never opened) and with ``fstat`` after it (opened without blocking, so a FIFO swapped in between
    never hangs). A FIFO, device, socket or directory is an OSError "not a regular file"."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return f


def read_regular(path: Path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of a regular file (so the caller can tell it is over ``limit``); see
    :func:`open_regular`: a FIFO or device under the expected name is an OSError, never a hang."""
    with open_regular(path) as f:
        return f.read(limit + 1)


def read_text(path: Path, limit: int, error: type[Exception], what: str) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes (see :func:`read_regular`); ``error`` naming the
    file otherwise: ``cannot read (reason)``, ``larger than N MiB, not WHAT``, ``not a text file (expected WHAT)``."""
    try:
        raw = read_regular(path, limit)
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if len(raw) > limit:
        raise error(f"{path}: larger than {limit / 2**20:g} MiB, not {what}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file (expected {what})") from None


NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows filesystems (os.pathconf's PC_NAME_MAX)
TMP_PREFIX = ".sslmon-"  # temporary files: mkstemp adds 8 characters and the suffix, so they stay short


def check_name(path: Path) -> None:
    """OutputError when a part of ``path`` is longer than the filesystem allows (:data:`NAME_MAX` bytes)."""
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            raise OutputError(f"{printable_name(path)}: the file name is {size} bytes, longer than the {NAME_MAX} "
                              "bytes a filesystem allows; name a shorter file")


def printable_name(path: Path, limit: int = 120) -> str:
    """``path`` for a message: a name over ``limit`` characters is shortened to its start and end."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]}"


def check_target(path: Path, inputs: Iterable[Path] = ()) -> None:
    """Refuse ``path`` as an output before any work: a name too long, a directory, one of ``inputs``, or a file that
    cannot be created in its folder (read-only, /proc, a missing parent that cannot be made). Raises OutputError."""
    check_name(path)
    try:
        _check_target(path, inputs)
    except OSError as exc:
        raise OutputError(f"{path}: cannot be written ({_reason(exc)})") from None


def _check_target(path: Path, inputs: Iterable[Path]) -> None:
    if path.is_dir():
        raise OutputError(f"{path}: is a directory (name a file such as {path / 'results.json'})")
    for source in inputs:
        if _same_file(path, source):
            raise OutputError(f"{path}: is one of the inputs ({source}); writing the results there would overwrite it")
    if _special(path):
        return
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{path}: is read-only")
    folder = Path(os.path.realpath(path)).parent
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{path}: {folder} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX, suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write a file in {folder} ({_reason(exc)})") from None


def _mode(target: Path) -> int:
    """Permission bits for the new file: those of the file it replaces, else 0o666 less the umask (as open() gives)."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace ``path`` by ``data`` in one step (temporary file in the same folder, fsync, ``os.replace``; a symlink
    is followed); devices and FIFOs are written in place. Raises OutputError naming the file."""
    raw = data.encode() if isinstance(data, str) else data
    check_name(path)
    try:
        if _special(path):
            with open(path, "wb") as f:
                f.write(raw)
            return
        target = Path(os.path.realpath(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TMP_PREFIX, suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({_reason(exc)})") from None
    try:
        os.fchmod(fd, _mode(target))
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"{path}: cannot write ({_reason(exc)})") from None
        raise


class ResultsFile:
    """The ``-o`` file of a scoring run, in format ``fmt`` (json, jsonl or csv).

    With ``fmt == "jsonl"`` (and a regular file) :meth:`stream` appends each finished record and fsyncs it (after
    what the file held with ``append``, else the first record starts the file afresh);
    :meth:`finish` writes the complete document atomically. The first write error is passed to ``report`` as one
    ``error:`` line, later writes are skipped and :attr:`failed` is set (the caller then prints the results instead).
    """

    def __init__(self, path: Path, fmt: str, report: Callable[[str], None], append: bool = False) -> None:
        self.path = path
        self.append = append  # stream after what the file holds (``sslmon watch``) instead of starting it afresh
        self.fmt = fmt
        self.report = report
        self.failed = False
        self._stream = None
        self._streaming = fmt == "jsonl" and not _special(path)

    def _fail(self, exc: OSError | OutputError) -> None:
        self.failed = True
        self.close()
        message = str(exc) if isinstance(exc, OutputError) else f"{self.path}: cannot write ({_reason(exc)})"
        self.report(f"error: {message}; the results are printed on stdout instead")

    def lock(self) -> None:
        """Open the file for appending (created when missing) and hold an exclusive ``flock`` on it for the run, so a
        second writer (another ``sslmon watch`` on the same file) is refused with OutputError instead of doubling
        every record. The lock goes with the process (also on ``kill -9``). Devices and FIFOs are not locked."""
        if not self._streaming or self._stream is not None:
            return
        try:
            self._stream = open(os.path.realpath(self.path), "a", encoding="utf-8")
            fcntl.flock(self._stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise OutputError(f"{self.path}: another process (a second sslmon watch?) is appending to it; "
                                  "name another output file") from None
            raise OutputError(f"{self.path}: cannot write ({_reason(exc)})") from None

    def stream(self, line: str) -> None:
        """Append one finished record (JSON Lines only) and flush it to disk."""
        if not self._streaming or self.failed:
            return
        try:
            if self._stream is None:
                self._stream = open(os.path.realpath(self.path), "a" if self.append else "w", encoding="utf-8")
            self._stream.write(line)
            self._stream.flush()
            os.fsync(self._stream.fileno())
        except OSError as exc:
            self._fail(exc)

    def finish(self, text: str) -> bool:
        """Replace the file by the complete document; True when it was written."""
        self.close()
        if self.failed:
            return False
        try:
            write_atomic(self.path, text)
        except OutputError as exc:
            self._fail(exc)
            return False
        return True

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except OSError:
                pass
            self._stream = None


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a regular file's bytes, hex; OSError ("not a regular file") for a FIFO, device or folder, which is
    checked before the file is opened (see :func:`~sslmon.io.output.open_regular`): never a hang or an endless read."""
    h = hashlib.sha256()
    with open_regular(path) as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
