"""Forwarding signals to a container's process: Docker's sig-proxy, for `run` in the foreground and `exec`.

The list is protocol.FORWARDED_SIGNALS, the one the `pyctr` client relays to its worker too: what a shell
sends to the command it started reaches the container's process whichever way it runs.
"""

from __future__ import annotations

import contextlib
import os
import signal

from pyctr.protocol import FORWARDED_SIGNALS


def forwarded_signals() -> set[int]:
    return set(FORWARDED_SIGNALS)


class SignalForwarder:
    """While active, what we receive goes to the process `pid` (^C in the user's shell interrupts it).

    Through a pidfd: a signal arriving after the process was reaped cannot hit a reused PID.
    """

    def __init__(self, pid: int) -> None:
        self.pidfd = os.pidfd_open(pid)
        self.previous: dict[int, object] = {}
        for number in FORWARDED_SIGNALS:
            with contextlib.suppress(OSError, ValueError):
                self.previous[number] = signal.signal(number, self._forward)

    def _forward(self, signum: int, _frame) -> None:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(self.pidfd, signum)

    def __enter__(self) -> SignalForwarder:
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self.previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(number, handler)
        os.close(self.pidfd)
