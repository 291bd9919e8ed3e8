"""The seam between the container process's steps and the kernel (youki's Syscall trait).

init, the exec joiner, the shared process sequence and rootfs call the privileged system calls through a
`Kernel` they are given: `KERNEL`, the real one, in production; a recording fake in unit tests
(tests/unit/test_init_steps.py), so the ORDER of the steps and their arguments are tested in milliseconds
without root, namespaces or mounts. Only what changes the process's privileges, namespaces or mounts goes
through here; plain file work (open, mkdir, symlink) stays direct and runs for real under the fake too.

Each method imports its module when called: this module is imported by rootfs (also on `cp` and `build`
paths) and must cost nothing; the launcher preloads syscalls and capabilities before it forks.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (pyctr-runtime's cold start)
if TYPE_CHECKING:
    from typing import NoReturn


class Kernel:
    """The real system calls (runtime/syscalls.py, runtime/capabilities.py, os)."""

    # -- namespaces and identity of the process
    def unshare(self, flags: int) -> None:
        from pyctr.runtime import syscalls

        syscalls.unshare(flags)

    def setns(self, fd: int, nstype: int) -> None:
        from pyctr.runtime import syscalls

        syscalls.setns(fd, nstype)

    def sethostname(self, name: str) -> None:
        from pyctr.runtime import syscalls

        syscalls.sethostname(name)

    def bring_loopback_up(self) -> None:
        from pyctr.runtime import syscalls

        syscalls.bring_loopback_up()

    def set_parent_death_signal(self, signum: int) -> None:
        from pyctr.runtime import syscalls

        syscalls.set_parent_death_signal(signum)

    def set_dumpable(self, dumpable: bool) -> None:
        from pyctr.runtime import capabilities

        capabilities.set_dumpable(dumpable)

    def seal_imports(self) -> None:
        from pyctr.runtime.process.sequence import seal_imports

        seal_imports()

    # -- mounts
    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        from pyctr.runtime import syscalls

        syscalls.mount(source, target, fstype, flags, data)

    def umount2(self, target: str, flags: int = 0) -> None:
        from pyctr.runtime import syscalls

        syscalls.umount2(target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        from pyctr.runtime import syscalls

        syscalls.pivot_root(new_root, put_old)

    def mknod(self, name: str, mode: int, device: int, dir_fd: int) -> None:
        os.mknod(name, mode, device, dir_fd=dir_fd)

    # -- privileges
    def seccomp_set_filter(self, program: bytes) -> None:
        from pyctr.runtime import syscalls

        syscalls.seccomp_set_filter(program)

    def drop_bounding_set(self, keep: list[str]) -> None:
        from pyctr.runtime import capabilities

        capabilities.drop_bounding_set(keep)

    def clear_inheritable_and_ambient(self) -> None:
        from pyctr.runtime import capabilities

        capabilities.clear_inheritable_and_ambient()

    def keep_capabilities_across_setuid(self, keep: bool) -> None:
        from pyctr.runtime import capabilities

        capabilities.keep_capabilities_across_setuid(keep)

    def setgroups(self, gids: list[int]) -> None:
        os.setgroups(gids)

    def setgid(self, gid: int) -> None:
        os.setgid(gid)

    def setuid(self, uid: int) -> None:
        os.setuid(uid)

    def limit_permitted_and_effective(self, keep: list[str]) -> None:
        from pyctr.runtime import capabilities

        capabilities.limit_permitted_and_effective(keep)

    def set_no_new_privileges(self) -> None:
        from pyctr.runtime import capabilities

        capabilities.set_no_new_privileges()

    # -- the last steps
    def close_range(self, first: int) -> None:
        from pyctr.runtime import syscalls

        syscalls.close_range(first)

    def exec_shim(self, shim_fd: int, report_fd: int, executable: str, args: list[str],
                  env: dict[str, str]) -> NoReturn:
        from pyctr.runtime import execshim

        execshim.exec_command(shim_fd, report_fd, executable, args, env)


KERNEL = Kernel()
