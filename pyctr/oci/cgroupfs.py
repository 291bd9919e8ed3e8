"""An OCI container's cgroup directories, with plain file I/O: found, made, joined, written, emptied, removed.

`create` and `delete` are cold starts a caller waits for (containerd's shim, podman), and importing
pyctr.runtime.cgroups (its layout, limits and manager modules, and the dataclasses they are made of) took
longer than all their cgroup work together. So the few steps the OCI verbs take live here on `os` alone;
`parse_mountinfo` reads mountinfo as runtime/cgroups does (tests/unit/test_oci_cgroupfs.py holds the two
to the same answers). pause and resume still use runtime/cgroups/freezer.py (nobody waits on those).

A container's cgroup is `dirs`: controller -> directory (v1, co-mounted controllers share one), or {"": dir}
on pure v2; it is what state.json keeps.
"""

from __future__ import annotations

import os
import time

from pyctr.oci.errors import LaunchError

_mounts: list = []  # this process's answer of mounts(): mounts do not change while a verb runs


def parse_mountinfo(text: str) -> tuple[dict[str, str], str | None]:
    """(v1 controller -> mount point, the unified (v2) mount point or None) from /proc/self/mountinfo text.
    Named v1 hierarchies (name=systemd) are left out: they hold no controller to limit. Pure."""
    from pyctr.runtime.mountinfo import cgroup_mounts

    return cgroup_mounts(text)


def mounts() -> tuple[dict[str, str], str | None]:
    """This machine's cgroup mounts: v1 controllers (v1 or hybrid) or, when there are none, the v2 mount."""
    if not _mounts:
        with open("/proc/self/mountinfo") as f:
            _mounts.append(parse_mountinfo(f.read()))
    return _mounts[0]


def is_v2() -> bool:
    v1, _unified = mounts()
    return not v1


def caller_cgroup(controller: str, proc_cgroup: str | None = None) -> str:
    """The caller's cgroup path in `controller`'s hierarchy ("" = the v2 one), for a relative cgroupsPath."""
    if proc_cgroup is None:
        try:
            with open("/proc/self/cgroup") as f:
                proc_cgroup = f.read()
        except OSError:
            return "/"
    for line in proc_cgroup.splitlines():
        _, names, path = line.split(":", 2)
        if (controller == "" and names == "") or controller in names.split(","):
            return path
    return "/"


def container_dirs(relative: dict[str, str]) -> dict[str, str]:
    """controller -> the container's directory, given controller -> its path below the mount ("" on v2)."""
    v1, unified = mounts()
    if not v1:
        return {"": unified + relative[""]} if unified is not None and "" in relative else {}
    return {controller: mount + relative[controller] for controller, mount in v1.items() if controller in relative}


def write_value(directory: str, name: str, value: object) -> None:
    """One value with one write(2) (the kernel parses each write alone), O_TRUNC as `echo >` does."""
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LaunchError(f"cgroup file {path} does not exist") from None
    try:
        os.write(fd, str(value).encode())
    except OSError as e:
        raise LaunchError(f"cannot write {value!r} to {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def read_text(path: str) -> str:
    """A cgroup file's text; "" when it (or its cgroup) is gone."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def make_and_join(dirs: dict[str, str], pid: int) -> None:
    """Make every directory (a new v1 cpuset inherits cpus and mems) and move `pid` into each."""
    for directory in dict.fromkeys(dirs.values()):
        os.makedirs(directory, exist_ok=True)
    if "cpuset" in dirs:
        _inherit_cpuset(dirs["cpuset"])
    for directory in dict.fromkeys(dirs.values()):
        write_value(directory, "cgroup.procs", pid)


def _inherit_cpuset(directory: str) -> None:
    """A new v1 cpuset directory is empty: copy cpus and mems down from the nearest ancestor that has them."""
    chain = [directory]
    while os.path.dirname(chain[-1]) != chain[-1] and not read_text(os.path.join(chain[-1], "cpuset.cpus")).strip():
        chain.append(os.path.dirname(chain[-1]))
    for child in reversed(chain[:-1]):
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not read_text(os.path.join(child, name)).strip():
                write_value(child, name, read_text(os.path.join(os.path.dirname(child), name)).strip())


def pids(dirs: dict[str, str]) -> list[int]:
    found: set[int] = set()
    for directory in dict.fromkeys(dirs.values()):
        found.update(int(x) for x in read_text(os.path.join(directory, "cgroup.procs")).split() if x.isdigit())
    return sorted(found)


def remove(dirs: dict[str, str], timeout: float = 5.0) -> None:
    """Remove the directories (never their parents: those are the caller's). An rmdir that finds the cgroup
    busy kills what is left in it and tries again; an empty cgroup costs one rmdir per directory."""
    deadline = time.monotonic() + timeout
    for directory in dict.fromkeys(dirs.values()):
        while True:
            try:
                os.rmdir(directory)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != 16 or time.monotonic() > deadline:  # EBUSY: processes, or the last still leaving
                    break
            for pid in pids({"": directory}):
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.002)
