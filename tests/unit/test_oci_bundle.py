"""config.json -> pyctr-runtime's plan, and linux.resources -> cgroup v1/v2 writes (runc's fs and fs2 rules)."""

from __future__ import annotations

import copy

import pytest

from pyctr.oci.bundle import plan_from_config
from pyctr.oci.defaults import example_spec, features
from pyctr.oci.errors import ConfigError
from pyctr.oci.resources import (
    blkio_weight_to_io_weight,
    cgroup_relative_path,
    memory_swap_v2,
    plan_v1,
    plan_v2,
    shares_to_weight,
)

KNOWN = frozenset({"CAP_KILL", "CAP_CHOWN", "CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE"})


def config(**changes) -> dict:
    doc = copy.deepcopy(example_spec(False))
    for dotted, value in changes.items():
        target = doc
        *path, last = dotted.split(".")
        for key in path:
            target = target.setdefault(key, {})
        target[last] = value
    return doc


def plan(**changes):
    return plan_from_config(config(**changes), "/b", known_caps=KNOWN)


def test_runcs_starter_spec_plans_as_runc_runs_it():
    p = plan()
    assert p.root == "/b/rootfs" and p.root_readonly and p.hostname == "runc"
    assert p.process.args == ["sh"] and p.process.terminal and p.process.no_new_privileges
    assert p.namespaces == {"pid": "", "network": "", "ipc": "", "uts": "", "mount": ""}
    assert [m.destination for m in p.mounts][:3] == ["/proc", "/dev", "/dev/pts"]
    assert p.process.rlimits[0].type == "RLIMIT_NOFILE" and p.process.rlimits[0].hard == 1024
    assert p.process.capabilities["bounding"] == ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert p.process.capabilities["ambient"] == []


def test_paths_users_and_unknown_capabilities():
    p = plan(**{"root.path": "/abs/root", "process.user": {"uid": 1000, "gid": 100, "umask": 0o027,
                                                            "additionalGids": [5, 6]},
                "process.capabilities": {"effective": ["CAP_KILL", "CAP_FUTURE_THING"]},
                "mounts": [{"destination": "/data/", "type": "bind", "source": "data", "options": ["rbind", "ro"]},
                           {"destination": "/t", "type": "tmpfs", "source": "tmpfs"}]})
    assert p.root == "/abs/root"
    assert (p.process.uid, p.process.gid, p.process.umask, p.process.additional_gids) == (1000, 100, 0o027, [5, 6])
    assert p.process.capabilities["effective"] == ["CAP_KILL"]  # runc 1.1 ignores unknown capabilities
    assert (p.mounts[0].destination, p.mounts[0].source, p.mounts[0].is_bind) == ("/data", "/b/data", True)
    assert (p.mounts[1].source, p.mounts[1].is_bind) == ("tmpfs", False)


def test_namespaces_joined_by_path():
    p = plan(**{"linux.namespaces": [{"type": "pid"}, {"type": "network", "path": "/var/run/netns/x"},
                                     {"type": "mount"}], "hostname": None})
    assert p.new_namespace("pid") and p.joins_namespace("network") and not p.new_namespace("network")


def test_hooks_devices_sysctl_seccomp_annotations():
    p = plan(**{"hooks": {"prestart": [{"path": "/bin/h", "args": ["h", "1"], "env": ["A=1"], "timeout": 3}],
                          "futureKind": [{"path": "/x"}]},
                "linux.devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}],
                "linux.sysctl": {"net.ipv4.ip_forward": "1", "kernel.shmmax": "100"},
                "linux.seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}]},
                "annotations": {"a": "b"}})
    assert list(p.hooks) == ["prestart"] and p.hooks["prestart"][0].timeout == 3
    assert p.hooks["prestart"][0].args == ("h", "1")
    assert (p.devices[0].path, p.devices[0].major, p.devices[0].minor, p.devices[0].mode) == ("/dev/fuse", 10, 229, 438)
    assert p.sysctl == {"net.ipv4.ip_forward": "1", "kernel.shmmax": "100"}
    assert p.seccomp["defaultAction"] == "SCMP_ACT_ERRNO" and p.annotations == {"a": "b"}


@pytest.mark.parametrize(("changes", "message"), [
    ({"ociVersion": "0.6.0"}, "unsupported spec version"),
    ({"root": {}}, "root.path is empty"),
    ({"process": None}, "process property must not be empty"),
    ({"process.args": []}, "args must not be empty"),
    ({"process.cwd": "relative"}, "is not an absolute path"),
    ({"linux.namespaces": [{"type": "pid"}, {"type": "pid"}]}, "duplicated ns"),
    ({"linux.namespaces": [{"type": "bogus"}]}, "namespace 'bogus' does not exist"),
    ({"linux.namespaces": [{"type": "mount"}]}, "unable to set hostname without a private UTS namespace"),
    ({"linux.namespaces": [{"type": "mount"}, {"type": "user"}]}, "no uid mappings found"),
    ({"linux.namespaces": [{"type": "mount"}, {"type": "user"}],
      "linux.uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}, "no gid mappings found"),
    ({"linux.uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}, "USER namespace isn't enabled"),
    ({"linux.namespaces": [{"type": "mount"}, {"type": "user"}], "process.user": {"uid": 5, "gid": 0},
      "linux.uidMappings": [{"containerID": 0, "hostID": 100000, "size": 1}],
      "linux.gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}, "unmapped user in user namespace"),
    ({"linux.namespaces": [{"type": "mount"}, {"type": "user"}], "process.user": {"uid": 0, "gid": 0,
                                                                                    "additionalGids": [70000]},
      "linux.uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
      "linux.gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}, "gid 70000"),
    ({"linux.namespaces": [{"type": "user"}], "linux.uidMappings": [{"containerID": 0, "hostID": 1, "size": 0}]},
     "invalid mapping 0 1 0"),
    ({"linux.seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x"}}, "listenerPath is not supported"),
    ({"linux.seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NEW"]}},
     "seccomp flag"),
    ({"linux.seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "LIKE"}]}]}},
     "unknown operator"),
    ({"linux.sysctl": {"kernel.panic": "1"}}, "not in a separate kernel namespace"),
    ({"linux.sysctl": {"net.ipv4.ip_forward": "1"}, "linux.namespaces": [{"type": "mount"}, {"type": "uts"}]},
     "hosts network namespace"),
    ({"process.rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]}, "soft limit 10 is above"),
    ({"process.rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]}, "'RLIMIT_BOGUS' is not supported"),
    ({"process.oomScoreAdj": 1001}, "outside [-1000, 1000]"),
    ({"linux.intelRdt": {"closID": "x"}}, "intelRdt is not supported"),
    ({"process.apparmorProfile": "docker-default"}, "AppArmor is not enabled"),
    ({"linux.devices": [{"path": "/etc/x", "type": "c"}]}, "must be under /dev"),
    ({"hooks": {"poststop": [{"path": "relative"}]}}, "is not absolute"),
    ({"mounts": [{"destination": "rel", "type": "tmpfs"}]}, "is not an absolute path"),
    ({"linux.rootfsPropagation": "sideways"}, "rootfsPropagation 'sideways' is invalid"),
])
def test_refusals(changes, message):
    with pytest.raises(ConfigError) as caught:
        plan(**changes)
    assert message in str(caught.value)


def test_selinux_labels_are_ignored_with_a_warning():
    p = plan(**{"process.selinuxLabel": "system_u:system_r:container_t:s0"})
    assert p.warnings and "SELinux" in p.warnings[0]


# ------------------------------------------------------------------------------------------------ resources

def test_cgroups_path_rules():
    assert cgroup_relative_path("", "abc") == "/abc"
    assert cgroup_relative_path("/default/abc", "abc") == "/default/abc"
    assert cgroup_relative_path("pods/abc", "abc", "/user.slice") == "/user.slice/pods/abc"
    with pytest.raises(ConfigError, match="systemd's slice:prefix:name"):
        cgroup_relative_path("machine.slice:libpod:abc", "abc")
    with pytest.raises(ConfigError, match="not a cgroup of its own"):
        cgroup_relative_path("/a/../../", "abc")


def test_v1_writes_in_runcs_order():
    writes = plan_v1({"memory": {"limit": 100, "reservation": 50, "swap": 200, "swappiness": 10,
                                 "disableOOMKiller": True},
                      "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
                      "pids": {"limit": 0},
                      "blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 500}],
                                  "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
                      "hugepageLimits": [{"pageSize": "2MB", "limit": 4096}],
                      "network": {"classID": 7, "priorities": [{"name": "eth0", "priority": 3}]}})
    assert writes == [
        ("memory", "memory.limit_in_bytes", "100"), ("memory", "memory.soft_limit_in_bytes", "50"),
        ("memory", "memory.memsw.limit_in_bytes", "200"), ("memory", "memory.swappiness", "10"),
        ("memory", "memory.oom_control", "1"),
        ("cpu", "cpu.shares", "512"), ("cpu", "cpu.cfs_period_us", "100000"), ("cpu", "cpu.cfs_quota_us", "50000"),
        ("cpuset", "cpuset.cpus", "0-1"), ("cpuset", "cpuset.mems", "0"),
        ("pids", "pids.max", "max"),
        ("blkio", "blkio.weight", "300"), ("blkio", "blkio.weight_device", "8:0 500"),
        ("blkio", "blkio.throttle.read_bps_device", "8:0 1000"),
        ("hugetlb", "hugetlb.2MB.limit_in_bytes", "4096"),
        ("net_cls", "net_cls.classid", "7"), ("net_prio", "net_prio.ifpriomap", "eth0 3"),
    ]


def test_v1_device_rules_deny_first_then_runcs_allowed_list():
    writes = plan_v1({"devices": [{"allow": False, "access": "rwm"},
                                  {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}]})
    assert writes[:2] == [("devices", "devices.deny", "a"), ("devices", "devices.allow", "c 10:229 rw")]
    assert ("devices", "devices.allow", "c 1:3 rwm") in writes and ("devices", "devices.allow", "c 136:* rwm") in writes
    assert plan_v1({}) == []


def test_v1_refuses_unified_and_bad_values():
    with pytest.raises(ConfigError, match="requires cgroup v2"):
        plan_v1({"unified": {"memory.high": "1"}})
    with pytest.raises(ConfigError, match="swappiness range"):
        plan_v1({"memory": {"swappiness": 101}})
    with pytest.raises(ConfigError, match="must be an integer"):
        plan_v1({"memory": {"limit": "1g"}})


def test_v2_conversions():
    assert shares_to_weight(1024) == 39 and shares_to_weight(2) == 1 and shares_to_weight(262144) == 10000
    assert blkio_weight_to_io_weight(10) == 1 and blkio_weight_to_io_weight(1000) == 10000
    assert memory_swap_v2(300, 100) == "200" and memory_swap_v2(-1, 100) == "max"
    with pytest.raises(ConfigError, match="should be greater than memory limit"):
        memory_swap_v2(50, 100)
    writes = plan_v2({"memory": {"limit": 100, "swap": 300, "reservation": -1}, "cpu": {"shares": 1024,
                      "quota": -1, "period": 50000}, "pids": {"limit": 9},
                      "blockIO": {"weight": 10, "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 5}]},
                      "hugepageLimits": [{"pageSize": "1GB", "limit": 0}], "unified": {"memory.high": "90"}})
    assert writes == [("", "memory.max", "100"), ("", "memory.low", "max"), ("", "memory.swap.max", "200"),
                      ("", "cpu.weight", "39"), ("", "cpu.max", "max 50000"), ("", "pids.max", "9"),
                      ("", "io.weight", "default 1"), ("", "io.max", "8:16 wiops=5"), ("", "hugetlb.1GB.max", "0"),
                      ("", "memory.high", "90")]
    with pytest.raises(ConfigError, match="not a cgroup file name"):
        plan_v2({"unified": {"../escape": "1"}})


def test_features_document_shape():
    doc = features(["CAP_KILL"], True, ["SCMP_ARCH_X86_64"])
    assert doc["ociVersionMax"] == "1.0.2" and "startContainer" in doc["hooks"] and "rbind" in doc["mountOptions"]
    assert doc["linux"]["cgroup"] == {"v1": True, "v2": True, "systemd": False, "systemdUser": False}
    assert doc["linux"]["seccomp"]["enabled"] and "SCMP_CMP_MASKED_EQ" in doc["linux"]["seccomp"]["operators"]
    assert example_spec(True)["linux"]["namespaces"][-1] == {"type": "cgroup"}
    assert {"type": "cgroup"} not in example_spec(False)["linux"]["namespaces"]


USERNS = {"linux.namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "user"}],
          "linux.uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
          "linux.gidMappings": [{"containerID": 0, "hostID": 100000, "size": 1000},
                                {"containerID": 1000, "hostID": 300000, "size": 10}]}


def test_a_new_user_namespace_plans_its_maps_as_the_kernel_takes_them():
    from pyctr.oci.bundle import id_map_text

    p = plan(**USERNS)
    assert p.new_namespace("user") and p.has_user_namespace()
    assert id_map_text(p.uid_mappings) == "0 100000 65536\n"
    assert id_map_text(p.gid_mappings) == "0 100000 1000\n1000 300000 10\n"


def test_a_joined_user_namespace_brings_its_own_maps():
    p = plan(**{"linux.namespaces": [{"type": "mount"}, {"type": "uts"}, {"type": "user", "path": "/proc/1/ns/user"}]})
    assert p.joins_namespace("user") and p.has_user_namespace() and not p.uid_mappings
    assert not plan().has_user_namespace()


@pytest.mark.parametrize(("wanted", "mapped"), [(0, True), (999, True), (1000, True), (1009, True), (1010, False)])
def test_which_ids_a_map_covers(wanted, mapped):
    from pyctr.oci.bundle import maps_id

    assert maps_id(plan(**USERNS).gid_mappings, wanted) is mapped
