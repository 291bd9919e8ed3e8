"""pause/unpause against the v1 and v2 file layouts (temp dirs standing in for the kernel's files)."""

from pathlib import Path

from pyctr.runtime.cgroups import CgroupMode
from pyctr.runtime.cgroups.manager import Cgroup

CID = "c" * 64


def test_v2_freeze_writes_cgroup_freeze_and_waits_for_events(tmp_path: Path):
    d = tmp_path / "pyctr" / CID
    d.mkdir(parents=True)
    (d / "cgroup.freeze").write_text("0\n")
    (d / "cgroup.events").write_text("populated 1\nfrozen 1\n")  # what the kernel reports once frozen
    cgroup = Cgroup(CID, CgroupMode(version=2, unified=tmp_path), {"unified": d})
    assert cgroup.freeze() is True
    assert (d / "cgroup.freeze").read_text().strip() == "1"
    cgroup.thaw()
    assert (d / "cgroup.freeze").read_text().strip() == "0"


def test_v2_freeze_reports_a_cgroup_that_never_froze(tmp_path: Path):
    from pyctr.runtime.cgroups import freezer

    d = tmp_path / CID
    d.mkdir()
    (d / "cgroup.freeze").write_text("0\n")
    (d / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    assert freezer.freeze_v2(d, timeout=0.05) is False  # pause then thaws and reports "Cannot pause container"


def test_v1_freeze_uses_freezer_state(tmp_path: Path):
    d = tmp_path / "freezer" / "pyctr" / CID
    d.mkdir(parents=True)
    (d / "freezer.state").write_text("FROZEN\n")  # a real freezer reads FROZEN once every task stopped
    cgroup = Cgroup(CID, CgroupMode(version=1, v1_mounts={"freezer": tmp_path / "freezer"}), {"freezer": d})
    assert cgroup.freeze() is True
    cgroup.thaw()
    assert (d / "freezer.state").read_text().strip() == "THAWED"
