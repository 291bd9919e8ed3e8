"""plan_exec: what `pyctr exec` decides before touching the kernel (namespaces, env, user, caps, errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyctr.errors import CommandCannotRun, ConflictError, UsageError
from pyctr.runtime.capabilities import ALL_CAPABILITIES, DEFAULT_CAPABILITIES
from pyctr.runtime.exec import (
    EXEC_FAILED_PREFIX,
    ExecOptions,
    exec_env,
    exec_failure,
    namespaces_to_join,
    plan_exec,
)
from pyctr.runtime.spec import RunOptions, make_spec
from pyctr.runtime.state import ContainerState

CID = "0123456789ab" + "c" * 52
BUNDLE = Path("/var/lib/pyctr/containers") / CID
RUNNING = ContainerState(status="running", pid=4242, pid_start_time=777)


def container_spec(**flags):
    config = {"Cmd": ["sleep", "1000"], "Env": ["IMAGE_VAR=1", "PATH=/image/bin"], "WorkingDir": "/srv",
              "User": "app"}
    return make_spec({"config": config}, RunOptions(image="busybox", **flags), CID, "focused_benz", BUNDLE,
                     [Path("/l/base")], host_env={}, host_cpus=2)


def plan(options: ExecOptions, state: ContainerState = RUNNING, host_env: dict | None = None, **flags):
    return plan_exec(CID, container_spec(**flags), state, options, host_env or {})


def test_joins_every_namespace_with_mount_last():
    p = plan(ExecOptions(["true"]))
    assert [ns.name for ns in p.namespaces] == ["ipc", "uts", "net", "pid", "cgroup", "mount"]
    assert [ns.proc_name for ns in p.namespaces][-1] == "mnt"
    assert (p.pid, p.pid_start_time) == (4242, 777)


def test_host_network_container_keeps_the_host_netns():
    assert "net" not in [ns.name for ns in plan(ExecOptions(["true"]), network="host").namespaces]
    assert [ns.name for ns in namespaces_to_join(["mount", "pid"])] == ["pid", "mount"]


def test_defaults_are_the_container_process():
    p = plan(ExecOptions(["ls", "-l"]))
    process = p.spec.process
    assert process.args == ["ls", "-l"]
    assert process.cwd == "/srv"
    assert process.user == "app"
    assert process.capabilities == list(DEFAULT_CAPABILITIES)
    assert "IMAGE_VAR=1" in process.env and "PATH=/image/bin" in process.env
    assert not any(item.startswith("TERM=") for item in process.env)
    assert (p.tty, p.interactive, p.detach) == (False, False, False)


def test_flags_override_user_workdir_env_and_caps():
    p = plan(ExecOptions(["id"], user="0:0", workdir="/tmp", env=["IMAGE_VAR=2", "NEW=x", "FROM_HOST"],
                         privileged=True, tty=True, interactive=True), host_env={"FROM_HOST": "h"})
    process = p.spec.process
    assert process.user == "0:0"
    assert process.cwd == "/tmp"
    assert process.capabilities == list(ALL_CAPABILITIES)
    assert process.env.index("IMAGE_VAR=2") < process.env.index("NEW=x")  # replaced in place, new appended
    assert "FROM_HOST=h" in process.env and "TERM=xterm" in process.env
    assert (p.tty, p.interactive) == (True, True)
    assert p.container_spec.process.capabilities == list(DEFAULT_CAPABILITIES)  # seccomp stays the container's


def test_empty_user_flag_means_root_not_the_image_user():
    assert plan(ExecOptions(["id"], user="")).spec.process.user == ""


def test_detach_drops_terminal_and_stdin():
    p = plan(ExecOptions(["sleep", "1"], detach=True, tty=True, interactive=True))
    assert (p.tty, p.interactive, p.detach) == (False, False, True)


def test_exec_env_keeps_a_containers_term():
    assert exec_env(["TERM=vt100"], [], True, {}) == ["TERM=vt100"]
    assert exec_env(["A=1"], ["A", "B=2"], False, {}) == ["A=1", "B=2"]
    assert exec_env(["A=1"], ["A"], False, {"A": "host"}) == ["A=host"]


def test_env_from_host_is_dropped_when_unset_there():
    assert exec_env(["A=1"], ["UNSET_ON_HOST"], False, {}) == ["A=1"]


@pytest.mark.parametrize("state", [ContainerState(), ContainerState(status="exited", exit_code=0)])
def test_not_running_is_refused_with_dockers_message(state):
    with pytest.raises(ConflictError, match=f"Container {CID} is not running") as info:
        plan(ExecOptions(["true"]), state=state)
    assert info.value.exit_code == 125


def test_relative_workdir_and_empty_command_are_usage_errors():
    with pytest.raises(UsageError, match="absolute path"):
        plan(ExecOptions(["true"], workdir="tmp"))
    with pytest.raises(UsageError):
        plan(ExecOptions([]))


def test_start_failures_are_126_like_docker_with_runc():
    error = exec_failure("CommandNotFound", 'exec: "nosuch": executable file not found in $PATH')
    assert isinstance(error, CommandCannotRun) and error.exit_code == 126
    assert error.message.startswith(EXEC_FAILED_PREFIX) and "nosuch" in error.message
    assert exec_failure("RuntimeFailure", "unable to find user x").exit_code == 126
