"""`pyctr logs` against real containers: json-file contents, streams, --tail, -t and -f."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import datetime

import pytest

from tests.integration.conftest import PYCTR_BIN
from tests.integration.helpers import lifecycle_runner, removed_after


@pytest.fixture(scope="module")
def lc(pyctr_config, tmp_path_factory):
    yield from lifecycle_runner(pyctr_config, tmp_path_factory, "logs")


@pytest.fixture
def cleanup(lc):
    yield from removed_after(lc)


def wait_exited(lc, name: str, timeout: float = 20) -> None:
    assert lc("wait", name, timeout=timeout).returncode == 0


def test_json_file_is_dockers_format(lc, cleanup):
    cleanup.append("l1")
    cid = lc("run", "-d", "--name", "l1", "--network", "none", "busybox", "sh", "-c",
             "echo one; echo two >&2; printf partial", check=True).stdout.strip()
    wait_exited(lc, "l1")
    path = lc.root / "containers" / cid / f"{cid}-json.log"
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [list(e) for e in entries] == [["log", "stream", "time"]] * 3
    assert sorted((e["stream"], e["log"]) for e in entries) == [("stderr", "two\n"), ("stdout", "one\n"),
                                                                ("stdout", "partial")]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", e["time"]) for e in entries)


def test_logs_streams_go_to_their_own_fd(lc, cleanup):
    cleanup.append("l2")
    lc("run", "-d", "--name", "l2", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2", check=True)
    wait_exited(lc, "l2")
    r = lc("logs", "l2")
    assert (r.stdout, r.stderr) == ("out\n", "err\n")


def test_tail_and_timestamps(lc, cleanup):
    cleanup.append("l3")
    lc("run", "-d", "--name", "l3", "--network", "none", "busybox", "sh", "-c", "seq 1 100", check=True)
    wait_exited(lc, "l3")
    assert lc("logs", "l3").stdout == "".join(f"{i}\n" for i in range(1, 101))
    assert lc("logs", "--tail", "3", "l3").stdout == "98\n99\n100\n"
    assert lc("logs", "-n", "0", "l3").stdout == ""
    assert lc("logs", "--tail", "all", "l3").stdout.count("\n") == 100
    lines = lc("logs", "-t", "--tail", "2", "l3").stdout.splitlines()
    assert [re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z (\d+)", line).group(1) for line in lines] == ["99", "100"]


def test_follow_until_the_container_exits(lc, cleanup):
    cleanup.append("l4")
    lc("run", "-d", "--name", "l4", "--network", "none", "busybox", "sh", "-c",
       "for i in 1 2 3; do echo tick $i; sleep 0.5; done", check=True)
    started = time.monotonic()
    proc = subprocess.run([str(PYCTR_BIN), "logs", "-f", "l4"], env=lc.env, capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)
    assert proc.stdout == "tick 1\ntick 2\ntick 3\n"
    assert time.monotonic() - started >= 0.8  # it did wait for the later lines


def test_follow_streams_lines_as_they_come(lc, cleanup):
    cleanup.append("l5")
    lc("run", "-d", "--name", "l5", "--network", "none", "busybox", "sh", "-c",
       "echo first; sleep 30", check=True)
    proc = subprocess.Popen([str(PYCTR_BIN), "logs", "-f", "--tail", "1", "l5"], env=lc.env, stdout=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout.readline() == "first\n"
        assert proc.poll() is None  # still following
        lc("stop", "-t", "0", "l5", check=True)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()


def test_logs_of_unknown_container(lc):
    """docker-cli v20.10: ContainerLogs wraps the 404 as `Error: No such container: nosuch`; exit 1."""
    r = lc("logs", "nosuch")
    assert r.returncode == 1 and r.stderr.strip() == "Error: No such container: nosuch"


def run_under_a_pty(lc, *args: str, timeout: float = 30) -> tuple[int, bytes]:
    """`pyctr ARGS` with a real terminal as its stdin/stdout/stderr, as a user types it; (code, what it showed)."""
    from tests.integration import helpers

    return helpers.run_under_a_pty(lc.env, *args, timeout=timeout)


def test_an_attached_tty_run_is_logged_as_docker_logs_it(lc, cleanup):
    """Docker 20.10: `docker run -t --name x busybox sh -c 'echo a; echo b'`, then `docker logs x` prints
    `a\r\nb\r\n` (the pty's output, CRs included, all on stdout)."""
    cleanup.append("ltty")
    code, shown = run_under_a_pty(lc, "run", "-t", "--name", "ltty", "--network", "none", "busybox", "sh", "-c",
                                  "echo a; echo b")
    assert code == 0 and b"a\r" in shown and b"b\r" in shown, shown  # the user's terminal adds its own CR
    r = subprocess.run([str(PYCTR_BIN), "logs", "ltty"], env=lc.env, capture_output=True, timeout=30)  # bytes: CRs
    assert (r.stdout, r.stderr) == (b"a\r\nb\r\n", b"")


def test_an_attached_run_without_tty_is_logged(lc, cleanup):
    """Docker logs an attached (not detached) run in json-file too."""
    cleanup.append("lattached")
    r = lc("run", "--name", "lattached", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (r.returncode, r.stdout, r.stderr) == (0, "out\n", "err\n")
    r = lc("logs", "lattached")
    assert (r.stdout, r.stderr) == ("out\n", "err\n")


def test_since_and_until_select_by_time_in_each_of_dockers_forms(lc, cleanup):
    """`--since`/`--until` take RFC 3339 (fraction, zone), Unix times and Go durations; both are inclusive."""
    cleanup.append("ltime")
    lc("run", "--name", "ltime", "--network", "none", "busybox", "sh", "-c", "echo one; sleep 1.1; echo two",
       check=True)
    stamps = [line.split()[0] for line in lc("logs", "-t", "ltime", check=True).stdout.splitlines()]
    assert len(stamps) == 2
    first, second = stamps
    seconds, fraction = second.rstrip("Z").split(".")
    unix_second = f"{int(datetime.fromisoformat(seconds + '+00:00').timestamp())}.{fraction}"

    def shown(*flags: str) -> str:
        r = lc("logs", *flags, "ltime")
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert shown("--until", first) == "one\n"
    assert shown("--since", second) == "two\n"
    assert shown("--since", unix_second) == "two\n"
    assert shown("--since", "1h") == "one\ntwo\n"
    assert shown("--until", "1h") == ""  # an hour ago: before anything was logged
    assert shown("--since", first, "--until", first) == "one\n"
    r = lc("logs", "--since", "bogus", "ltime")
    assert r.returncode == 1
    assert 'invalid value for "since": failed to parse value as time or duration: "bogus"' in r.stderr
