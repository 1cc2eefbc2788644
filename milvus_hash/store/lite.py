"""Milvus Lite's embedded server, guarded: one program a file, and a failed start told as what it is.

milvus-lite 2.5.1 lets one program at a time serve a ``.db`` file: the program takes a ``lockf``
lock on ``.NAME.db.lock`` beside it, and its server process (``milvus_lite/lib/milvus``) blocks on
that lock, exiting when it is released (the program ended, even by SIGKILL). Two defects of its
``Server`` matter here, and :func:`install` replaces it in ``milvus_lite.server_manager`` with
:class:`_GuardedServer`, which fixes both:

1. **A refused start removed the holder's lock.** When the lock is taken, ``Server.start`` returns
   False and the ``Server`` is dropped; its ``__del__`` calls ``stop()``, which unlinks the lock
   file, *the other program's*. The next attempt then creates a new lock file, locks it and starts a
   second server on the same data (two writers: "Index: code already exist" on every later open).
   The guarded server never unlinks a lock file it did not lock.
2. **Every failure looked the same** ("Open local milvus failed"), whether the file was held, was
   not a Milvus Lite database, or its folder could not be written. The guarded server records why
   (:func:`start_failure`): the file held (and by which process, from ``/proc/locks``), the server
   exited at once (its exit code), or the lock file could not be created.

It also starts the server in a session of its own (:class:`_SessionSubprocess`), so Ctrl-C in a
terminal does not kill it while the program is still writing.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

#: The first bytes of every Milvus Lite database (it is an SQLite file).
SQLITE_HEADER = b"SQLite format 3\x00"
#: What milvus-lite 2.5.1 accepts as a database file's name (longer or other names are refused).
LITE_NAME = re.compile(r"^[A-Za-z0-9.\-_]{1,36}$")


@dataclass(frozen=True)
class StartFailure:
    """Why Milvus Lite did not start on a file: ``reason`` is ``"held"`` (another process holds the
    file: ``pid`` and ``command`` when known, ``by_lite``: that process is a Milvus Lite server whose
    program has ended, about to exit), ``"exited"`` (the server exited at once with ``exit_code``) or
    ``"unwritable"`` (the lock file beside the database could not be created: ``detail``)."""

    reason: str
    pid: int | None = None
    command: str = ""
    by_lite: bool = False
    exit_code: int | None = None
    detail: str = ""


_FAILURES: dict[str, StartFailure] = {}


def start_failure(path: str) -> StartFailure | None:
    """Why the last start of Milvus Lite on ``path`` in this process failed (None: it did not)."""
    return _FAILURES.get(str(Path(path).absolute().resolve()))


def lock_path(db: str | os.PathLike) -> Path:
    """The lock file milvus-lite keeps beside database ``db``."""
    db = Path(db).absolute()
    return db.parent / f".{db.name}.lock"


def lock_holder(path: str | os.PathLike) -> int | None:
    """The process that holds the POSIX lock on file ``path`` (from ``/proc/locks``; None elsewhere
    or when nobody holds it)."""
    try:
        st = os.stat(path)
        wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6:  # a process waiting for the lock, not holding it
            continue
        if fields[5] == wanted:
            try:
                return int(fields[4])
            except ValueError:
                return None
    return None


def process_command(pid: int) -> str:
    """The command line of process ``pid`` (empty when it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def check_database_file(path: str | os.PathLike) -> None:
    """Cheap facts about a Milvus Lite file before any server starts: a name milvus-lite accepts, and
    an existing file that is a Milvus Lite database (an SQLite file; an empty one becomes one).
    Raises :class:`~milvus_hash.errors.InvalidInputError` naming ``uri``."""
    from ..errors import expected

    p = Path(path)
    if not LITE_NAME.match(p.name):
        raise expected("uri", "a Milvus Lite file name of at most 36 letters, digits, '.', '-' or '_' "
                              "(milvus-lite's rule)", repr(p.name))
    try:
        with open(p, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise expected("uri", "a Milvus Lite file that can be read", f"{str(p)!r} ({exc.strerror})") from exc
    if head and head != SQLITE_HEADER:
        raise expected("uri", "a Milvus Lite database (.db)", f"{str(p)!r}, which is not one (another kind of file)")


class _SessionSubprocess:
    """``subprocess`` as Milvus Lite's launcher sees it: its embedded server starts in a session of
    its own. Otherwise it shares the process group of the program that opened it, and Ctrl-C in a
    terminal (SIGINT to the whole group) kills the server while the program is still writing: rows
    lost, a 30 s hang. The server still stops with its program: it exits when the program's lock on
    the database file goes, as on any exit (SIGKILL included)."""

    def __getattr__(self, name):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args, **kwargs):  # noqa: N802 - subprocess's name
        kwargs.setdefault("start_new_session", True)
        if os.environ.get("MILVUS_HASH_DEBUG") != "1" and "stdout" not in kwargs:
            # the server's own log (parse errors of a filter, its start-up) goes to a file, not into
            # the program's output; an error that needs it names the file (server_log)
            log = server_log()
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "ab") as fh:
                kwargs["stdout"] = kwargs["stderr"] = fh
                return subprocess.Popen(*args, **kwargs)
        return subprocess.Popen(*args, **kwargs)


def server_log() -> Path:
    """The file Milvus Lite's embedded servers write their output to (``MILVUS_HASH_DEBUG=1``: the terminal)."""
    return Path(tempfile.gettempdir()) / f"milvus-hash-{os.getuid() if hasattr(os, 'getuid') else 'user'}" / \
        "milvus-lite.log"


_INSTALLED = False


def install() -> None:
    """Put the guarded server in milvus-lite's server manager (once; a no-op without milvus-lite)."""
    global _INSTALLED
    if _INSTALLED:
        return
    try:
        from milvus_lite import server as lite_server
        from milvus_lite import server_manager
    except ImportError:  # pragma: no cover - no Milvus Lite on this platform
        _INSTALLED = True
        return
    if getattr(lite_server, "subprocess", None) is subprocess:
        lite_server.subprocess = _SessionSubprocess()

    class _GuardedServer(lite_server.Server):
        """milvus-lite's ``Server`` that never removes a lock it does not hold, and says why it failed."""

        _refused = False

        def start(self) -> bool:
            key = str(Path(self._db_file).resolve())
            try:
                ok = super().start()
            except OSError as exc:  # the lock file cannot be created (read-only folder, /proc, ...)
                self._refused = True
                _FAILURES[key] = StartFailure("unwritable", detail=f"{self._lock_path}: {exc.strerror or exc}")
                return False
            if ok:
                _FAILURES.pop(key, None)
                return True
            if self._p is None:  # the lock was refused: another process holds the file
                self._refused = True
                pid = lock_holder(self._lock_path)
                command = process_command(pid) if pid else ""
                _FAILURES[key] = StartFailure("held", pid=pid, command=command,
                                              by_lite=os.path.join("milvus_lite", "lib", "milvus") in command)
            else:
                _FAILURES[key] = StartFailure("exited", exit_code=self._p.returncode)
            return False

        def stop(self) -> None:
            if self._refused:
                # milvus-lite's stop() would unlink the lock file: the holder's. Close ours only.
                if self._lock_fd is not None:
                    self._lock_fd.close()
                    self._lock_fd = None
                return
            super().stop()

    server_manager.Server = _GuardedServer
    logging.getLogger().addFilter(_quiet_lite_failures)
    _INSTALLED = True


def _quiet_lite_failures(record: logging.LogRecord) -> bool:
    """Drop milvus-lite's own lines about a failed start (the guarded server's error says more)."""
    return not (record.pathname.endswith(os.path.join("milvus_lite", "server.py"))
                and record.levelno >= logging.ERROR and ("failed" in str(record.msg)))


_PRESTARTS: dict[str, threading.Thread] = {}


def prestart(uri) -> None:
    """Start Milvus Lite's server on ``uri`` in a background thread, if it is a Lite file that can be
    served: its start waits half a second for the server process (milvus-lite's own check), which
    then overlaps the caller's imports (pymilvus, torch) instead of following them. The connection
    waits for it (:func:`await_prestart`); a failed start is left for the connection to report, so
    nothing here raises."""
    from .uri import resolve_uri

    try:
        target = resolve_uri(uri)
    except Exception:  # noqa: BLE001 - the store reports a bad URI in its own words
        return
    if not target.embedded or target.uri in _PRESTARTS or serving_here(target.uri):
        return
    install()
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # pragma: no cover - no Milvus Lite on this platform
        return

    def start() -> None:
        try:
            server_manager_instance.start_and_get_uri(target.uri)
        except Exception:  # noqa: BLE001 - the connection starts it again and reports why it fails
            pass

    thread = threading.Thread(target=start, name="milvus-lite-start", daemon=True)
    _PRESTARTS[target.uri] = thread
    thread.start()


def await_prestart(path: str) -> None:
    """Wait for a :func:`prestart` of Lite file ``path`` (resolved, as a ``Target``'s uri), if any."""
    thread = _PRESTARTS.pop(path, None)
    if thread is not None:
        thread.join()


def serving_here(path: str) -> bool:
    """Whether this process already serves Milvus Lite file ``path`` (so opening it again is free)."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # pragma: no cover
        return False
    return str(Path(path).absolute().resolve()) in getattr(server_manager_instance, "_servers", {})


__all__ = ["LITE_NAME", "SQLITE_HEADER", "StartFailure", "await_prestart", "check_database_file", "install", "lock_holder",
           "lock_path", "prestart", "process_command", "serving_here", "start_failure"]
