"""The pieces pyctr-runtime uses instead of slow imports must give the same answers as what they replace:
jsonlite as json, cgroupfs.parse_mountinfo as runtime/cgroups' detection, the seccomp cache name as
runtime/seccomp.cached_bpf's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyctr.oci import cgroupfs, jsonlite

DOCUMENTS = [
    {"ociVersion": "1.0.2", "id": "a", "pid": 12, "status": "running", "annotations": {"k": "v\n\"q\" \\ é \u2028"}},
    [1, -2.5, 1e300, True, False, None, "", [], {}, [[{}]], {"nested": {"list": [1, {"x": "y"}]}}],
    {"b": 1, "a": [3, 2, 1], "c": {"z": 0, "y": "\x00\x1f"}},
    "just a string \t with \u00ff and \U0001f600",
    0,
]


@pytest.mark.parametrize("doc", DOCUMENTS)
@pytest.mark.parametrize("options", [{}, {"indent": 2}, {"indent": 4, "sort_keys": True},
                                     {"separators": (",", ":")}, {"sort_keys": True}])
def test_jsonlite_writes_what_json_writes(doc, options):
    assert jsonlite.dumps(doc, **options) == json.dumps(doc, **options)


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_jsonlite_reads_what_json_reads(doc):
    text = json.dumps(doc, indent=1)
    assert jsonlite.loads(text) == json.loads(text)
    assert jsonlite.loads(f"  \n{text}\t ".encode()) == doc


@pytest.mark.parametrize("text", ["", "   ", "{", '{"a": 1} extra', "[1,]", "{'single': 1}", b"\xff\xfe"])
def test_jsonlite_refuses_what_json_refuses_with_a_value_error(text):
    with pytest.raises(ValueError):
        jsonlite.loads(text)


def test_jsonlite_refuses_what_it_cannot_write():
    with pytest.raises(TypeError):
        jsonlite.dumps({"x": object()})


HYBRID = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PURE_V2 = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
"""
ONLY_NAMED = """\
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/my\\040cgroup rw,relatime - cgroup2 cgroup2 rw
"""


@pytest.mark.parametrize("text", [HYBRID, PURE_V2, ONLY_NAMED])
def test_cgroupfs_reads_mountinfo_as_runtime_cgroups_does(text):
    from pyctr.runtime.cgroups import detect

    mode = detect(text, read_controllers=lambda _path: "")
    v1, unified = cgroupfs.parse_mountinfo(text)
    assert (2 if not v1 else 1) == mode.version
    assert {c: Path(m) for c, m in v1.items()} == mode.v1_mounts
    assert (Path(unified) if unified else None) == mode.unified


def test_caller_cgroup_per_controller():
    text = "12:pids:/user.slice/a\n11:cpu,cpuacct:/b\n0::/unified/c\n"
    assert cgroupfs.caller_cgroup("cpuacct", text) == "/b"
    assert cgroupfs.caller_cgroup("pids", text) == "/user.slice/a"
    assert cgroupfs.caller_cgroup("", text) == "/unified/c"
    assert cgroupfs.caller_cgroup("memory", text) == "/"


def test_remove_takes_away_only_the_containers_directories(tmp_path):
    parent = tmp_path / "pids" / "parent"
    (parent / "c1").mkdir(parents=True)
    cgroupfs.remove({"pids": str(parent / "c1"), "memory": str(tmp_path / "never-made")})
    assert parent.is_dir() and not (parent / "c1").exists()


def test_the_seccomp_cache_file_is_the_one_runtime_seccomp_writes(tmp_path, monkeypatch):
    from pyctr.oci.launch import seccomp_cache_name
    from pyctr.runtime import seccomp

    profile = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}
    caps = frozenset({"CAP_SYS_ADMIN", "CAP_CHOWN"})
    monkeypatch.setattr(seccomp, "compile_bpf", lambda _profile, _caps: b"program")
    assert seccomp.cached_bpf(tmp_path, profile, caps) == b"program"
    import os

    uname = os.uname()
    assert [p.name for p in tmp_path.iterdir()] == [seccomp_cache_name(profile, caps, uname.machine, uname.release)]
