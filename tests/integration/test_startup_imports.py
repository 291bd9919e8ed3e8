"""Start-up cost is a feature: the hot paths must not import the heavy libraries.

`pyctr run --network none` of a local image and `pyctr ps` never need the registry client (requests) nor
netlink (pyroute2); libseccomp is needed only to compile a profile, which is cached after the first run.
"""

import json
import subprocess
import sys

import pytest

HEAVY = ("requests", "urllib3", "pyroute2", "pyseccomp", "zstandard", "isal")

PROBE = """
import json, sys
from pyctr.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def imported_by(pyctr, *args: str) -> set[str]:
    r = subprocess.run([sys.executable, "-c", PROBE, *args], env=pyctr.env, capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    report = json.loads(r.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, r.stderr
    return {m.split(".")[0] for m in report["modules"]}


@pytest.fixture(scope="module")
def warmed(pyctr_env):
    from tests.integration.conftest import PyctrRunner

    runner = PyctrRunner(pyctr_env)
    runner("pull", "busybox", check=True, timeout=120)
    runner("run", "--rm", "--network", "none", "busybox", "true", check=True)  # compiles the seccomp cache
    return runner


def test_run_network_none_imports_nothing_heavy(warmed):
    loaded = imported_by(warmed, "run", "--rm", "--network", "none", "busybox", "true")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_ps_imports_nothing_heavy(warmed):
    loaded = imported_by(warmed, "ps", "-a")
    assert not loaded & set(HEAVY + ("prctl",)), sorted(loaded & set(HEAVY))


def test_images_imports_nothing_heavy(warmed):
    loaded = imported_by(warmed, "images")
    assert not loaded & set(HEAVY + ("prctl",))


def test_probe_sees_heavy_imports_where_they_belong(warmed):
    """The probe can fail: a pull does load the registry client."""
    assert "requests" in imported_by(warmed, "pull", "-q", "busybox")
