"""`pyctr events` for real: the journal every verb appends to, read back with --since/--until/--filter/--format.

A container's life (create, attach, start, die with its exit code, destroy; kill/die/stop; rm -f), replay of a
time window, filters by container and event, the default line, a follower seeing a new event promptly, and
containers started concurrently whose events are all whole lines, each container's in order.
"""

from __future__ import annotations

import json
import re
import select
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.conftest import PYCTR_BIN
from tests.integration.helpers import lifecycle_runner, removed_after


@pytest.fixture(scope="module")
def ev(pyctr_config, tmp_path_factory):
    yield from lifecycle_runner(pyctr_config, tmp_path_factory, "events")


@pytest.fixture
def cleanup(ev):
    yield from removed_after(ev)


def now() -> str:
    return f"{time.time():.9f}"


def replay(ev, since: str, *filters: str, fmt: str = "{{.Action}} {{.Actor.Attributes.exitCode}}") -> list[str]:
    args = ["events", "--since", since, "--until", now(), "--format", fmt]  # until past: replay, then end
    for f in filters:
        args += ["--filter", f]
    proc = ev(*args, check=True, timeout=30)
    return [" ".join(line.replace("<no value>", "").split()) for line in proc.stdout.splitlines()]  # Go's missing key


def test_a_container_life_with_exit_codes(ev):
    start = now()
    assert ev("run", "--name", "ev-life", "--network", "none", "busybox", "sh", "-c", "exit 3").returncode == 3
    ev("rm", "ev-life", check=True)
    assert replay(ev, start, "container=ev-life") == ["create", "attach", "start", "die 3", "destroy"]
    assert replay(ev, start, "container=ev-life", "event=die") == ["die 3"]
    # the network's own events name the container; with --network none it is the predefined "none" (type null)
    net = replay(ev, start, "type=network", fmt="{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}}")
    assert net == ["connect none null", "disconnect none null"]


def test_network_volume_and_image_events(ev):
    start = now()
    ev("network", "create", "ev-net", check=True)
    try:
        ev("run", "--rm", "--network", "ev-net", "-v", "ev-vol:/data", "busybox", "true", check=True)
    finally:
        ev("network", "rm", "ev-net", check=True)
    ev("volume", "rm", "ev-vol", check=True)
    ev("tag", "busybox", "ev-tag:1", check=True)
    ev("rmi", "ev-tag:1", check=True)
    fmt = "{{.Action}} {{.Actor.Attributes.name}}{{.Actor.Attributes.destination}}"
    assert replay(ev, start, "network=ev-net", fmt=fmt) == ["create ev-net", "connect ev-net", "disconnect ev-net",
                                                           "destroy ev-net"]
    assert replay(ev, start, "volume=ev-vol", fmt=fmt) == ["create", "mount /data", "unmount", "destroy"]
    assert replay(ev, start, "type=image", fmt=fmt) == ["tag ev-tag:1", "untag sha256:" + replay(
        ev, start, "type=image", fmt="{{.Actor.ID}}")[0][7:]]


def test_stop_and_forced_removal(ev, cleanup):
    cleanup.append("ev-stop")
    start = now()
    ev("run", "-d", "--name", "ev-stop", "--network", "none", "busybox", "sleep", "60", check=True)
    ev("stop", "-t", "0", "ev-stop", check=True)  # SIGTERM ignored by sleep as pid 1: SIGKILL after 0 s
    ev("start", "ev-stop", check=True)
    ev("rm", "-f", "ev-stop", check=True)
    lines = replay(ev, start, "container=ev-stop", fmt="{{.Action}} {{.Actor.Attributes.signal}}"
                   "{{.Actor.Attributes.exitCode}}")
    assert lines == ["create", "start", "kill 15", "kill 9", "die 137", "stop", "start", "kill 9", "die 137",
                     "destroy"]


def test_since_until_window_and_the_default_line(ev):
    ev("create", "--name", "ev-before", "--network", "none", "busybox", check=True)
    time.sleep(0.05)
    window_start = now()
    ev("create", "--name", "ev-inside", "--network", "none", "busybox", check=True)
    window_end = now()
    time.sleep(0.05)
    ev("rm", "ev-before", "ev-inside", check=True)
    proc = ev("events", "--since", window_start, "--until", window_end, check=True, timeout=30)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, lines
    pattern = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) container create [0-9a-f]{64} " \
              r"\(image=busybox, name=ev-inside\)"
    assert re.fullmatch(pattern, lines[0]), lines[0]
    as_json = json.loads(ev("events", "--since", window_start, "--until", window_end, "--format", "{{json .}}",
                            check=True).stdout)
    assert as_json["status"] == "create" and as_json["from"] == "busybox" and as_json["Type"] == "container"
    assert window_start <= f"{as_json['timeNano'] / 1e9:.9f}" <= window_end


def test_follow_sees_a_new_event_promptly(ev):
    proc = subprocess.Popen([str(PYCTR_BIN), "events", "--since", now(), "--filter", "container=ev-follow",
                             "--format", "{{.Action}}"], env=ev.env, stdout=subprocess.PIPE, text=True)
    try:
        ev("create", "--name", "ev-follow", "--network", "none", "busybox", check=True)
        created = time.monotonic()
        ready = select.select([proc.stdout], [], [], 10)[0]
        seen_after = time.monotonic() - created
        assert ready and proc.stdout.readline().strip() == "create"
        assert seen_after < 0.5, f"the follower took {seen_after:.3f} s"
        ev("rm", "ev-follow", check=True)
        removed = time.monotonic()
        assert select.select([proc.stdout], [], [], 10)[0] and proc.stdout.readline().strip() == "destroy"
        assert time.monotonic() - removed < 0.5
        assert proc.poll() is None  # no --until: still following
    finally:
        proc.kill()
        proc.wait()


def test_concurrent_containers_never_interleave(ev):
    start = now()
    names = [f"ev-par{i}" for i in range(8)]

    def run(name: str) -> int:
        return ev("run", "--rm", "--name", name, "--network", "none", "busybox", "sh", "-c", "exit 7",
                  timeout=120).returncode

    with ThreadPoolExecutor(len(names)) as pool:
        assert list(pool.map(run, names)) == [7] * len(names)
    for line in (ev.root / "events.log").read_bytes().splitlines():
        json.loads(line)  # every line whole
    lines = replay(ev, start, "type=container", fmt="{{.Actor.Attributes.name}} {{.Action}} "
                   "{{.Actor.Attributes.exitCode}}")
    for name in names:
        mine = [line.split(" ", 1)[1].strip() for line in lines if line.split(" ", 1)[0] == name]
        assert mine == ["create", "attach", "start", "die 7", "destroy"], (name, mine)


def test_bad_flags_as_docker(ev):
    proc = ev("events", "--filter", "container")
    assert proc.returncode != 0 and "bad format of filter (expected name=value)" in proc.stderr
    proc = ev("events", "--since", "1700000100", "--until", "1700000000")
    assert proc.returncode == 1 and "cannot be after `until` time" in proc.stderr
    proc = ev("events", "--format", "{{.Bogus}}", "--until", "1")
    assert proc.returncode != 0 and "can't evaluate field Bogus" in proc.stderr
