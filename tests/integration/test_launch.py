"""Launching containers for real: commands, exit codes, hooks, users, env, workdir, volumes, timing."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from pyctr.errors import CommandCannotRun, CommandNotFound, RuntimeFailure
from pyctr.runtime.process import LaunchHooks, Stdio, launch, wait_container
from tests.integration.container_rootfs import Runner, build_busybox_rootfs


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    base = tmp_path_factory.mktemp("launch")
    yield Runner(base, [build_busybox_rootfs(base / "lower")])
    shutil.rmtree(base, ignore_errors=True)


def test_hello_world(runner):
    result = runner.run("echo", "Hello", "World")
    assert (result.code, result.stdout, result.stderr) == (0, "Hello World\n", "")


def test_image_cmd_used_when_no_command(runner):
    result = runner.run(image_config={"Cmd": ["echo", "from-cmd"]})
    assert result.stdout == "from-cmd\n"


def test_exit_code(runner):
    assert runner.run("sh", "-c", "exit 1").code == 1
    assert runner.run("sh", "-c", "exit 42").code == 42


def test_killed_by_signal_is_128_plus_n(runner):
    def kill(pid, spec):
        time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)

    assert runner.run("sleep", "30", while_running=kill).code == 137


def test_command_not_found_is_127(runner):
    with pytest.raises(CommandNotFound) as info:
        runner.run("nosuch")
    assert info.value.exit_code == 127
    assert str(info.value) == 'exec: "nosuch": executable file not found in $PATH'
    with pytest.raises(CommandNotFound, match=r'exec: "/nosuch": stat /nosuch: no such file or directory'):
        runner.run("/nosuch")


def test_not_executable_is_126(runner):
    with pytest.raises(CommandCannotRun) as info:
        runner.run("/etc/notexec")
    assert info.value.exit_code == 126
    assert str(info.value) == 'exec: "/etc/notexec": permission denied'
    with pytest.raises(CommandCannotRun):
        runner.run("/etc")


def test_failed_launch_leaves_no_child(runner):
    pids = []
    with pytest.raises(CommandNotFound):
        runner.run("nosuch", hooks=LaunchHooks(before_exec=pids.append))
    with pytest.raises(ChildProcessError):  # already reaped by launch
        os.waitpid(pids[0], os.WNOHANG)


def test_hook_runs_before_exec_with_container_pid(runner):
    seen = {}

    def before_exec(pid):
        seen["pid"] = pid
        seen["netns"] = os.readlink(f"/proc/{pid}/ns/net")
        seen["exe"] = os.readlink(f"/proc/{pid}/exe")  # still the launcher: nothing exec'd yet
        (runner.root / "hook-ran").write_text("yes")

    result = runner.run("cat", "/proc/self/status", hooks=LaunchHooks(before_exec=before_exec))
    assert seen["pid"] == result.pid
    assert seen["netns"] != os.readlink("/proc/self/ns/net")
    assert "busybox" not in seen["exe"]


def test_hook_failure_kills_container_and_propagates(runner):
    pids = []

    def before_exec(pid):
        pids.append(pid)
        raise RuntimeFailure("cgroup setup failed")

    with pytest.raises(RuntimeFailure, match="cgroup setup failed"):
        runner.run("sleep", "30", hooks=LaunchHooks(before_exec=before_exec))
    with pytest.raises(ChildProcessError):
        os.waitpid(pids[0], os.WNOHANG)


def test_launcher_children_stay_in_host_pid_namespace(runner):
    runner.run("true")
    assert os.readlink("/proc/self/ns/pid_for_children") == os.readlink("/proc/self/ns/pid")


def test_environment(runner):
    result = runner.run("env", image_config={"Cmd": ["sh"], "Env": ["FOO=bar"]}, env=["X=1"])
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert env["FOO"] == "bar" and env["X"] == "1" and env["HOME"] == "/root"
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["HOSTNAME"] == result.spec.hostname


def test_numeric_user_not_in_passwd(runner):
    result = runner.run("sh", "-c", "id -u; id -g; echo $HOME", user="1234")
    assert result.stdout.split() == ["1234", "0", "/"]


def test_user_1000_and_app(runner):
    assert runner.run("id", "-u", user="1000").stdout.strip() == "1000"
    result = runner.run("sh", "-c", "id -u; id -g; id -G; echo $HOME", user="app")
    assert result.stdout.split() == ["1000", "1000", "1000", "50", "/home/app"]
    assert runner.run("id", "-G", user="app:staff").stdout.split() == ["50"]


def test_unknown_user_is_runtime_failure(runner):
    with pytest.raises(RuntimeFailure, match="unable to find user nosuch: no matching entries in passwd file"):
        runner.run("true", user="nosuch")


def test_non_root_has_no_effective_capabilities(runner):
    status = runner.run("cat", "/proc/self/status", user="app").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["CapEff"].strip() == "0000000000000000"
    assert fields["CapPrm"].strip() == "0000000000000000"
    assert fields["CapBnd"].strip() == "00000000a80425fb"
    assert fields["CapInh"].strip() == fields["CapAmb"].strip() == "0000000000000000"


def test_cap_drop_and_no_new_privileges(runner):
    status = runner.run("cat", "/proc/self/status", cap_drop=["ALL"], cap_add=["CHOWN"],
                        security_opt=["no-new-privileges"]).stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["CapEff"].strip() == fields["CapBnd"].strip() == "0000000000000001"
    assert fields["NoNewPrivs"].strip() == "1"


def test_workdir_is_created_and_entered(runner):
    assert runner.run("pwd", workdir="/new/dir").stdout == "/new/dir\n"


def test_read_only_rootfs(runner):
    result = runner.run("sh", "-c", "touch /x 2>&1; echo rc=$?; echo ok > /dev/shm/y && cat /dev/shm/y",
                        read_only=True)
    assert "Read-only file system" in result.stdout and "rc=1" in result.stdout and "ok" in result.stdout


def test_writes_land_in_upper_dir(runner):
    result = runner.run("sh", "-c", "echo data > /newfile")
    assert (Path(result.spec.rootfs.upperdir) / "newfile").read_text() == "data\n"
    assert not (runner.lowerdirs[0] / "newfile").exists()


def test_bind_and_named_volumes(runner, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    (host / "in").write_text("from host\n")
    result = runner.run("sh", "-c", "cat /data/in; echo back > /data/out; echo x > /ro/f 2>/dev/null; echo rc=$?;"
                        "echo named > /vol/file", volumes=[f"{host}:/data", f"{host}:/ro:ro", "myvol:/vol"])
    assert result.stdout == "from host\nrc=1\n"
    assert (host / "out").read_text() == "back\n"
    assert (runner.root / "volumes" / "myvol" / "_data" / "file").read_text() == "named\n"


def test_etc_files_come_from_the_bundle(runner):
    result = runner.run("sh", "-c", "cat /etc/hostname; grep -c localhost /etc/hosts", hostname="webhost")
    assert result.stdout.split() == ["webhost", "2"]


def test_stdin_is_dev_null_without_interactive(runner):
    assert runner.run("cat").stdout == ""


def test_interactive_stdin_pipe(runner):
    spec = runner.spec(["cat"], interactive=True)
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    launched = launch(spec, stdio=Stdio(r, out_w, 2))
    os.close(r)
    os.close(out_w)
    os.write(w, b"piped input\n")
    os.close(w)
    data = b""
    while chunk := os.read(out_r, 4096):
        data += chunk
    os.close(out_r)
    assert wait_container(launched.pid) == 0 and data == b"piped input\n"


def test_launch_of_true_is_fast(runner, capsys):
    timings = []
    for _ in range(5):
        spec = runner.spec(["true"])
        start = time.perf_counter()
        launched = launch(spec)
        launched_at = time.perf_counter()
        assert wait_container(launched.pid) == 0
        timings.append((launched_at - start, time.perf_counter() - start))
    best_launch = min(t[0] for t in timings)
    best_total = min(t[1] for t in timings)
    with capsys.disabled():
        print(f"\nlaunch(true): {best_launch * 1000:.0f} ms to exec, {best_total * 1000:.0f} ms to exit (best of 5)")
    assert best_total < 1.0


def test_busybox_image_from_the_store(registry, pyctr_config, tmp_path):
    """The real path: pull the seed busybox image into a store, then run it from its layer dirs."""
    from pyctr.config import load_config
    from pyctr.image.pull import pull
    from pyctr.image.store import ImageStore

    config = load_config(root=str(tmp_path / "root"), config_file=str(pyctr_config))
    pull(config, registry.reference("busybox"), quiet=True)
    record = ImageStore(config.paths).resolve(registry.reference("busybox"))
    runner = Runner(tmp_path, record.layer_dirs)
    result = runner.run("sh", "-c", "echo Hello World; echo $$; cat /etc/hostname", image_config=record.config)
    assert result.stdout.split("\n")[:2] == ["Hello World", "1"]
    assert result.stdout.split("\n")[2] == result.spec.id[:12]
    assert runner.run(image_config=record.config).code == 0  # the image's own Cmd (sh, stdin /dev/null)


def test_init_runs_docker_init_as_pid_1(runner):
    result = runner.run("sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$", init=True)
    first, shell_pid = result.stdout.splitlines()
    assert first.startswith("/sbin/docker-init -- sh -c") and shell_pid != "1"
    assert result.code == 0
    assert runner.run("sh", "-c", "exit 7", init=True).code == 7


def test_read_only_rootfs_still_creates_workdir(runner):
    assert runner.run("pwd", workdir="/made/here", read_only=True).stdout == "/made/here\n"
