"""A recording fake of the process core's kernel seam (pyctr/runtime/process/kernel.py), as youki's
TestHelperSyscall: every privileged call is recorded in order, with its arguments, and none is made.

A mount target given as /proc/self/fd/N (how rootfs names a checked target) is recorded as the path that fd
had, relative to `root` ("/proc" rather than "/tmp/.../merged/proc"), so tests read what was mounted where.
Plain file work (mkdir, symlink, device nodes in a temporary root) still happens for real: the steps that
check their own work (the /dev/null guard of masked paths) see what they would see in a container.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable

from pyctr.runtime.process.kernel import Kernel


class Exec(BaseException):  # noqa: N818 - not an error: the process "exec'd" and the sequence ends here
    """Raised by the fake's exec_shim: the steps ran to their end."""


class RecordingKernel(Kernel):
    def __init__(self, root: str = "") -> None:
        self.root = os.path.realpath(root) if root else ""
        self.calls: list[tuple] = []

    def _where(self, path: str | None) -> str | None:
        if path is not None and path.startswith("/proc/self/fd/"):
            path = os.readlink(path)
        if path is not None and self.root and (path == self.root or path.startswith(self.root + "/")):
            return "/" + path[len(self.root):].lstrip("/")
        return path

    def unshare(self, flags: int) -> None:
        self.calls.append(("unshare", flags))

    def setns(self, fd: int, nstype: int) -> None:
        self.calls.append(("setns", nstype))

    def sethostname(self, name: str) -> None:
        self.calls.append(("sethostname", name))

    def bring_loopback_up(self) -> None:
        self.calls.append(("bring_loopback_up",))

    def set_parent_death_signal(self, signum: int) -> None:
        self.calls.append(("set_parent_death_signal", int(signum)))

    def set_dumpable(self, dumpable: bool) -> None:
        self.calls.append(("set_dumpable", dumpable))

    def seal_imports(self) -> None:
        self.calls.append(("seal_imports",))

    def mount(self, source, target, fstype, flags=0, data=None) -> None:
        self.calls.append(("mount", self._where(source), self._where(target), fstype, flags, data))

    def umount2(self, target: str, flags: int = 0) -> None:
        self.calls.append(("umount2", target, flags))

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self.calls.append(("pivot_root", self._where(os.getcwd()), new_root, put_old))

    def mknod(self, name: str, mode: int, device: int, dir_fd: int) -> None:
        os.mknod(name, mode, device, dir_fd=dir_fd)  # in the temporary root: the /dev/null guard checks it
        self.calls.append(("mknod", name))

    def seccomp_set_filter(self, program: bytes) -> None:
        self.calls.append(("seccomp_set_filter", len(program)))

    def drop_bounding_set(self, keep: list[str]) -> None:
        self.calls.append(("drop_bounding_set", sorted(keep)))

    def clear_inheritable_and_ambient(self) -> None:
        self.calls.append(("clear_inheritable_and_ambient",))

    def keep_capabilities_across_setuid(self, keep: bool) -> None:
        self.calls.append(("keep_capabilities_across_setuid", keep))

    def setgroups(self, gids: list[int]) -> None:
        self.calls.append(("setgroups", list(gids)))

    def setgid(self, gid: int) -> None:
        self.calls.append(("setgid", gid))

    def setuid(self, uid: int) -> None:
        self.calls.append(("setuid", uid))

    def limit_permitted_and_effective(self, keep: list[str]) -> None:
        self.calls.append(("limit_permitted_and_effective", sorted(keep)))

    def set_no_new_privileges(self) -> None:
        self.calls.append(("set_no_new_privileges",))

    def close_range(self, first: int) -> None:
        self.calls.append(("close_range", first))

    def exec_shim(self, shim_fd, report_fd, executable, args, env):
        self.calls.append(("exec_shim", executable, list(args), sorted(env)))
        raise Exec


def record_in_child(steps: Callable[[RecordingKernel], None], kernel: RecordingKernel) -> tuple[list[list], str]:
    """Run `steps` in a forked child (they setsid, dup onto 0/1/2, chdir: never in the test process);
    return the calls it made, as lists, and "exec" or the exception that ended it."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        out = fcntl.fcntl(write_end, fcntl.F_DUPFD_CLOEXEC, 200)  # above what the steps move onto 3 and 4
        end = "returned"
        try:
            steps(kernel)
        except Exec:
            end = "exec"
        except BaseException as e:  # noqa: BLE001 - reported to the test
            end = f"{type(e).__name__}: {e}"
        finally:
            data = json.dumps({"calls": kernel.calls, "end": end}, default=repr).encode()
            while data:
                data = data[os.write(out, data):]
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        result = json.loads(f.read())
    os.waitpid(pid, 0)
    return result["calls"], result["end"]
