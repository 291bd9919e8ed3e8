"""A container whose command cannot start reports that cause, never the network it broke by exiting.

The child looks its command up while its parent makes the bridge network in parallel; when the child fails it
exits, its network namespace goes with it, and the parent's veth set-up fails too. Docker 20.10 (runc, default
bridge) answers every such run with the real cause, every time (measured, 5 of 5 each):

    docker run --rm busybox nosuchcmd        -> 127  exec: "nosuchcmd": executable file not found in $PATH
    docker run --rm busybox /etc             -> 126  exec: "/etc": permission denied  (EACCES/EISDIR: 126)
    docker run --rm --entrypoint /nope busybox -> 127  exec: "/nope": stat /nope: no such file or directory
    docker run --rm -u nosuch busybox true   -> 125  unable to find user nosuch: no matching entries in passwd file
    docker run --rm -u 0:nogrp busybox true  -> 125  unable to find group nogrp: no matching entries in group file

(docker-cli's runStartContainerErr: "executable file not found" or "no such file or directory" -> 127, "permission
denied" or "is a directory" -> 126, else 125.) pyctr gave 125 with `cannot create veth ...`, `cannot enable hairpin
mode ...` or `cannot configure eth0 ...` in about half of the tries. Each case runs 20 times on the test bridge.
"""

from __future__ import annotations

import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.conftest import PyctrRunner

TRIES = 20
NETWORK_WORDS = ("veth", "hairpin", "eth0", "network namespace", "bridge")

CASES = [
    pytest.param(("busybox", "nosuchcmd"), 127, 'exec: "nosuchcmd": executable file not found in $PATH',
                 id="command-not-found"),
    pytest.param(("busybox", "/etc"), 126, "permission denied", id="directory-as-command"),
    pytest.param(("--entrypoint", "/nope", "busybox"), 127, "/nope", id="missing-entrypoint"),
    pytest.param(("-u", "nosuch", "busybox", "true"), 125,
                 "unable to find user nosuch: no matching entries in passwd file", id="unknown-user"),
    pytest.param(("-u", "0:nogrp", "busybox", "true"), 125,
                 "unable to find group nogrp: no matching entries in group file", id="unknown-group"),
]


@pytest.fixture
def busybox_present(pyctr: PyctrRunner) -> PyctrRunner:
    """Pulled first, so each run's stderr is its error alone."""
    pyctr("pull", "busybox", check=True)
    return pyctr


@pytest.mark.parametrize(("args", "code", "says"), CASES)
def test_the_real_cause_wins_over_the_network_every_time(busybox_present: PyctrRunner, args, code: int,
                                                         says: str) -> None:
    pyctr = busybox_present
    with ThreadPoolExecutor(2) as pool:  # two at a time: the race is between each child and its own parent
        results = list(pool.map(lambda _: pyctr("run", "--rm", *args, timeout=60), range(TRIES)))
    wrong = [(r.returncode, r.stderr.strip()) for r in results
             if r.returncode != code or says not in r.stderr or any(w in r.stderr for w in NETWORK_WORDS)]
    assert not wrong, f"{len(wrong)} of {TRIES} tries: {wrong[:3]}"
    assert all(r.stderr.count("\n") == 1 for r in results), results[0].stderr  # one line, no traceback


def test_a_genuine_network_failure_still_gives_125(fresh_pyctr: PyctrRunner, tmp_path) -> None:
    """A bridge that cannot be used (the configured name is taken by an interface that is no bridge) fails the
    run with 125 and names it, although the command itself was fine: the real cause wins there too."""
    taken = f"pyctrdum{os.getpid() % 10000}"
    subprocess.run(["ip", "link", "add", taken, "type", "veth", "peer", "name", taken + "p"], check=True)
    try:
        config = tmp_path / "taken-bridge.toml"
        text = Path(fresh_pyctr.env["PYCTR_CONFIG"]).read_text()
        config.write_text(re.sub(r'bridge = "[^"]*"', f'bridge = "{taken}"', text))
        result = fresh_pyctr("run", "--rm", "busybox", "true", env_extra={"PYCTR_CONFIG": str(config)})
    finally:
        subprocess.run(["ip", "link", "del", taken], check=True)
    assert result.returncode == 125, result
    assert taken in result.stderr.splitlines()[-1], result.stderr
    assert "Traceback" not in result.stderr
