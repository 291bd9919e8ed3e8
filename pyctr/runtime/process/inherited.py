"""What a forked child does with the descriptors it inherited: it gives every one up, and still no object of
its parent can ever close or use a descriptor that the child opens afterwards.

The API daemon (`pyctr system service`, a thread per connection) forks for every start (the monitor M,
lifecycle/detached.py), every exec (api/execs.py) and every detached helper (detach.py). The child inherits
the parent's Python objects, among them garbage the parent's collector has not reached yet: after a `docker
pull`, the registry connection that the HTTP client left to the collector, an open socket. Were the child to
free that socket's number (os.closerange), its next pipe, memfd or lock file could take the number; then the
child's own collector, finalizing the parent's socket, closes it: the start failed with 500 "OSError: [Errno 9]
Bad file descriptor" (issue 16; tests/integration/test_api_concurrency.py, tests/unit/test_inherited_fds.py).

The rule: a number claimed by an object of the parent stays that object's in the child. So the child
  - freezes every inherited object (gc.freeze): its collector never finalizes the parent's garbage;
  - does not free the numbers but points each at a close-on-exec /dev/null: the inherited file itself is let go
    (a pipe's other end sees its EOF as before), and a stale object can at worst use or close its own
    placeholder, never a descriptor of the child's. The placeholders vanish at the child's exec.

Deciding (pure): `numbers_to_disown`. Doing: `disown_inherited_fds` (in the forked child only).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Collection, Iterable

OPEN_FDS_DIR = "/proc/self/fd"
CLOSE_ALL_ABOVE = 65536  # without /proc: everything from 3 up is closed, as before (no placeholders then)


def numbers_to_disown(listed: Iterable[str], keep: Collection[int], placeholder: int) -> list[int]:
    """The fd numbers (entries of /proc/self/fd) the child gives up: 3 and above, but those it keeps and its
    placeholder's own."""
    numbers = (int(name) for name in listed if name.isdigit())
    return sorted(n for n in numbers if n > 2 and n not in keep and n != placeholder)


def disown_inherited_fds(keep: Collection[int] = ()) -> None:
    """In a freshly forked child: every inherited fd from 3 up but `keep` becomes a close-on-exec /dev/null,
    and the parent's objects are frozen out of the child's garbage collection (see the module doc)."""
    gc.freeze()
    placeholder = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        listed = os.listdir(OPEN_FDS_DIR)
    except OSError:
        os.close(placeholder)
        _close_all_but(keep)
        return
    for fd in numbers_to_disown(listed, keep, placeholder):
        os.dup2(placeholder, fd, inheritable=False)
    os.close(placeholder)  # its number was free at the fork: no inherited object claims it


def _close_all_but(keep: Collection[int]) -> None:
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, CLOSE_ALL_ABOVE)
