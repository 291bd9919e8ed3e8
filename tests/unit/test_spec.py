"""make_spec: Docker's rules for merging an image config with `run` flags (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyctr.errors import UsageError
from pyctr.runtime.capabilities import DEFAULT_CAPABILITIES
from pyctr.runtime.mounts import MountError
from pyctr.runtime.spec import (
    DEFAULT_PATH,
    MASKED_PATHS,
    READONLY_PATHS,
    ContainerSpec,
    RunOptions,
    anonymous_volume_name,
    make_spec,
    merge_command,
    merge_env,
    parse_env_file,
    parse_size,
)

CID = "0123456789ab" + "c" * 52
BUNDLE = Path("/var/lib/pyctr/containers") / CID


def spec_for(config: dict, **flags) -> ContainerSpec:
    options = RunOptions(image="busybox", **flags)
    return make_spec({"config": config}, options, CID, "focused_benz", BUNDLE, [Path("/l/base"), Path("/l/top")],
                     host_env={"FROM_HOST": "yes"}, host_cpus=2)


@pytest.mark.parametrize(
    ("entrypoint", "cmd", "flag_entrypoint", "command", "expected"),
    [
        (None, ["sh"], None, [], ["sh"]),
        (None, ["sh"], None, ["echo", "hi"], ["echo", "hi"]),
        (["/ep.sh"], ["arg"], None, [], ["/ep.sh", "arg"]),
        (["/ep.sh"], ["arg"], None, ["other"], ["/ep.sh", "other"]),
        (["/ep.sh"], ["arg"], "/bin/ls", [], ["/bin/ls"]),  # --entrypoint resets the image's Cmd
        (["/ep.sh"], ["arg"], "/bin/ls", ["-l"], ["/bin/ls", "-l"]),
        (["/ep.sh"], ["arg"], "", ["echo", "x"], ["echo", "x"]),  # --entrypoint "" clears it
    ],
)
def test_entrypoint_and_cmd(entrypoint, cmd, flag_entrypoint, command, expected):
    config = {"Entrypoint": entrypoint, "Cmd": cmd}
    assert merge_command(config, RunOptions("i", command, entrypoint=flag_entrypoint)) == expected


def test_no_command_is_docker_error():
    with pytest.raises(UsageError, match="No command specified"):
        merge_command({}, RunOptions("i"))
    with pytest.raises(UsageError, match="No command specified"):
        merge_command({"Cmd": ["sh"]}, RunOptions("i", entrypoint=""))


def test_env_order_and_overrides():
    env = merge_env({"Env": ["PATH=/custom", "A=image", "B=image"]}, ["A=cli", "C=new", "FROM_HOST", "MISSING"],
                    "abc", tty=True, host_env={"FROM_HOST": "yes"})
    assert env == ["PATH=/custom", "HOSTNAME=abc", "TERM=xterm", "A=cli", "B=image", "C=new", "FROM_HOST=yes"]


def test_env_default_path_when_image_has_none():
    env = merge_env({}, [], "h", tty=False, host_env={})
    assert env == [f"PATH={DEFAULT_PATH}", "HOSTNAME=h"]


def test_env_file_parsing():
    text = "# comment\n\nA=1\nB\n  C=has spaces  \n"
    assert parse_env_file(text, "f") == ["A=1", "B", "C=has spaces  "]
    with pytest.raises(UsageError, match="whitespaces"):
        parse_env_file("BAD KEY=1\n", "f")


def test_env_files_come_before_e(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("A=file\nB=file\n")
    spec = spec_for({"Cmd": ["sh"]}, env=["A=flag"], env_files=[str(env_file)])
    assert "A=flag" in spec.process.env and "B=file" in spec.process.env


@pytest.mark.parametrize(("text", "value"), [
    ("1024", 1024), ("100k", 100 * 1024), ("512m", 512 * 1024**2), ("1g", 1024**3), ("1GB", 1024**3),
    ("1.5g", int(1.5 * 1024**3)), ("2M", 2 * 1024**2), ("10mb", 10 * 1024**2),
])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize(("text", "message"), [("", "invalid size"), ("abc", "invalid size"),
                                              ("1x", "invalid suffix: 'x'"), ("-1m", "invalid size"),
                                              (" 32 ", "invalid syntax")])
def test_parse_size_rejects(text, message):
    with pytest.raises(UsageError, match=message):
        parse_size(text)


def test_limits():
    spec = spec_for({"Cmd": ["sh"]}, memory="64m", memory_swap="128m", cpus="0.5", cpu_shares=512, pids_limit=20)
    limits = spec.limits
    assert limits.memory == 64 * 1024**2 and limits.memory_swap == 128 * 1024**2
    assert (limits.cpu_quota, limits.cpu_period) == (50000, 100000)
    assert limits.cpu_shares == 512 and limits.pids_limit == 20
    assert spec_for({"Cmd": ["sh"]}, memory="64m", memory_swap="-1").limits.memory_swap == -1


@pytest.mark.parametrize(("flags", "message"), [
    ({"memory": "1m"}, "Minimum memory limit allowed is 6MB"),
    ({"memory_swap": "1g"}, "You should always set the Memory limit"),
    ({"memory": "64m", "memory_swap": "32m"}, "Minimum memoryswap limit should be larger"),
    ({"cpus": "3"}, "Range of CPUs is from 0.01 to 2.00"),
    ({"cpus": "x"}, "failed to parse"),
])
def test_limit_errors(flags, message):
    with pytest.raises(UsageError, match=message):
        spec_for({"Cmd": ["sh"]}, **flags)


def test_defaults_match_docker():
    spec = spec_for({"Cmd": ["sh"], "WorkingDir": "/app", "User": "app", "StopSignal": "SIGQUIT"})
    assert spec.hostname == CID[:12]
    assert spec.process.cwd == "/app" and spec.process.user == "app"
    assert spec.process.capabilities == list(DEFAULT_CAPABILITIES)
    assert spec.masked_paths == list(MASKED_PATHS) and spec.readonly_paths == list(READONLY_PATHS)
    assert spec.stop_signal == "SIGQUIT" and spec.stop_timeout == 10
    assert not spec.process.no_new_privileges
    assert set(spec.namespaces) == {"pid", "mount", "uts", "ipc", "net", "cgroup"}
    assert spec.rootfs.lowerdirs == ["/l/base", "/l/top"]
    assert spec.rootfs.upperdir == str(BUNDLE / "rootfs" / "upper")
    assert "HOSTNAME=" + CID[:12] in spec.process.env


def test_flags_override_image():
    spec = spec_for({"Cmd": ["sh"], "WorkingDir": "/app", "User": "app"}, workdir="/w", user="0:0",
                    hostname="web", security_opt=["no-new-privileges"], read_only=True, tty=True)
    assert (spec.process.cwd, spec.process.user, spec.hostname) == ("/w", "0:0", "web")
    assert spec.process.no_new_privileges and spec.rootfs.readonly and spec.process.terminal


def test_relative_workdir_is_refused():
    with pytest.raises(UsageError, match="needs to be an absolute path"):
        spec_for({"Cmd": ["sh"]}, workdir="app")


def test_privileged():
    spec = spec_for({"Cmd": ["sh"]}, privileged=True)
    assert "CAP_SYS_ADMIN" in spec.process.capabilities
    assert spec.masked_paths == [] and spec.readonly_paths == []


def test_host_network_has_no_net_namespace():
    assert "net" not in spec_for({"Cmd": ["sh"]}, network="host").namespaces
    with pytest.raises(UsageError, match="network container:x not found"):
        spec_for({"Cmd": ["sh"]}, network="container:x")
    user_network = spec_for({"Cmd": ["sh"]}, network="foo")  # its existence is checked at create (usermanager)
    assert user_network.network.mode == "foo" and "net" in user_network.namespaces


def test_volumes():
    spec = spec_for({"Cmd": ["sh"]}, volumes=["/srv/data:/data:ro", "cache:/cache", "/scratch"])
    by_target = {m.destination: m for m in spec.mounts}
    bind = by_target["/data"]
    assert (bind.source, bind.type, bind.user_source) == ("/srv/data", "bind", True) and "ro" in bind.options
    named = by_target["/cache"]
    assert named.source == str(BUNDLE.parent.parent / "volumes" / "cache" / "_data") and "rw" in named.options
    assert not named.user_source
    anonymous = by_target["/scratch"]
    assert Path(anonymous.source).parent.name == anonymous_volume_name(CID, 0)


@pytest.mark.parametrize(("volume", "message"), [
    ("/a:rel", "must be absolute"), ("/a:/b:bogus", "invalid mode: bogus"), ("a:b:c:d", "invalid volume"),
    ("bad name!:/x", "invalid characters"), ("/a:/", "destination can't be '/'"),
])
def test_volume_errors(volume, message):
    with pytest.raises(MountError, match=message):
        spec_for({"Cmd": ["sh"]}, volumes=[volume])


def test_volumes_sorted_by_depth_and_listed_for_creation():
    spec = spec_for({"Cmd": ["sh"]}, volumes=["/h/b:/a/b", "/h/a:/a"])
    assert [m.destination for m in spec.mounts] == ["/a", "/a/b"]
    assert sorted(spec.volumes_to_create) == ["/h/a", "/h/b"]


def test_security_opt_unknown_is_refused():
    with pytest.raises(UsageError, match="Invalid --security-opt"):
        spec_for({"Cmd": ["sh"]}, security_opt=["bogus"])


def test_json_round_trip():
    import json

    spec = spec_for({"Cmd": ["sh"], "Labels": {"a": "1"}}, volumes=["/h:/c:ro"], labels=["b=2"], memory="8m",
                    publish=["8080:80"])
    data = json.loads(json.dumps(spec.to_dict()))
    assert ContainerSpec.from_dict(data) == spec
    assert spec.labels == {"a": "1", "b": "2"} and spec.network.ports == ["8080:80"]


def test_init_wraps_the_command():
    spec = spec_for({"Entrypoint": ["/ep"], "Cmd": ["a"]}, init=True)
    assert spec.process.args == ["/sbin/docker-init", "--", "/ep", "a"] and spec.init


def test_seccomp_options(tmp_path):
    assert spec_for({"Cmd": ["sh"]}).process.seccomp == "default"
    assert spec_for({"Cmd": ["sh"]}, privileged=True).process.seccomp == "unconfined"
    assert spec_for({"Cmd": ["sh"]}, security_opt=["seccomp=unconfined"]).process.seccomp == "unconfined"
    profile = tmp_path / "p.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    custom = spec_for({"Cmd": ["sh"]}, security_opt=[f"seccomp={profile}"]).process
    assert custom.seccomp == "custom" and custom.seccomp_profile == {"defaultAction": "SCMP_ACT_ALLOW"}
    assert spec_for({"Cmd": ["sh"]}, security_opt=["no-new-privileges=true"]).process.no_new_privileges
    assert not spec_for({"Cmd": ["sh"]}, security_opt=["no-new-privileges=false"]).process.no_new_privileges


def test_bad_memory_value_names_the_flag_as_docker_cli():
    with pytest.raises(UsageError) as e:
        parse_size("12q")
    assert e.value.message == 'invalid argument "12q" for "-m, --memory" flag: invalid suffix: \'q\''


def test_an_existing_volumes_options_win_over_volume_opt():
    flags = {"mounts": ["source=vv,target=/v,volume-opt=type=tmpfs,volume-opt=device=tmpfs"]}
    [new] = make_spec({"Cmd": ["sh"]}, RunOptions(image="busybox", **flags), CID, "n", BUNDLE, []).mounts
    assert new.type == "tmpfs"
    [existing] = make_spec({"Cmd": ["sh"]}, RunOptions(image="busybox", **flags), CID, "n", BUNDLE, [],
                           volume_options={"vv": {}}).mounts
    assert (existing.type, existing.source) == ("bind", str(BUNDLE.parent.parent / "volumes" / "vv" / "_data"))
