"""Ctrl-C and SIGTERM as requests to stop at the next safe point."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator


EXIT_STOPPED = 130  # exit status after a clean stop on request (128 + SIGINT)

try:  # tqdm.write keeps progress bars intact; without tqdm, plain stderr
    from tqdm import tqdm as _tqdm
except ImportError:  # pragma: no cover
    _tqdm = None


@dataclass
class StopRequest:
    """Set by ``stop_requests``: ``requested`` after the first SIGINT/SIGTERM, and which one."""
    requested: bool = False
    signal_name: str | None = None


def _say(message: str) -> None:
    try:  # the handler may interrupt a print in progress: re-entrant writes raise RuntimeError
        if _tqdm is not None:
            _tqdm.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)
    except RuntimeError:
        pass


@contextmanager
def _handlers(handler: Callable, signums: Iterable[int]) -> Iterator[None]:
    """Install ``handler`` for ``signums``, then restore the previous ones (main thread only)."""
    previous = {}
    try:
        if threading.current_thread() is threading.main_thread():  # else signal.signal raises
            for s in signums:
                previous[s] = signal.signal(s, handler)
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


@contextmanager
def stop_requests(message: str, several_ranks: bool = False,
                  speak: bool = True) -> Iterator[StopRequest]:
    """SIGINT/SIGTERM set ``.requested`` and print ``message`` once (if ``speak``).

    The loop checks ``.requested`` at batch boundaries and stops cleanly. A second SIGINT
    raises KeyboardInterrupt (an impatient Ctrl-C), except with ``several_ranks``, where
    ranks must agree when to stop, so every signal only sets the flag. A repeated SIGTERM
    only sets the flag (schedulers may repeat it). Off the main thread nothing is installed.
    """
    state = StopRequest()

    def handler(signum: int, frame: Any) -> None:
        if state.requested and signum == signal.SIGINT and not several_ranks:
            raise KeyboardInterrupt
        first = not state.requested
        state.requested, state.signal_name = True, signal.Signals(signum).name
        if first and speak:
            _say(message)

    with _handlers(handler, (signal.SIGINT, signal.SIGTERM)):
        yield state


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so ``finally:`` and ``atomic_path`` clean up."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    with _handlers(handler, (signal.SIGTERM,)):
        yield
