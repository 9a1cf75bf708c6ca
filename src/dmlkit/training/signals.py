"""Termination signals turned into an exception, so that a stopped run writes its records."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dmlkit.errors import Stopped

#: Signals a batch system or a user sends to stop a job (SIGINT already raises KeyboardInterrupt).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGHUP raise :class:`~dmlkit.errors.Stopped` (main thread only;
    elsewhere the block runs with the handlers as they are). The previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
