"""The container index (runtime/index.py) through the real CLI: `ps`, `create`, `rm` and `system check`
recover from an index that was deleted or damaged, and parallel creates of one name leave exactly one winner
even when they start from a missing index (all racing to rebuild it)."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.helpers import remove_all


@pytest.fixture
def runner(fresh_pyctr):
    fresh_pyctr("pull", "busybox", check=True, timeout=120)
    yield fresh_pyctr
    remove_all(fresh_pyctr)


def index_dir(runner):
    return runner.root / "containers-index"


def ps_names(runner, *args) -> list[str]:
    return sorted(runner("ps", *args, "--format", "{{.Names}}", check=True).stdout.split())


def make_containers(runner) -> None:
    for name in ("idx-a", "idx-b", "idx-c"):
        runner("create", "--name", name, "--network", "none", "busybox", "true", check=True)
    runner("run", "-d", "--name", "idx-up", "--network", "none", "busybox", "sleep", "300", check=True)


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_commands_recover_from_a_lost_or_damaged_index(runner, damage):
    make_containers(runner)
    assert ps_names(runner) == ["idx-up"]
    if damage == "delete":
        shutil.rmtree(index_dir(runner))
    else:
        (index_dir(runner) / "stamp").write_text("\x00garbage")
        shutil.rmtree(index_dir(runner) / "running")
        (index_dir(runner) / "names" / "idx-a").unlink()
    assert ps_names(runner) == ["idx-up"]
    clash = runner("create", "--name", "idx-a", "--network", "none", "busybox", "true")
    assert clash.returncode == 125 and 'The container name "/idx-a" is already in use' in clash.stderr
    assert ps_names(runner, "-a") == ["idx-a", "idx-b", "idx-c", "idx-up"]
    runner("rm", "idx-b", check=True)
    runner("create", "--name", "idx-b", "--network", "none", "busybox", "true", check=True)
    assert runner("system", "check", check=True).stdout.strip() == ""


def test_system_check_repairs_an_index_that_lies(runner):
    make_containers(runner)
    (index_dir(runner) / "names" / "idx-c").unlink()  # the stamp still says current: only check notices
    (index_dir(runner) / "running" / next(iter(sorted(p.name for p in (index_dir(runner) / "running").iterdir()))))\
        .unlink()
    out = runner("system", "check", check=True).stdout
    assert "container index" in out and "repaired" in out
    assert ps_names(runner) == ["idx-up"]
    clash = runner("create", "--name", "idx-c", "--network", "none", "busybox", "true")
    assert clash.returncode == 125
    assert runner("system", "check", check=True).stdout.strip() == ""


@pytest.mark.parametrize("index_present", [True, False])
def test_parallel_creates_of_one_name_exactly_one_wins(runner, index_present):
    runner("create", "--name", "idx-first", "--network", "none", "busybox", "true", check=True)
    if not index_present:
        shutil.rmtree(index_dir(runner))
    with ThreadPoolExecutor(max_workers=8) as pool:
        procs = list(pool.map(lambda _: runner("create", "--name", "idx-same", "--network", "none", "busybox",
                                                "true"), range(8)))
    codes = sorted(p.returncode for p in procs)
    assert codes == [0] + [125] * 7, [p.stderr for p in procs]
    assert all("is already in use" in p.stderr for p in procs if p.returncode)
    assert ps_names(runner, "-a") == ["idx-first", "idx-same"]
    assert runner("system", "check", check=True).stdout.strip() == ""
