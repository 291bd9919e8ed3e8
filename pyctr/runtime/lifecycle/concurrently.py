"""A function run in a thread now and joined later (the network set-up and teardown overlap other work)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


class Concurrently:
    """Run a function in a thread now; join() waits for it and raises what it raised."""

    def __init__(self, function: Callable[..., object], *args: object) -> None:
        import threading

        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(function, *args), daemon=True)
        self._thread.start()

    def _run(self, function: Callable[..., object], *args: object) -> None:
        try:
            function(*args)
        except BaseException as e:  # noqa: BLE001 - handed to join()
            self._error = e

    def join(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error
