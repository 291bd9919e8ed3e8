"""A container process's own pty, from the devpts instance of the container's mount namespace (runc's
setupConsole: `tty` prints /dev/pts/N, not a host pty). Used by a new container's init (-t) and by an exec -t.
"""

from __future__ import annotations

import os

from pyctr.errors import RuntimeFailure

# Pty devices (linux/major.h): /dev/ptmx is 5:2, slaves are majors 136..143.
PTMX_DEVICE = (5, 2)
PTY_SLAVE_MAJORS = range(136, 144)
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441
DEVPTS_SUPER_MAGIC = 0x1CD1


def open_container_pty() -> tuple[int, int]:
    """(master, slave) from /dev/pts/ptmx of the mount namespace we are in, with no symlink followed.

    Both are checked to be what they claim (a ptmx device on a devpts filesystem, a pty slave), so a
    container that replaced its /dev/pts cannot make us open something else.
    """
    import fcntl
    import stat
    import struct

    from pyctr.runtime import syscalls as s

    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        master = s.openat2(root, "dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY,
                           s.RESOLVE_IN_ROOT | s.RESOLVE_NO_SYMLINKS | s.RESOLVE_NO_MAGICLINKS)
    finally:
        os.close(root)
    try:
        st = os.fstat(master)
        if not stat.S_ISCHR(st.st_mode) or (os.major(st.st_rdev), os.minor(st.st_rdev)) != PTMX_DEVICE \
                or s.filesystem_type(master) != DEVPTS_SUPER_MAGIC:
            raise RuntimeFailure("/dev/pts/ptmx in the container is not a devpts ptmx")
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        if os.major(os.fstat(slave).st_rdev) not in PTY_SLAVE_MAJORS:
            os.close(slave)
            raise RuntimeFailure("the container's pty slave is not a pty")
    except BaseException:
        os.close(master)
        raise
    return master, slave
