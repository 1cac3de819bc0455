"""Failures as one line: the exit codes, the run-failure types and the known exception types.

The command line (:func:`npo.cli.main`) turns an exception into one ``npo: error: ...`` line
with :func:`translate`, by type; an exception of any other type is a bug and keeps its
traceback. Exit codes:

- ``0``: success;
- ``1`` (:data:`EXIT_FAILED`): the work started and failed for a reason outside the options,
  e.g. the disk filled up (:class:`FileIOError`), a write was refused (read-only file system,
  permissions) or training produced a non-finite value (:class:`RunFailed` and exceptions that
  set ``exit_code = 1``);
- ``2`` (:data:`EXIT_USAGE`): invalid options or input files, refused before any work
  (``ValueError``, the convention of :mod:`npo.validate`; argparse's own errors also exit 2);
- ``130`` (:data:`EXIT_INTERRUPTED`): interrupted (Ctrl-C, SIGINT), as shells report it.

Only the standard library is imported.
"""

from __future__ import annotations

import errno
import os
import re
import sys

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "FileIOError",
    "Interrupted",
    "RunFailed",
    "io_error",
    "os_error_from_message",
    "translate",
    "warn",
]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# The errno values of failures of the environment (a full disk, a read-only or missing path):
# reported as one line naming the file. Other OSErrors keep their traceback.
KNOWN_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EFBIG,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ENAMETOOLONG,
        errno.EIO,
    }
)


class RunFailed(RuntimeError):
    """Work that started stopped for a reason outside the options (exit status 1).

    The message is the whole one-line report, e.g. which checkpoint could not be written and
    which one is intact.
    """

    exit_code = EXIT_FAILED


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run, with the line that says where it stopped and how to resume."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FileIOError(OSError):
    """An ``OSError`` that names the file and what was being done with it.

    ``str(err)`` is ``"cannot ACTION FILE: STRERROR"``.
    """

    def __init__(self, code: int | None, strerror: str, filename: str, action: str) -> None:
        super().__init__(code, strerror, filename)
        self.action = action

    def __str__(self) -> str:
        return f"cannot {self.action} {self.filename}: {self.strerror}"


def io_error(exc: OSError, path: str | os.PathLike, action: str) -> FileIOError:
    """``exc`` as a :class:`FileIOError` naming ``path`` (``exc.filename`` if it has one).

    Args:
        exc: the error the operating system raised (``f.write`` on a full disk names no file).
        path: the file being written or read.
        action: ``"write"``, ``"read"``, ``"create"``, ...

    Returns:
        The error to raise (``raise io_error(exc, path, "write") from exc``).
    """
    if isinstance(exc, FileIOError):
        return exc
    code = exc.errno
    text = exc.strerror or (os.strerror(code) if code else str(exc))
    return FileIOError(code, text, str(exc.filename or path), action)


_OS_ERROR = re.compile(r"os error (\d+)")


def os_error_from_message(exc: BaseException, path: str | os.PathLike, action: str):
    """The :class:`FileIOError` inside an error of a Rust library (safetensors, tokenizers).

    Their I/O errors carry the operating system's code only in the text (``"... (os error
    28)"``).

    Args:
        exc: the library's exception.
        path: the file or directory being written or read.
        action: as in :func:`io_error`.

    Returns:
        A :class:`FileIOError`, or None when the message holds no OS error code.
    """
    m = _OS_ERROR.search(str(exc))
    if m is None:
        return None
    code = int(m[1])
    return FileIOError(code, os.strerror(code), str(path), action)


def _os_line(exc: OSError) -> str | None:
    if exc.errno not in KNOWN_ERRNOS:
        return None
    if isinstance(exc, FileIOError):
        text = str(exc)
    elif exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror}"
        if exc.filename2 is not None:
            text = f"{exc.filename} -> {exc.filename2}: {exc.strerror}"
    else:
        return None  # names no file: a bug in the code that should have named it
    return text


def translate(exc: BaseException) -> tuple[str, int] | None:
    """The one-line report and exit status of a known failure (see the module docstring).

    Args:
        exc: the exception that ended a command.

    Returns:
        ``("npo: error: ...", status)``, ``("npo: interrupted ...", 130)``, or None for an
        exception of an unknown kind (a bug: it keeps its traceback).
    """
    if isinstance(exc, KeyboardInterrupt):
        message = getattr(exc, "message", None) or "interrupted"
        return f"npo: {message}", EXIT_INTERRUPTED
    code = getattr(exc, "exit_code", None)
    if isinstance(exc, OSError):
        line = _os_line(exc)
        return None if line is None else (f"npo: error: {line}", EXIT_FAILED)
    if isinstance(exc, (ValueError, RunFailed)):
        text = " ".join(str(exc).split()) or type(exc).__name__
        return f"npo: error: {text}", code if isinstance(code, int) else EXIT_USAGE
    return None


def warn(message: str) -> None:
    """Print ``warning: MESSAGE`` on stderr (one line, flushed)."""
    print(f"warning: {' '.join(message.split())}", file=sys.stderr, flush=True)
