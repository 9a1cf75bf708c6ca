"""An exclusive lock on a run directory while a run writes to it.

Two trainings into one directory would interleave their checkpoints and records; the second is
refused instead. The lock is ``RUN_DIR/.lock``, a POSIX record lock (``fcntl.lockf``): it belongs
to the process, so the kernel releases it the moment that process dies (a killed run leaves no
stale lock), and the data loader's forked workers, which outlive a killed parent for a moment, do
not hold it. Within one process a registry of held paths refuses a second lock on the same
directory. The file records the holder's pid and start time for the message. Where ``fcntl`` does
not exist (Windows) no lock is taken.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import ClassVar

from dmlkit.errors import DmlkitError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


class RunLock:
    """``with RunLock(run_dir):`` — or :meth:`acquire` / :meth:`release` — around a run's writes."""

    #: Lock files held by this process (POSIX locks do not exclude the process that holds them).
    _held: ClassVar[set[Path]] = set()

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock (creating the run directory); a :class:`DmlkitError` if another run holds it."""
        if fcntl is None or self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = self.path.resolve()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if key in RunLock._held:
                raise BlockingIOError
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # EAGAIN / EACCES: held elsewhere
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise DmlkitError(
                f"run directory {self.path.parent} is in use by {holder}: two runs cannot write to one directory; "
                "wait for that one to end or choose another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0
        )
        self._fd = fd
        RunLock._held.add(key)
        return self

    def release(self) -> None:
        """Give the lock up (the lock file is removed)."""
        if self._fd is None:
            return
        RunLock._held.discard(self.path.resolve())
        self.path.unlink(missing_ok=True)
        fcntl.lockf(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
