"""Capability sets: Docker's defaults and --cap-add/--cap-drop (pure), and dropping them (python-prctl).

This is the only module that imports prctl, and only inside `apply_capabilities`,
so `pyctr ps` never pays for it. Inheritable and ambient sets are always left
empty (CVE-2022-29162: a non-empty inheritable set lets a program with file
inheritable capabilities gain them on exec even as non-root); only pyctr-runtime
sets them, to what an OCI config.json names (`set_capability_sets`).
"""

from __future__ import annotations

from pyctr.errors import UsageError

# Bit number -> name, as in linux/capability.h (0..40 on Linux 5.9+).
CAPABILITY_BITS: dict[str, int] = {
    name: bit
    for bit, name in enumerate(
        (
            "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
            "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
            "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
            "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
            "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
            "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
            "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
        )
    )
}
ALL_CAPABILITIES: tuple[str, ...] = tuple(CAPABILITY_BITS)

# moby's oci/caps/defaults.go, in its order.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)


def normalize_capabilities(names: list[str]) -> list[str]:
    """Upper-case and CAP_-prefix each name (Docker accepts both); 'ALL' stays 'ALL'."""
    result = []
    for raw in names:
        name = raw.strip().upper()
        if name == "ALL":
            result.append("ALL")
            continue
        if not name.startswith("CAP_"):
            name = "CAP_" + name
        if name not in CAPABILITY_BITS:
            raise UsageError(f'unknown capability: "{name}"')
        result.append(name)
    return result


def tweak_capabilities(add: list[str], drop: list[str], privileged: bool = False) -> list[str]:
    """Docker's TweakCapabilities: the capability list a container gets."""
    if privileged:
        return list(ALL_CAPABILITIES)
    if not add and not drop:
        return list(DEFAULT_CAPABILITIES)
    cap_add, cap_drop = normalize_capabilities(add), normalize_capabilities(drop)
    if "ALL" in cap_add:
        caps = [c for c in ALL_CAPABILITIES if c not in cap_drop]
    elif "ALL" in cap_drop:
        caps = [c for c in cap_add if c != "ALL"]
    else:
        caps = [c for c in DEFAULT_CAPABILITIES if c not in cap_drop] + cap_add
    return list(dict.fromkeys(caps))


def capability_mask(names: list[str]) -> int:
    """The bit mask as /proc/<pid>/status shows it (CapBnd etc.)."""
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITY_BITS[name]
    return mask


def read_last_cap(path: str = "/proc/sys/kernel/cap_last_cap") -> int:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return max(CAPABILITY_BITS.values())


def preload() -> None:
    """Import python-prctl in the launcher, so the forked container process finds it already loaded."""
    import prctl  # noqa: F401


def drop_bounding_set(keep: list[str]) -> None:
    """Remove every capability not in `keep` from the bounding set (needs CAP_SETPCAP: do it as root)."""
    import _prctl

    wanted = {CAPABILITY_BITS[c] for c in keep}
    for bit in range(read_last_cap() + 1):
        if bit not in wanted and _prctl.prctl(_prctl.PR_CAPBSET_READ, bit):
            _prctl.prctl(_prctl.PR_CAPBSET_DROP, bit)


def clear_inheritable_and_ambient() -> None:
    import prctl

    from pyctr.runtime import syscalls

    prctl.cap_inheritable.limit()
    syscalls.clear_ambient_capabilities()


def keep_capabilities_across_setuid(keep: bool) -> None:
    """PR_SET_KEEPCAPS, so permitted capabilities survive the setuid to a non-root user until exec."""
    import prctl

    prctl.set_keepcaps(keep)


def limit_permitted_and_effective(keep: list[str]) -> None:
    """Reduce permitted and effective to `keep` (capabilities the prctl library cannot name stay out)."""
    import prctl

    names = [c[4:].lower() for c in keep if c[4:].lower() in prctl.ALL_CAP_NAMES]
    prctl.cap_effective.limit(*names)
    prctl.cap_permitted.limit(*names)


def set_no_new_privileges() -> None:
    import prctl

    prctl.set_no_new_privs(1)


def set_dumpable(dumpable: bool) -> None:
    """A non-dumpable process's /proc/<pid> files are root-owned and ptrace-proof (CVE-2019-5736 defence)."""
    import prctl

    prctl.set_dumpable(1 if dumpable else 0)


def set_capability_sets(effective: list[str], permitted: list[str], inheritable: list[str],
                        ambient: list[str]) -> None:
    """The OCI runtime's five sets (the bounding set is `drop_bounding_set`): each of effective, permitted and
    inheritable becomes exactly the names given (unknown to this kernel: left out), then ambient ones are
    raised (they must be permitted and inheritable). Used by pyctr-runtime, whose config names every set."""
    import _prctl
    import prctl

    from pyctr.runtime import syscalls

    last = read_last_cap()
    known = [cap for cap in prctl.ALL_CAPS if cap <= last]

    def bits(names: list[str]) -> set[int]:
        return {CAPABILITY_BITS[n] for n in names if n in CAPABILITY_BITS and CAPABILITY_BITS[n] <= last}

    args = []
    for flag, names in ((_prctl.CAP_EFFECTIVE, effective), (_prctl.CAP_PERMITTED, permitted),
                        (_prctl.CAP_INHERITABLE, inheritable)):
        wanted = bits(names)
        args += [(sorted(wanted), flag, True), ([c for c in known if c not in wanted], flag, False)]
    prctl.set_caps(*args)
    syscalls.clear_ambient_capabilities()
    for bit in sorted(bits(ambient)):
        syscalls.prctl(syscalls.PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, bit)


PR_CAP_AMBIENT_RAISE = 2
