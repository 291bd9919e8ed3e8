"""Probe the kernel features pyctr needs, for `pyctr info`.

Each probe reads files only (no mounts, no links created), so `info` is safe
and fast, and each takes its paths as parameters so unit tests can fake them.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

NAMESPACES = ("mnt", "pid", "uts", "ipc", "net", "cgroup", "user")


@dataclass(frozen=True)
class Feature:
    name: str
    present: bool
    detail: str
    required: bool = True  # a missing optional feature is reported but does not fail `pyctr info`


def probe_overlayfs(proc: Path = Path("/proc"), modules: Path | None = None) -> Feature:
    filesystems = _read(proc / "filesystems")
    if "\toverlay\n" in filesystems + "\n" or filesystems.rstrip().endswith("overlay"):
        return Feature("overlayfs", True, "registered in /proc/filesystems")
    if _module_available("overlay", modules):
        return Feature("overlayfs", True, "loadable kernel module")
    return Feature("overlayfs", False, "not in /proc/filesystems and no overlay module")


def probe_namespaces(proc: Path = Path("/proc")) -> list[Feature]:
    found = []
    for ns in NAMESPACES:
        path = proc / "self" / "ns" / ns
        present = path.exists()
        found.append(Feature(f"namespace {ns}", present,
                             str(path) if present else f"{path} missing: kernel built without it",
                             required=ns != "user"))
    return found


def probe_cgroups(mountinfo: str | None = None) -> Feature:
    from pyctr.runtime.cgroups import detect

    try:
        mode = detect(mountinfo)
    except OSError as e:
        return Feature("cgroups", False, f"cannot read mountinfo: {e.strerror}")
    controllers = ",".join(mode.controllers) or "none"
    if mode.version == 1:
        hybrid = " (hybrid: unified hierarchy also mounted)" if mode.unified else ""
        return Feature("cgroups", True, f"v1{hybrid}; controllers: {controllers}")
    if mode.unified is None:
        return Feature("cgroups", False, "no cgroup filesystem mounted")
    return Feature("cgroups", True, f"v2 at {mode.unified}; controllers: {controllers}")


def probe_device_cgroup(mountinfo: str | None = None) -> Feature:
    from pyctr.runtime.cgroups import DEVICES_V2_NOTE, detect, devices_enforced

    try:
        mode = detect(mountinfo)
    except OSError:
        return Feature("device cgroup", False, "cannot read mountinfo", required=False)
    if devices_enforced(mode):
        return Feature("device cgroup", True, "v1 devices controller: only Docker's default devices usable",
                       required=False)
    return Feature("device cgroup", False, DEVICES_V2_NOTE, required=False)


def probe_veth(sys: Path = Path("/sys"), modules: Path | None = None) -> Feature:
    if (sys / "module" / "veth").exists():
        return Feature("veth", True, "module loaded")
    if _module_available("veth", modules):
        return Feature("veth", True, "loadable kernel module")
    if _builtin("veth", modules):
        return Feature("veth", True, "built into the kernel")
    if _veth_in_scratch_netns():
        return Feature("veth", True, "built in (a veth pair was created in a scratch netns)")
    return Feature("veth", False, "no veth module, and creating a veth pair failed")


def _veth_in_scratch_netns() -> bool:
    """Try a veth pair in a throwaway network namespace: nothing on the host changes."""
    import subprocess

    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if not unshare or not ip:
        return False
    cmd = [unshare, "--net", ip, "link", "add", "p0", "type", "veth", "peer", "name", "p1"]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def probe_firewall() -> Feature:
    nft = shutil.which("nft")
    ipt = shutil.which("iptables")
    if nft:
        return Feature("nftables", True, nft + (f" (iptables fallback: {ipt})" if ipt else ""))
    if ipt:
        return Feature("iptables", True, f"{ipt} (nft not installed)")
    return Feature("nftables/iptables", False, "neither nft nor iptables on PATH")


def probe_seccomp(proc: Path = Path("/proc")) -> Feature:
    status = _read(proc / "self" / "status")
    if "Seccomp:" in status:
        return Feature("seccomp", True, "supported (Seccomp field in /proc/self/status)")
    return Feature("seccomp", False, "kernel without CONFIG_SECCOMP")


def probe_root() -> Feature:
    if os.geteuid() == 0:
        return Feature("root", True, "running as root")
    return Feature("root", False, "pyctr needs root for namespaces, mounts and cgroups")


def probe_all() -> list[Feature]:
    return [
        probe_root(),
        probe_overlayfs(),
        *probe_namespaces(),
        probe_cgroups(),
        probe_device_cgroup(),
        probe_veth(),
        probe_firewall(),
        probe_seccomp(),
    ]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _modules_dir(modules: Path | None) -> Path:
    return modules or Path("/lib/modules") / os.uname().release


def _module_available(name: str, modules: Path | None) -> bool:
    index = _read(_modules_dir(modules) / "modules.dep")
    return f"/{name}.ko" in index


def _builtin(name: str, modules: Path | None) -> bool:
    return f"/{name}.ko" in _read(_modules_dir(modules) / "modules.builtin")
