"""The lifecycle verbs, for real: pause freezing a busy loop, rename, update of a running container's limits in its
cgroup, commit producing a runnable image, export piped into import, diff, container prune and system prune."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import PYCTR_BIN
from tests.integration.helpers import lifecycle_runner, removed_after


@pytest.fixture(scope="module")
def lc(pyctr_config, tmp_path_factory):
    yield from lifecycle_runner(pyctr_config, tmp_path_factory, "lifecycle-verbs")


@pytest.fixture
def cleanup(lc):
    yield from removed_after(lc)


def inspect(lc, name: str) -> dict:
    return json.loads(lc("inspect", name, check=True).stdout)[0]


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def cgroup_file(container_id: str, v1_controller: str, v1_name: str, v2_name: str) -> Path:
    v2 = Path("/sys/fs/cgroup/pyctr") / container_id / v2_name
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return v2
    return Path("/sys/fs/cgroup") / v1_controller / "pyctr" / container_id / v1_name


def ps_status(lc, name: str) -> str:
    for line in lc("ps", "-a", "--format", "{{.Names}}\t{{.Status}}").stdout.splitlines():
        row_name, _, status = line.partition("\t")
        if row_name == name:
            return status
    return ""


def test_pause_freezes_a_busy_loop(lc, cleanup):
    cleanup.append("pz1")
    lc("run", "-d", "--name", "pz1", "--network", "none", "busybox", "sh", "-c", "while :; do :; done", check=True)
    doc = inspect(lc, "pz1")
    pid = doc["State"]["Pid"]
    lc("pause", "pz1", check=True)
    before = cpu_ticks(pid)
    time.sleep(1.0)
    assert cpu_ticks(pid) - before <= 1  # frozen: no CPU time at all (a tick of slack)
    doc = inspect(lc, "pz1")
    assert doc["State"]["Status"] == "paused" and doc["State"]["Paused"] and doc["State"]["Running"]
    assert ps_status(lc, "pz1").endswith("(Paused)")
    r = lc("exec", "pz1", "true")
    assert r.returncode == 1 and "is paused, unpause the container before exec" in r.stderr
    r = lc("pause", "pz1")
    assert r.returncode == 1 and f"Container {doc['Id']} is already paused" in r.stderr
    lc("unpause", "pz1", check=True)
    before = cpu_ticks(pid)
    time.sleep(1.0)
    assert cpu_ticks(pid) - before >= 20  # running again: most of a CPU for a second
    assert inspect(lc, "pz1")["State"]["Status"] == "running"
    r = lc("unpause", "pz1")
    assert r.returncode == 1 and f"Container {doc['Id']} is not paused" in r.stderr


def test_stop_of_a_paused_container(lc, cleanup):
    cleanup.append("pz2")
    lc("run", "-d", "--name", "pz2", "--network", "none", "busybox", "sleep", "60", check=True)
    lc("pause", "pz2", check=True)
    started = time.monotonic()
    lc("stop", "-t", "1", "pz2", check=True)
    assert time.monotonic() - started < 8
    state = inspect(lc, "pz2")["State"]
    assert state["Status"] == "exited" and not state["Paused"]


def test_rename(lc, cleanup):
    cleanup.extend(["rn1", "rn2", "rn3"])
    lc("run", "-d", "--name", "rn1", "--network", "none", "busybox", "sleep", "60", check=True)
    lc("create", "--name", "rn3", "busybox", "true", check=True)
    lc("rename", "rn1", "rn2", check=True)
    names = lc("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert "rn2" in names and "rn1" not in names
    assert inspect(lc, "rn2")["Name"] == "/rn2"
    r = lc("rename", "rn2", "rn3")
    assert r.returncode == 1 and 'Conflict. The container name "/rn3" is already in use' in r.stderr
    r = lc("rename", "rn2", "rn2")
    assert r.returncode == 1 and "Renaming a container with the same name as its current name" in r.stderr
    r = lc("rename", "rn2", "bad/name")
    assert r.returncode == 1 and "Invalid container name (bad/name)" in r.stderr
    lc("exec", "rn2", "true", check=True)  # the running container is unaffected


def test_update_memory_of_a_running_container(lc, cleanup):
    cleanup.append("up1")
    lc("run", "-d", "--name", "up1", "--network", "none", "-m", "64m", "busybox", "sleep", "60", check=True)
    container_id = inspect(lc, "up1")["Id"]
    limit = cgroup_file(container_id, "memory", "memory.limit_in_bytes", "memory.max")
    assert int(limit.read_text()) == 64 * 2**20
    r = lc("update", "-m", "128m", "--pids-limit", "50", "--restart", "on-failure:2", "up1", check=True)
    assert r.stdout == "up1\n"
    assert int(limit.read_text()) == 128 * 2**20
    pids = cgroup_file(container_id, "pids", "pids.max", "pids.max")
    assert pids.read_text().strip() == "50"
    host = inspect(lc, "up1")["HostConfig"]
    assert host["Memory"] == 128 * 2**20 and host["PidsLimit"] == 50
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    r = lc("update", "-m", "1k", "up1")
    assert r.returncode == 1 and "Minimum memory limit allowed is 6MB" in r.stderr
    assert int(limit.read_text()) == 128 * 2**20
    r = lc("update", "up1")
    assert r.returncode == 1 and "You must provide one or more flags when using this command." in r.stderr


def test_commit_makes_a_runnable_image(lc, cleanup):
    cleanup.extend(["cm1", "cm2"])
    lc("run", "--name", "cm1", "--network", "none", "busybox", "sh", "-c",
       "echo committed > /hello && rm /etc/group", check=True)
    r = lc("commit", "-a", "Tester <t@example.invalid>", "-m", "a message", "-c", 'CMD ["cat", "/hello"]',
           "-c", "ENV FROM_COMMIT=1", "cm1", "committed:v1", check=True)
    image_id = r.stdout.strip()
    assert image_id.startswith("sha256:")
    r = lc("run", "--name", "cm2", "--network", "none", "committed:v1", check=True)
    assert r.stdout == "committed\n"
    r = lc("run", "--rm", "--network", "none", "committed:v1", "sh", "-c", "test ! -e /etc/group && echo $FROM_COMMIT",
           check=True)
    assert r.stdout == "1\n"
    image = inspect(lc, "committed:v1")
    assert image["Author"] == "Tester <t@example.invalid>" and image["Comment"] == "a message"
    assert image["Config"]["Cmd"] == ["cat", "/hello"]
    assert len(image["RootFS"]["Layers"]) == len(inspect(lc, "busybox")["RootFS"]["Layers"]) + 1
    r = lc("commit", "-c", "RUN true", "cm1")
    assert r.returncode == 1 and "run is not a valid change command" in r.stderr


def test_export_piped_into_import_runs(lc, cleanup, tmp_path):
    cleanup.extend(["ex1", "ex2"])
    lc("run", "--name", "ex1", "--network", "none", "busybox", "sh", "-c", "echo exported > /marker", check=True)
    env = lc.env
    export = subprocess.Popen([str(PYCTR_BIN), "export", "ex1"], stdout=subprocess.PIPE, env=env)
    imported = subprocess.run([str(PYCTR_BIN), "import", "-c", 'CMD ["cat", "/marker"]', "-m", "piped", "-",
                               "imported:v1"], stdin=export.stdout, capture_output=True, text=True, env=env,
                              timeout=120)
    export.stdout.close()
    assert export.wait(timeout=60) == 0
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("sha256:")
    r = lc("run", "--name", "ex2", "--network", "none", "imported:v1", check=True)
    assert r.stdout == "exported\n"
    image = inspect(lc, "imported:v1")
    assert image["Comment"] == "piped" and len(image["RootFS"]["Layers"]) == 1
    # -o: a file holding the same filesystem (busybox's sh is in it)
    out = tmp_path / "ex1.tar"
    lc("export", "-o", str(out), "ex1", check=True)
    listing = subprocess.run(["tar", "-tf", str(out)], capture_output=True, text=True, check=True).stdout.split()
    assert "marker" in listing and "bin/sh" in listing
    assert not any(name.startswith("proc/") and name != "proc/" for name in listing)


def test_export_of_a_created_container_is_the_images_filesystem(lc, cleanup, tmp_path):
    cleanup.append("ex3")
    lc("create", "--name", "ex3", "--network", "none", "busybox", "true", check=True)
    out = tmp_path / "ex3.tar"
    r = lc("export", "-o", str(out), "ex3")
    assert r.returncode == 0, r.stderr
    listing = subprocess.run(["tar", "-tf", str(out)], capture_output=True, text=True, check=True).stdout.split()
    assert "bin/sh" in listing


def test_diff(lc, cleanup):
    cleanup.append("df1")
    lc("run", "--name", "df1", "--network", "none", "busybox", "sh", "-c",
       "echo x > /new && rm /etc/group && echo y >> /etc/passwd && mkdir -p /tmp/d", check=True)
    lines = lc("diff", "df1", check=True).stdout.splitlines()
    for expected in ("A /new", "D /etc/group", "C /etc", "C /etc/passwd", "C /tmp", "A /tmp/d"):
        assert expected in lines, lines
    assert lines == sorted(lines, key=lambda line: line[2:])


def test_container_prune_with_filters(lc, cleanup):
    cleanup.extend(["pr1", "pr2", "pr3"])
    lc("create", "--name", "pr1", "--label", "prune=yes", "busybox", "true", check=True)
    lc("create", "--name", "pr2", "busybox", "true", check=True)
    lc("run", "-d", "--name", "pr3", "--label", "prune=yes", "--network", "none", "busybox", "sleep", "60",
       check=True)
    ids = {n: inspect(lc, n)["Id"] for n in ("pr1", "pr2", "pr3")}
    r = lc("container", "prune", "-f", "--filter", "label=prune=yes", check=True)
    assert r.stdout.splitlines()[:2] == ["Deleted Containers:", ids["pr1"]]
    assert r.stdout.splitlines()[-1].startswith("Total reclaimed space: ")
    names = lc("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert "pr1" not in names and "pr2" in names and "pr3" in names  # unlabelled and running ones stay
    r = lc("container", "prune", "-f", "--filter", "bogus=1")
    assert r.returncode == 1 and "Invalid filter 'bogus'" in r.stderr


def test_system_prune(lc, cleanup, tmp_path):
    cleanup.extend(["sp1", "sp2"])
    (tmp_path / "Dockerfile").write_text("FROM busybox\nLABEL dangling=1\n")
    lc("build", "-q", "-t", "sp-image", str(tmp_path), check=True, timeout=120)
    lc("rmi", "sp-image", check=True)  # untagged but still there: `images -a` would show it dangling
    lc("create", "--name", "sp1", "busybox", "true", check=True)
    lc("run", "-d", "--name", "sp2", "--network", "none", "busybox", "sleep", "60", check=True)
    r = lc("system", "prune", "-f", check=True)
    assert "Deleted Containers:" in r.stdout and inspect(lc, "sp2")["State"]["Running"]
    assert "sp1" not in lc("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert lc("inspect", "busybox").returncode == 0  # used by sp2: kept


def test_wait_of_several_containers(lc, cleanup):
    cleanup.extend(["wt1", "wt2"])
    lc("run", "-d", "--name", "wt1", "--network", "none", "busybox", "sh", "-c", "sleep 0.3; exit 3", check=True)
    lc("run", "-d", "--name", "wt2", "--network", "none", "busybox", "sh", "-c", "exit 5", check=True)
    assert lc("wait", "wt1", "wt2", check=True).stdout == "3\n5\n"


def test_diff_of_an_untouched_container_is_empty(lc, cleanup):
    cleanup.append("df2")
    lc("run", "--name", "df2", "--network", "none", "busybox", "true", check=True)
    assert lc("diff", "df2", check=True).stdout == ""  # mount points made for /etc/hosts & co are not changes


def test_extra_run_flags(lc, cleanup, tmp_path):
    cleanup.extend(["rf1", "rf2"])
    r = lc("run", "--rm", "--network", "none", "--ulimit", "nofile=512:1024", "busybox", "sh", "-c",
           "ulimit -n; ulimit -Hn", check=True)
    assert r.stdout == "512\n1024\n"
    cidfile = tmp_path / "cid"
    lc("run", "--name", "rf1", "--network", "none", "--cidfile", str(cidfile), "--oom-score-adj", "500",
       "--expose", "7000-7001/udp", "busybox", "sh", "-c", "sleep 0.3; cat /proc/self/oom_score_adj", check=True)
    doc = inspect(lc, "rf1")
    assert cidfile.read_text() == doc["Id"]
    assert lc("logs", "rf1").stdout == "500\n"
    assert {"7000/udp", "7001/udp"} <= set(doc["Config"]["ExposedPorts"])
    assert doc["HostConfig"]["OomScoreAdj"] == 500 and doc["HostConfig"]["ContainerIDFile"] == str(cidfile)
    r = lc("run", "--name", "rf2", "--cidfile", str(cidfile), "busybox", "true")
    assert r.returncode == 125 and "Container ID file found" in r.stderr
    r = lc("run", "--gpus", "all", "busybox", "true")
    assert r.returncode == 125 and 'could not select device driver "" with capabilities: [[gpu]]' in r.stderr
    r = lc("run", "--pull", "never", "no-such-image-here", "true")
    assert r.returncode == 125 and "No such image: no-such-image-here:latest" in r.stderr
    r = lc("run", "--pull", "sometimes", "busybox", "true")
    assert r.returncode == 125 and "invalid pull option: 'sometimes'" in r.stderr
    r = lc("run", "--ulimit", "nofile=2:1", "busybox", "true")
    assert r.returncode == 125 and "ulimit soft limit must be less than or equal to hard limit: 2 > 1" in r.stderr
    r = lc("run", "--rm", "-q", "--pull", "always", "--network", "none", "busybox", "true", check=True)
    assert r.stderr == ""
    r = lc("run", "--rm", "--pull", "always", "--network", "none", "busybox", "true", check=True)
    assert r.stderr.strip()  # without -q the pull reports itself


def test_logs_details(lc, cleanup):
    cleanup.append("lg1")
    lc("run", "--name", "lg1", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2", check=True)
    r = lc("logs", "--details", "lg1", check=True)
    assert (r.stdout, r.stderr) == (" out\n", " err\n")  # no log attributes: Docker's lone space
    assert lc("logs", "lg1", check=True).stdout == "out\n"
