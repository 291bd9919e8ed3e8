"""System endpoints: /_ping, /version, /info, /system/df, /auth, /events."""

from __future__ import annotations

import os
import platform
import time

from pyctr import __version__
from pyctr.api.http import Request
from pyctr.api.routes import MAX_API_VERSION, MIN_API_VERSION, route, version_text
from pyctr.api.service import config


def ping_headers() -> dict[str, str]:
    """What /_ping answers with beyond `OK`: how the client negotiates the version and picks its builder."""
    return {"API-Version": version_text(MAX_API_VERSION), "Builder-Version": "1", "Docker-Experimental": "false",
            "OSType": "linux", "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}


@route("GET", "/_ping")
def ping(request: Request) -> None:
    request.send_bytes(b"OK", headers=ping_headers())


@route("HEAD", "/_ping")
def ping_head(request: Request) -> None:
    request.send_bytes(b"", headers=ping_headers())


def version_document() -> dict:
    """dockerd's /version, with pyctr's own version and Python in place of Go."""
    from pyctr.platform_info import host_platform

    os_name, arch, _variant = host_platform()
    common = {"Version": __version__, "ApiVersion": version_text(MAX_API_VERSION),
              "MinAPIVersion": version_text(MIN_API_VERSION), "GitCommit": "",
              "GoVersion": f"python{platform.python_version()}",
              "Os": os_name, "Arch": arch, "KernelVersion": os.uname().release, "BuildTime": ""}
    return {"Platform": {"Name": "pyctr"},
            "Components": [{"Name": "Engine", "Version": __version__,
                            "Details": {k: v for k, v in common.items() if k != "Version"}
                            | {"Experimental": "false"}}],
            **common}


@route("GET", "/version")
def version(request: Request) -> None:
    request.send_json(version_document())


def info_document() -> dict:
    """The fields of dockerd's /info that clients read (counts, driver, cgroup, OS, resources)."""
    from pyctr.image.store import ImageStore
    from pyctr.runtime.cgroups import current_mode
    from pyctr.runtime.state import ContainerStore

    cfg = config()
    records = ContainerStore(cfg.paths).list()
    states = [r.state.status for r in records]
    try:
        cgroup_version = str(current_mode().version)
    except Exception:  # noqa: BLE001 - informational
        cgroup_version = "2"
    uname = os.uname()
    return {
        "ID": "", "Containers": len(records), "ContainersRunning": states.count("running"),
        "ContainersPaused": states.count("paused"), "ContainersStopped": len(records) - states.count("running")
        - states.count("paused"), "Images": len(ImageStore(cfg.paths).list_images()), "Driver": "overlay2",
        "DriverStatus": [],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True,
        "PidsLimit": True, "IPv4Forwarding": True, "Debug": False, "NFd": len(os.listdir("/proc/self/fd")),
        "NGoroutines": 0, "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": cgroup_version,
        "KernelVersion": uname.release, "OperatingSystem": _os_name(), "OSVersion": "", "OSType": "linux",
        "Architecture": uname.machine, "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(),
        "IndexServerAddress": "https://index.docker.io/v1/", "RegistryConfig": {
            "InsecureRegistryCIDRs": [], "IndexConfigs": {}, "Mirrors": list(cfg.registry_mirrors)},
        "DockerRootDir": str(cfg.root), "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": uname.nodename,
        "Labels": [], "ExperimentalBuild": False, "ServerVersion": __version__,
        "Runtimes": {"pyctr": {"path": "pyctr"}},
        "DefaultRuntime": "pyctr", "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=default"], "Warnings": None,
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0


@route("GET", "/info")
def info(request: Request) -> None:
    request.send_json(info_document())


@route("POST", "/auth")
def auth(request: Request) -> None:
    """Credentials are checked by the registry at pull/push time; pyctr keeps none in the daemon."""
    request.json(default={})
    request.send_json({"Status": "Login Succeeded", "IdentityToken": ""})


@route("GET", "/system/df")
def system_df(request: Request) -> None:
    from pyctr.api import documents
    from pyctr.image.store import ImageStore
    from pyctr.runtime.listing import ps_items
    from pyctr.runtime.state import ContainerStore

    cfg = config()
    store = ImageStore(cfg.paths)
    images = [documents.image_summary(image, tag_rows=None) for image in store.list_images()]
    records = ContainerStore(cfg.paths).list()
    containers = [documents.container_summary(item, record)
                  for item, record in zip(ps_items(records), records, strict=True)]
    request.send_json({"LayersSize": sum(i["Size"] for i in images), "Images": images, "Containers": containers,
                       "Volumes": [], "BuildCache": []})
