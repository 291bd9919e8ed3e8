"""The default seccomp profile resolves like Docker's for each capability set and architecture."""

import json

import pytest

from pyctr.errors import UsageError
from pyctr.runtime.seccomp import (
    CLONE_NAMESPACE_MASK,
    cached_bpf,
    compile_bpf,
    default_profile,
    load_profile_file,
    plan_rules,
)

DOCKER_DEFAULT_CAPS = frozenset(
    "CAP_" + c for c in "CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP "
    "NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE".split())


def names(rules, action="SCMP_ACT_ALLOW"):
    return {r.name for r in rules if r.action == action and not r.args}


def test_default_allows_common_syscalls_and_denies_admin_ones():
    rules = plan_rules(default_profile(), DOCKER_DEFAULT_CAPS, "x86_64", "6.1.0")
    allowed = names(rules)
    assert {"read", "write", "execve", "openat", "chroot", "arch_prctl", "ptrace"} <= allowed
    for denied in ("mount", "unshare", "setns", "bpf", "init_module", "reboot", "kexec_load", "keyctl"):
        assert denied not in allowed


def test_clone_needs_no_namespace_flags_without_sys_admin():
    rules = plan_rules(default_profile(), DOCKER_DEFAULT_CAPS, "x86_64", "6.1.0")
    clone = [r for r in rules if r.name == "clone"]
    assert clone == [clone[0]] and clone[0].args == ((0, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACE_MASK, 0),)
    clone3 = [r for r in rules if r.name == "clone3"]
    assert clone3[0].action == "SCMP_ACT_ERRNO" and clone3[0].errno == 38


def test_sys_admin_unlocks_mount_and_plain_clone():
    rules = plan_rules(default_profile(), DOCKER_DEFAULT_CAPS | {"CAP_SYS_ADMIN"}, "x86_64", "6.1.0")
    allowed = names(rules)
    assert {"mount", "unshare", "setns", "clone", "clone3"} <= allowed
    assert not [r for r in rules if r.name == "clone3" and r.action != "SCMP_ACT_ALLOW"]


def test_arch_conditions():
    x86 = names(plan_rules(default_profile(), frozenset(), "x86_64", "6.1.0"))
    arm = names(plan_rules(default_profile(), frozenset(), "aarch64", "6.1.0"))
    assert "arch_prctl" in x86 and "arch_prctl" not in arm
    assert "set_tls" in arm and "set_tls" not in x86


def test_min_kernel_condition():
    old = names(plan_rules(default_profile(), frozenset(), "x86_64", "4.4.0"))
    assert "ptrace" not in old
    assert "ptrace" in names(plan_rules(default_profile(), frozenset(), "x86_64", "4.8.0-1-amd64"))


def test_personality_only_listed_values():
    rules = plan_rules(default_profile(), frozenset(), "x86_64", "6.1.0")
    values = sorted(r.args[0][2] for r in rules if r.name == "personality")
    assert values == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]


def test_same_argument_twice_becomes_separate_rules():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{
        "names": ["socket"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]}
    rules = plan_rules(profile, frozenset(), "x86_64", "6.1.0")
    assert [r.args for r in rules] == [((0, "SCMP_CMP_EQ", 1, 0),), ((0, "SCMP_CMP_EQ", 2, 0),)]


def test_compile_gives_a_bpf_program_and_skips_unknown_syscalls(tmp_path):
    profile = default_profile()
    profile["syscalls"].append({"names": ["no_such_syscall_2099"], "action": "SCMP_ACT_ALLOW"})
    program = compile_bpf(profile, DOCKER_DEFAULT_CAPS)
    assert len(program) % 8 == 0 and len(program) > 8 * 100
    first = cached_bpf(tmp_path, profile, DOCKER_DEFAULT_CAPS)
    assert first == program and len(list(tmp_path.iterdir())) == 1
    assert cached_bpf(tmp_path, profile, DOCKER_DEFAULT_CAPS) == program


def test_profile_file_errors_are_one_line(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text("{nope")
    with pytest.raises(UsageError) as e:
        load_profile_file(str(bad))
    assert "\n" not in str(e.value)
    with pytest.raises(UsageError):
        load_profile_file(str(tmp_path / "missing.json"))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(default_profile()))
    assert load_profile_file(str(good))["defaultAction"] == "SCMP_ACT_ERRNO"
