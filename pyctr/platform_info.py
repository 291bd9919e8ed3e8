"""This machine's OCI platform (os/architecture/variant), as registries name it."""

from __future__ import annotations

import os

# uname machine -> (OCI architecture, variant)
_ARCH = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


def host_platform() -> tuple[str, str, str]:
    """(os, architecture, variant) of this machine, e.g. ('linux', 'amd64', '')."""
    machine = os.uname().machine
    arch, variant = _ARCH.get(machine, (machine, ""))
    return "linux", arch, variant
