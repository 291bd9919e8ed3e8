"""A tiny busybox root filesystem and a `run` helper for runtime tests that must not depend on the image store.

The rootfs is Debian's static /bin/busybox (package busybox-static) with its applet
links and a minimal /etc/passwd and /etc/group, used as the single overlay lower dir.
`run_container` drives the real runtime API (make_spec + launch + wait_container)
with stdout/stderr captured in files, and checks no mount leaked onto the host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyctr.runtime.process import LaunchHooks, Stdio, launch, wait_container
from pyctr.runtime.spec import ContainerSpec, RunOptions, make_spec

BUSYBOX = Path("/bin/busybox")
PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
GROUP = "root:x:0:\nwheel:x:10:root\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n"


def build_busybox_rootfs(dest: Path) -> Path:
    """Write a busybox rootfs into `dest` (fails, not skips, when busybox-static is missing)."""
    if not BUSYBOX.exists():
        pytest.fail("/bin/busybox is missing: apt-get install busybox-static (make deb)", pytrace=False)
    for d in ("bin", "etc", "root", "home/app", "tmp", "proc", "sys", "dev", "mnt"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    os.chown(dest / "home/app", 1000, 1000)
    shutil.copy2(BUSYBOX, dest / "bin/busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (dest / "bin" / applet).symlink_to("busybox")
    (dest / "etc/passwd").write_text(PASSWD)
    (dest / "etc/group").write_text(GROUP)
    (dest / "etc/notexec").write_text("#!/bin/sh\necho nope\n")
    return dest


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    spec: ContainerSpec
    pid: int


class Runner:
    """run(*command, **RunOptions fields) -> Result; errors from launch propagate (PyctrError)."""

    def __init__(self, base: Path, lowerdirs: list[Path]):
        self.base = base
        self.lowerdirs = lowerdirs
        self.root = base / "pyctr-root"

    def spec(self, command: list[str], image_config: dict | None = None, **flags) -> ContainerSpec:
        container_id = uuid.uuid4().hex + uuid.uuid4().hex
        bundle = self.root / "containers" / container_id
        bundle.mkdir(parents=True)
        flags.setdefault("network", "none")
        options = RunOptions(image="test-busybox", command=list(command), **flags)
        return make_spec(image_config or {"Cmd": ["sh"]}, options, container_id, "test", bundle,
                         self.lowerdirs, volumes_root=self.root / "volumes")

    def run(self, *command: str, image_config: dict | None = None, hooks: LaunchHooks | None = None,
            while_running=None, **flags) -> Result:
        spec = self.spec(list(command), image_config, **flags)
        return self.run_spec(spec, hooks=hooks, while_running=while_running)

    def run_spec(self, spec: ContainerSpec, hooks: LaunchHooks | None = None, while_running=None) -> Result:
        out_path, err_path = spec.bundle / "test-stdout", spec.bundle / "test-stderr"
        stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            launched = launch(spec, hooks, Stdio(stdin, out, err))
        finally:
            for fd in (stdin, out, err):
                os.close(fd)
        if while_running is not None:
            try:
                while_running(launched.pid, spec)
            finally:
                code = wait_container(launched.pid)
        else:
            code = wait_container(launched.pid)
        assert_no_leaked_mounts(spec)
        return Result(code, out_path.read_text(), err_path.read_text(), spec, launched.pid)


def assert_no_leaked_mounts(spec: ContainerSpec) -> None:
    """Every container mount lives in the container's mount namespace: none may show on the host."""
    mountinfo = Path("/proc/self/mountinfo").read_text()
    assert spec.bundle_dir not in mountinfo, "a container mount leaked into the host mount namespace"
