"""/proc/self/mountinfo read the one way the cgroup code needs it: (mount point, fstype, superblock options) per line.

One home for the runtime's cgroup detection (runtime/cgroups), the host cgroup binds of a container without a
cgroup namespace (runtime/rootfs.py) and pyctr-runtime's own cgroup files (oci/cgroupfs.py). Pure and free of
imports: pyctr-runtime's verbs load it on every cold start.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator

# Superblock options of a v1 cgroup hierarchy that name no controller.
NOT_CONTROLLERS = frozenset({"rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", ""})


def mount_entries(text: str) -> Iterator[tuple[str, str, str]]:
    """(mount point with `\\040` unescaped, fstype, superblock options) of each well-formed mountinfo line."""
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5:
            continue
        fstype, _source, superopts = (right.split() + ["", "", ""])[:3]
        yield fields[4].replace("\\040", " "), fstype, superopts


def cgroup_mounts(text: str, named: bool = False) -> tuple[dict[str, str], str | None]:
    """(v1 controller -> its hierarchy's mount point, the first cgroup2 mount point or None). `named`: include
    named v1 hierarchies (`name=systemd`), which hold no controller to limit."""
    v1: dict[str, str] = {}
    unified: str | None = None
    for mount_point, fstype, options in mount_entries(text):
        if fstype == "cgroup2":
            unified = unified or mount_point
        elif fstype == "cgroup":
            for opt in options.split(","):
                if opt in NOT_CONTROLLERS or ("=" in opt and not (named and opt.startswith("name="))):
                    continue
                v1.setdefault(opt, mount_point)
    return v1, unified
