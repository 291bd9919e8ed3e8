"""What `spec` and `features` print: runc's starter config.json (specconv.Example) and runc's features
document shape (runtime-spec features.md), filled with what pyctr-runtime really does."""

from __future__ import annotations

from pyctr.oci import SUPPORTED_OCI

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
_KERNEL_FS = ["nosuid", "noexec", "nodev"]


def example_spec(cgroup_v2: bool) -> dict:
    """runc spec's document (runc 1.1: libcontainer/specconv/example.go), key order as Go marshals it."""
    namespaces = [{"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount")]
    if cgroup_v2:
        namespaces.append({"type": "cgroup"})
    return {
        "ociVersion": SUPPORTED_OCI,
        "process": {
            "terminal": True, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": list(_CAPS), "effective": list(_CAPS), "permitted": list(_CAPS)},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": _KERNEL_FS + ["mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": list(_KERNEL_FS)},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": _KERNEL_FS + ["ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": _KERNEL_FS + ["relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": namespaces,
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


MOUNT_OPTIONS = sorted([
    "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "loud", "mand", "noatime", "nodev",
    "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid", "nosymfollow", "private", "rbind",
    "relatime", "remount", "ro", "rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "silent",
    "slave", "strictatime", "suid", "symfollow", "sync", "tmpcopyup", "unbindable",
])
SECCOMP_ACTIONS = ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                   "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"]
SECCOMP_OPERATORS = ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                     "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"]


def features(capabilities: list[str], cgroup_v2: bool, archs: list[str]) -> dict:
    """runc features' shape: ociVersionMin/Max, hooks, mountOptions, linux.{namespaces, capabilities, cgroup,
    seccomp, apparmor, selinux}, annotations."""
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SUPPORTED_OCI,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "uts"],
            "capabilities": capabilities,
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True, "actions": SECCOMP_ACTIONS, "operators": SECCOMP_OPERATORS,
                        "archs": archs},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"io.github.pyctr.runtime.cgroup-v2": "true" if cgroup_v2 else "false",
                        "org.opencontainers.runc.checkpoint.enabled": "false"},
    }
