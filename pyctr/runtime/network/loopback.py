"""`--network none`: bring `lo` up without pyroute2 (one ioctl, no 200+ ms import)."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import threading

from pyctr.errors import RuntimeFailure

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = "16sH22x"  # struct ifreq: name[IFNAMSIZ], short flags, padding to 40 bytes


def loopback_up_in_current_netns() -> None:
    """Set IFF_UP on `lo` in the calling thread's network namespace (runtime core calls this before exec)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            request = struct.pack(_IFREQ, b"lo", 0)
            _, flags = struct.unpack(_IFREQ, fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request))
            if not flags & IFF_UP:
                fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | IFF_UP))
    except OSError as e:
        raise RuntimeFailure(f"cannot bring up the loopback interface: {e.strerror}") from None


def setup_loopback(pid: int) -> None:
    """Bring `lo` up in the network namespace of process `pid`, from outside it.

    setns(2) for a network namespace changes only the calling thread, so a
    throwaway thread enters the namespace, does the ioctl and ends; the rest
    of the process never leaves its own namespace.
    """
    from pyctr.runtime import syscalls

    errors: list[BaseException] = []

    def enter_and_raise_lo() -> None:
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                syscalls.setns(fd, syscalls.CLONE_NEWNET)
            finally:
                os.close(fd)
            loopback_up_in_current_netns()
        except BaseException as e:  # re-raised in the caller's thread
            errors.append(e)

    worker = threading.Thread(target=enter_and_raise_lo, name=f"pyctr-lo-{pid}")
    worker.start()
    worker.join()
    if errors:
        error = errors[0]
        if isinstance(error, RuntimeFailure):
            raise error
        raise RuntimeFailure(f"cannot bring up lo in the network namespace of process {pid}: {error}") from None
