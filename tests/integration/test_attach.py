"""`pyctr attach` through the monitor's attach socket: live output, stdin, the container's exit code, detach
keys leaving the container running, and a stopped container refused."""

from __future__ import annotations

import subprocess
import time
import uuid

from tests.integration.conftest import PYCTR_BIN


def attach(pyctr, *args: str, input: bytes, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([str(PYCTR_BIN), "attach", *args], input=input, capture_output=True, env=pyctr.env,
                          timeout=timeout)


def test_attach_relays_stdin_and_output_and_exits_with_the_container(warm):
    name = f"att-{uuid.uuid4().hex[:6]}"
    warm("run", "-d", "-i", "--name", name, "--network", "none", "busybox", "sh", "-c",
         "read line; echo got:$line; echo to-err >&2; exit 3", check=True)
    try:
        proc = attach(warm, name, input=b"hello\n")
        assert (proc.returncode, proc.stdout, proc.stderr) == (3, b"got:hello\n", b"to-err\n")
        assert warm("inspect", "-f", "{{.State.ExitCode}}", name, check=True).stdout.strip() == "3"
        refused = attach(warm, name, input=b"")
        assert refused.returncode == 1 and b"You cannot attach to a stopped container" in refused.stderr
    finally:
        warm("rm", "-f", name)


def test_detach_keys_leave_the_container_running(warm):
    name = f"att-{uuid.uuid4().hex[:6]}"
    warm("run", "-d", "-i", "--name", name, "--network", "none", "busybox", "cat", check=True)
    try:
        proc = subprocess.Popen([str(PYCTR_BIN), "attach", "--detach-keys", "ctrl-x,x", name],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=warm.env)
        proc.stdin.write(b"echoed\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"echoed\n"
        proc.stdin.write(b"\x18x")
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
        time.sleep(0.2)
        assert warm("inspect", "-f", "{{.State.Running}}", name, check=True).stdout.strip() == "true"
    finally:
        warm("rm", "-f", name)
