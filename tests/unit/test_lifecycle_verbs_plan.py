"""The deciding parts of pause, update, prune, diff and commit -c (pure or on temp dirs)."""

import os
from pathlib import Path

import pytest

from pyctr.build.changes import apply_changes
from pyctr.errors import ConflictError, PyctrError, UsageError
from pyctr.runtime import pause, prune, snapshot, update
from pyctr.runtime import state as st
from pyctr.runtime.ps import parse_filters
from pyctr.runtime.spec import LimitsSpec

CID = "a" * 64
MIB = 2**20


def test_pause_refusals_in_dockerds_order():
    with pytest.raises(ConflictError, match=f"Container {CID} is not running"):
        pause.check_pausable(CID, st.ContainerState(status="exited"))
    with pytest.raises(ConflictError, match="is already paused"):
        pause.check_pausable(CID, st.ContainerState(status="paused"))
    with pytest.raises(ConflictError, match="is restarting, wait until the container is running"):
        pause.check_pausable(CID, st.ContainerState(status="restarting"))
    pause.check_pausable(CID, st.ContainerState(status="running"))
    with pytest.raises(ConflictError, match=f"Container {CID} is not paused"):
        pause.check_unpausable(CID, st.ContainerState(status="running"))


def test_update_changes_only_what_is_given():
    current = LimitsSpec(memory=64 * MIB, cpu_shares=512, pids_limit=10)
    new = update.updated_limits(current, update.UpdateOptions(memory="128m"))
    assert new == LimitsSpec(memory=128 * MIB, cpu_shares=512, pids_limit=10)
    new = update.updated_limits(current, update.UpdateOptions(cpus="0.5", pids_limit=-1))
    assert (new.cpu_quota, new.cpu_period, new.pids_limit, new.memory) == (50_000, 100_000, None, 64 * MIB)
    new = update.updated_limits(current, update.UpdateOptions(memory_swap="256m"))
    assert new.memory_swap == 256 * MIB and new.memory == 64 * MIB
    with pytest.raises(UsageError, match="Minimum memory limit allowed is 6MB"):
        update.updated_limits(current, update.UpdateOptions(memory="1k"))
    with pytest.raises(PyctrError, match="Memory limit should be smaller than already set memoryswap limit"):
        update.updated_limits(LimitsSpec(memory=64 * MIB, memory_swap=96 * MIB), update.UpdateOptions(memory="100m"))
    assert update.UpdateOptions().empty and not update.UpdateOptions(restart="no").empty


def test_host_config_limits():
    keys = update.host_config_limits(LimitsSpec(memory=MIB * 8, cpu_quota=50_000, cpu_period=100_000))
    assert keys == {"Memory": MIB * 8, "MemorySwap": 0, "NanoCpus": 500_000_000, "CpuShares": 0, "PidsLimit": None}


def test_prune_filters():
    parsed = prune.parse_prune_filters(["label=a=b", "label!=c", "until=2024-01-01T00:00:00Z"])
    assert parsed["label"] == ["a=b"] and parsed["label!"] == ["c"] and len(parsed["until"]) == 1
    with pytest.raises(PyctrError, match="Invalid filter 'status'"):
        prune.parse_prune_filters(["status=exited"])
    with pytest.raises(PyctrError, match="Invalid filter 'nothing'"):
        prune.parse_prune_filters(["nothing"])
    until = {"until": [1000.0]}
    assert prune.prunable("exited", 999.0, {}, until) and not prune.prunable("exited", 1000.0, {}, until)
    assert not prune.prunable("running", 0.0, {}, {}) and not prune.prunable("paused", 0.0, {}, {})
    assert prune.prunable("created", 0.0, {"a": "b"}, {"label": ["a=b"]})
    assert not prune.prunable("created", 0.0, {"a": "x"}, {"label": ["a=b"]})
    assert not prune.prunable("created", 0.0, {"c": ""}, {"label!": ["c"]})


def test_ps_health_filter():
    assert parse_filters(["health=healthy"]) == {"health": ["healthy"]}
    with pytest.raises(UsageError, match="Unrecognised filter value for health: fine"):
        parse_filters(["health=fine"])


def test_diff_of_an_upper_dir(tmp_path: Path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in (lower / "etc", lower / "bin", upper / "etc", upper / "new"):
        d.mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root\n")
    (lower / "etc" / "group").write_text("root\n")
    (upper / "etc" / "passwd").write_text("root\nme\n")
    (upper / "new" / "file").write_text("x")
    (upper / "etc" / "hosts").write_text("")  # a mount point the runtime made: Docker's init layer
    if os.geteuid() == 0:
        os.mknod(upper / "etc" / "group", 0o600 | 0o020000, os.makedev(0, 0))
    changes = snapshot.diff_changes(upper, [lower])
    expected = [("C", "/etc"), *([("D", "/etc/group")] if os.geteuid() == 0 else []), ("C", "/etc/passwd"),
                ("A", "/new"), ("A", "/new/file")]
    assert changes == expected


def test_diff_hides_a_directory_changed_only_by_mount_points(tmp_path: Path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "resolv.conf").write_text("")
    assert snapshot.diff_changes(upper, [lower]) == []


def test_export_of_a_never_started_container_uses_an_empty_top_layer(tmp_path: Path):
    """The upper dir is made at start: before it exists export shows the image alone (as docker export does)."""
    lower, upper, empty = tmp_path / "l", tmp_path / "upper", tmp_path / "empty"
    lower.mkdir()
    assert snapshot.export_layers([str(lower)], str(upper), str(empty)) == [str(lower), str(empty)]
    upper.mkdir()
    assert snapshot.export_layers([str(lower)], str(upper), str(empty)) == [str(lower), str(upper)]


def test_commit_changes():
    config = apply_changes({"Cmd": ["sh"], "Env": ["PATH=/bin"]}, ['CMD ["echo", "hi"]', "ENV A=1", "EXPOSE 80/udp",
                                                                   "USER nobody", "WORKDIR /srv", "LABEL k=v"])
    assert config == {"Cmd": ["echo", "hi"], "Env": ["PATH=/bin", "A=1"], "ExposedPorts": {"80/udp": {}},
                      "User": "nobody", "WorkingDir": "/srv", "Labels": {"k": "v"}}
    for bad in ("RUN true", "FROM busybox", "COPY a b"):
        with pytest.raises(UsageError, match=f"{bad.split()[0].lower()} is not a valid change command"):
            apply_changes({}, [bad])


def test_image_document_history():
    base = {"history": [{"created": "t0", "created_by": "base"}]}
    doc = snapshot.image_document(base, {"Cmd": ["x"]}, created="t1", created_by="sh -c x", author="me",
                                  comment="msg", container={"Id": CID, "Config": {"Cmd": ["sh"]}})
    assert doc["history"] == [{"created": "t0", "created_by": "base"},
                              {"created": "t1", "created_by": "sh -c x", "author": "me", "comment": "msg"}]
    assert doc["author"] == "me" and doc["comment"] == "msg" and doc["container"] == CID
    assert doc["config"] == {"Cmd": ["x"]} and doc["created"] == "t1"
