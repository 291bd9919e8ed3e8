"""The container lifecycle through the real CLI: foreground runs, exit codes, create/start, inspect, rm, kill, wait.

Every test runs `pyctr` as a subprocess against a module root into which busybox was pulled from the session
registry, and removes what it created (the module fixture checks that nothing is left behind).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from tests.helpers import DOCKER_HOST_CONFIG
from tests.integration.conftest import PYCTR_BIN
from tests.integration.helpers import leftovers, lifecycle_runner, proc_gone, removed_after


@pytest.fixture(scope="module")
def lc(pyctr_config, tmp_path_factory):
    yield from lifecycle_runner(pyctr_config, tmp_path_factory, "lifecycle")


@pytest.fixture
def cleanup(lc):
    yield from removed_after(lc)


def test_run_prints_output_and_exits_0(lc):
    r = lc("run", "--rm", "--network", "none", "busybox", "echo", "hello", "world")
    assert (r.returncode, r.stdout, r.stderr) == (0, "hello world\n", "")


def test_stdout_and_stderr_are_separate(lc):
    r = lc("run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (r.stdout, r.stderr) == ("out\n", "err\n")


@pytest.mark.parametrize("argv,code", [
    (["false"], 1), (["sh", "-c", "exit 3"], 3), (["sh", "-c", "sleep 10 & kill -9 $!; wait $!"], 137),
    (["nosuchcommand"], 127), (["/etc/passwd"], 126),
])
def test_exit_codes_are_dockers(lc, argv, code):
    r = lc("run", "--rm", "--network", "none", "busybox", *argv)
    assert r.returncode == code, r.stderr
    if code in (126, 127):
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_pyctr_errors_are_125(lc):
    r = lc("run", "--rm", "--network", "none", "--memory", "1k", "busybox", "true")
    assert r.returncode == 125 and "Minimum memory limit" in r.stderr
    r = lc("run", "--rm", "--name", "-bad", "busybox", "true")
    assert r.returncode == 125 and "Invalid container name" in r.stderr
    r = lc("stop", "nosuchcontainer")  # docker-cli: any command but run/create exits 1
    assert r.returncode == 1
    assert r.stderr.strip() == "Error response from daemon: No such container: nosuchcontainer"


def test_stdin_with_i(lc):
    r = lc("run", "--rm", "-i", "--network", "none", "busybox", "tr", "a-z", "A-Z", input="shout\n")
    assert (r.returncode, r.stdout) == (0, "SHOUT\n")
    r = lc("run", "--rm", "--network", "none", "busybox", "cat", input="ignored\n")
    assert (r.returncode, r.stdout) == (0, "")


def test_rm_leaves_nothing(lc):
    before = set((lc.root / "containers").iterdir()) if (lc.root / "containers").exists() else set()
    assert lc("run", "--rm", "--network", "none", "busybox", "true").returncode == 0
    assert set((lc.root / "containers").iterdir()) == before


def test_foreground_container_is_kept_without_rm_and_logged(lc, cleanup):
    cleanup.append("fg1")
    r = lc("run", "--name", "fg1", "--network", "none", "busybox", "sh", "-c", "echo kept; exit 4")
    assert (r.returncode, r.stdout) == (4, "kept\n")
    assert lc("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "fg1").stdout == "exited 4\n"
    assert lc("logs", "fg1").stdout == "kept\n"


def test_name_conflict(lc, cleanup):
    cleanup.append("dup")
    cid = lc("create", "--name", "dup", "busybox", "true", check=True).stdout.strip()
    r = lc("create", "--name", "dup", "busybox", "true")
    assert r.returncode == 125
    assert r.stderr.strip() == (  # docker-cli's create: `docker: Error response from daemon: ...` + its help line
        f'pyctr: Error response from daemon: Conflict. The container name "/dup" is already in use by container '
        f'"{cid}". You have to remove (or rename) that container to be able to reuse that name.\n'
        "See 'pyctr create --help'.")


def test_create_then_start_attached(lc, cleanup):
    cleanup.append("c1")
    cid = lc("create", "--name", "c1", "--network", "none", "busybox", "sh", "-c", "echo started; exit 2",
             check=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    ps = lc("ps", "-a", "--format", "json").stdout.splitlines()
    row = next(json.loads(line) for line in ps if json.loads(line)["Names"] == "c1")
    assert (row["State"], row["Status"]) == ("created", "Created")
    r = lc("start", "-a", "c1")
    assert (r.returncode, r.stdout) == (2, "started\n")
    r = lc("start", "-a", cid[:12])  # again, by short id
    assert (r.returncode, r.stdout) == (2, "started\n")
    assert lc("inspect", "-f", "{{.RestartCount}}", "c1").stdout.strip() == "0"  # Docker: a start is no restart


def test_inspect_shape(lc, cleanup):
    cleanup.append("insp")
    cid = lc("run", "-d", "--name", "insp", "--network", "none", "-e", "FOO=bar", "-l", "tier=web", "busybox",
             "sleep", "30", check=True).stdout.strip()
    [obj] = json.loads(lc("inspect", "insp", check=True).stdout)
    assert obj["Id"] == cid and obj["Name"] == "/insp"
    assert obj["Path"] == "sleep" and obj["Args"] == ["30"]
    assert obj["Image"].startswith("sha256:")
    state = obj["State"]
    assert set(state) >= {"Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode",
                          "Error", "StartedAt", "FinishedAt"}
    assert state["Status"] == "running" and state["Running"] is True and state["Pid"] > 0
    assert os.path.exists(f"/proc/{state['Pid']}")
    assert obj["Config"]["Hostname"] == cid[:12] and "FOO=bar" in obj["Config"]["Env"]
    assert obj["Config"]["Labels"]["tier"] == "web" and obj["Config"]["Image"] == "busybox"
    assert obj["HostConfig"]["NetworkMode"] == "none"
    assert lc("inspect", "--format", "{{.Id}}", "insp").stdout.strip() == cid
    # images too, and Docker's error for unknown names
    [image] = json.loads(lc("inspect", "busybox", check=True).stdout)
    assert image["Id"] == obj["Image"]
    r = lc("inspect", "nosuchthing")
    assert r.returncode == 1 and "No such object: nosuchthing" in r.stderr


def test_kill_with_signal_and_wait(lc, cleanup):
    cleanup.append("k1")
    lc("run", "-d", "--name", "k1", "--network", "none", "busybox", "sh", "-c",
       "trap 'exit 7' USR1; echo ready; while true; do sleep 0.1; done", check=True)
    deadline = time.monotonic() + 20  # the trap must be in place before the signal, however loaded the machine
    while "ready" not in lc("logs", "k1").stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lc("kill", "-s", "USR1", "k1").stdout == "k1\n"
    r = lc("wait", "k1", timeout=20)
    assert (r.returncode, r.stdout) == (0, "7\n")
    r = lc("kill", "k1")
    assert r.returncode == 1 and "is not running" in r.stderr


def test_kill_default_is_sigkill(lc, cleanup):
    cleanup.append("k2")
    lc("run", "-d", "--name", "k2", "--network", "none", "busybox", "sleep", "60", check=True)
    lc("kill", "k2", check=True)
    assert lc("wait", "k2").stdout == "137\n"


def test_rm_running_needs_force(lc):
    lc("run", "-d", "--name", "r1", "--network", "none", "busybox", "sleep", "60", check=True)
    pid = int(lc("inspect", "-f", "{{.State.Pid}}", "r1").stdout)
    r = lc("rm", "r1")
    assert r.returncode == 1 and "You cannot remove a running container" in r.stderr
    assert lc("rm", "-f", "r1").stdout == "r1\n"
    assert proc_gone(pid)
    assert lc("inspect", "r1").returncode == 1


def test_sigterm_to_cli_is_forwarded(lc):
    env = lc.env
    proc = subprocess.Popen([str(PYCTR_BIN), "run", "--rm", "--network", "none", "busybox", "sh", "-c",
                             "trap 'echo got-term; exit 5' TERM; while true; do sleep 0.1; done"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert (proc.returncode, out) == (5, "got-term\n"), err


def test_restart(lc, cleanup):
    cleanup.append("rs")
    lc("run", "-d", "--name", "rs", "--network", "none", "busybox", "sleep", "60", check=True)
    pid1 = lc("inspect", "-f", "{{.State.Pid}}", "rs").stdout
    assert lc("restart", "-t", "0", "rs").stdout == "rs\n"
    out = lc("inspect", "-f", "{{.State.Status}} {{.State.Pid}} {{.RestartCount}}", "rs").stdout.split()
    # Docker 20.10: RestartCount counts restart-policy restarts only; after `docker restart` it is still 0
    assert out[0] == "running" and out[1] != pid1.strip() and out[2] == "0"


def test_missing_image_is_pulled_first(fresh_pyctr):
    r = fresh_pyctr("run", "--rm", "--network", "none", "busybox", "echo", "pulled", timeout=120)
    assert (r.returncode, r.stdout) == (0, "pulled\n"), r.stderr
    assert r.stderr.startswith("Unable to find image 'busybox:latest' locally\n")
    assert leftovers(fresh_pyctr.root) == []


def test_detached_interactive_keeps_stdin_open(lc, cleanup):
    cleanup.append("di")
    lc("run", "-di", "--name", "di", "--network", "none", "busybox", "cat", check=True)
    time.sleep(1)
    assert lc("inspect", "-f", "{{.State.Status}}", "di").stdout.strip() == "running"


def test_anonymous_volumes_go_with_rm_v_and_auto_remove(lc):
    volumes = lc.root / "volumes"

    def anon() -> list[str]:
        return sorted(p.name for p in volumes.iterdir() if re.fullmatch(r"[0-9a-f]{64}", p.name)) \
            if volumes.exists() else []

    before = anon()
    r = lc("run", "--rm", "--network", "none", "-v", "/data", "busybox", "sh", "-c", "echo x > /data/f; cat /data/f")
    assert r.stdout == "x\n" and anon() == before
    lc("run", "--name", "av", "--network", "none", "-v", "/data", "-v", "named-kept:/n", "busybox", "true", check=True)
    assert len(anon()) == len(before) + 1
    # Docker records it as a local volume named by 64 hex digits (not a bind of a pyctr directory)
    mounts = json.loads(lc("inspect", "-f", "{{json .Mounts}}", "av").stdout)
    [mount] = [m for m in mounts if m["Destination"] == "/data"]
    assert (mount["Type"], mount["Driver"]) == ("volume", "local")
    assert mount["Source"] == str(volumes / mount["Name"] / "_data")
    assert mount["Name"] in anon()
    assert lc("rm", "-v", "av").returncode == 0
    assert anon() == before and (volumes / "named-kept").is_dir()  # rm -v keeps named volumes, as Docker
    shutil.rmtree(volumes / "named-kept")


def test_inspect_of_a_missing_name_names_the_type_asked_for(lc):
    """docker-cli: "No such container" / "No such image" with --type, "No such object" without; exit 1."""
    for args, message in ((["--type", "container"], "No such container: nope"),
                          (["--type", "image"], "No such image: nope"), ([], "No such object: nope")):
        r = lc("inspect", *args, "nope")
        assert (r.returncode, r.stderr.strip()) == (1, f"Error: {message}")


def test_inspect_of_a_plain_run_is_dockers_document(lc, cleanup):
    """The documents Docker 20.10 printed for `docker run -d busybox sleep 60` (values that do not vary)."""
    cleanup.append("doc")
    lc("run", "-d", "--name", "doc", "busybox", "sleep", "60", check=True)
    [doc] = json.loads(lc("inspect", "doc", check=True).stdout)
    host = doc["HostConfig"]
    assert list(host) == list(DOCKER_HOST_CONFIG)  # every key, in Docker's order
    assert host["NetworkMode"] == "default" and host["ShmSize"] == 67108864
    assert host["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0} and host["Devices"] == []
    assert doc["Config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert list(doc["NetworkSettings"]["Networks"]) == ["bridge"] and doc["NetworkSettings"]["IPAddress"]
    assert "HOSTNAME=" + doc["Id"][:12] in lc("exec", "doc", "env", check=True).stdout  # the process has it


def test_ps_size_column(lc, cleanup):
    """`ps -s`: the container's written bytes, then (virtual + the image's), as Docker's SIZE column."""
    cleanup.append("sized")
    lc("run", "-d", "--name", "sized", "--network", "none", "busybox", "sh", "-c",
       "head -c 1000 /dev/zero > /f; sleep 60", check=True)
    from pyctr.units import human_size

    image = human_size(int(lc("image", "inspect", "-f", "{{.Size}}", "busybox", check=True).stdout) + 1000)
    deadline = time.monotonic() + 10
    while True:
        rows = lc("ps", "-s", check=True).stdout.splitlines()
        [row] = [r for r in rows[1:] if "sized" in r]
        if row.endswith(f"1kB (virtual {image})") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows[0].endswith("NAMES     SIZE") and row.endswith(f"sized     1kB (virtual {image})")
