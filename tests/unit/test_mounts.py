"""mounts.py: `--mount`, `-v`, `--tmpfs`, `--volumes-from` parsed and validated as docker-cli and moby 20.10 do,
and the mount plan (image VOLUMEs, duplicates, inheritance, inspect's `.Mounts` entries). No root needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyctr.errors import UsageError
from pyctr.runtime import mounts as m
from pyctr.runtime.mounts import MountError, MountPoint

ROOT = Path("/r/volumes")


def names(i: int) -> str:
    return f"anon{i}"


def plan(volumes=(), mount_flags=(), tmpfs=(), image_volumes=None, inherited=None) -> list[MountPoint]:
    inputs = m.parse_inputs(list(volumes), list(mount_flags), list(tmpfs), image_volumes, inherited)
    return m.plan_mount_points(inputs, ROOT, names)


# ---------------------------------------------------------------- --mount (docker-cli opts/mount.go)

def test_mount_flag_fields_and_aliases():
    r = m.parse_mount_flag("type=bind,src=/h,dst=/c,readonly,bind-propagation=rshared,consistency=cached")
    assert (r.type, r.source, r.target, r.readonly, r.propagation) == ("bind", "/h", "/c", True, "rshared")
    r = m.parse_mount_flag("source=data,destination=/d,volume-nocopy,volume-opt=type=tmpfs,volume-label=a=b")
    assert (r.type, r.source, r.nocopy, r.volume_options, r.volume_labels) == \
        ("volume", "data", True, {"type": "tmpfs"}, {"a": "b"})  # volume is the default type
    r = m.parse_mount_flag("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770,ro=false")
    assert (r.tmpfs_size, r.tmpfs_mode, r.readonly) == (64 << 20, 0o1770, False)
    assert m.parse_mount_flag('"type=bind","source=/a,b",target=/x').source == "/a,b"  # CSV quoting


@pytest.mark.parametrize(("value", "problem"), [
    ("type=,target=/x", "type is required"),
    ("type=bind,source=/x", "target is required"),
    ("type=bind,target=/x,volume-nocopy", "cannot mix 'volume-*' options with mount type 'bind'"),
    ("type=volume,target=/x,bind-propagation=shared", "cannot mix 'bind-*' options with mount type 'volume'"),
    ("type=bind,target=/x,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type 'bind'"),
    ("target=/x,bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
    ("target=/x,bogus", "invalid field 'bogus' must be a key=value pair"),
    ("target=/x,readonly=maybe", "invalid value for readonly: maybe"),
    ("type=tmpfs,target=/x,tmpfs-size=lots", "invalid value for tmpfs-size: lots"),
    ("type=tmpfs,target=/x,tmpfs-mode=999", "invalid value for tmpfs-mode: 999"),
    ("type=tmpfs,target=/x,tmpfs-mode=-1", "invalid value for tmpfs-mode: -1"),
])
def test_mount_flag_errors_are_docker_clis(value, problem):
    with pytest.raises(UsageError) as caught:
        m.parse_mount_flag(value)
    assert caught.value.message == f'invalid argument "{value}" for "--mount" flag: {problem}'


@pytest.mark.parametrize(("value", "problem"), [
    ("type=bind,source=rel,target=/x", "invalid mount config for type \"bind\": invalid mount path: 'rel' mount "
                                       "path must be absolute"),
    ("type=bind,target=/x", 'invalid mount config for type "bind": field Source must not be empty'),
    ("type=bind,source=/a,target=/", "invalid mount config for type \"bind\": invalid specification: "
                                     "destination can't be '/'"),
    ("type=tmpfs,source=x,target=/x", 'invalid mount config for type "tmpfs": field Source must not be specified'),
    ("type=volume,target=/x,ro", 'invalid mount config for type "volume": must not set ReadOnly mode when using '
                                 "anonymous volumes"),
    ("type=bind,source=/a,target=/x,bind-propagation=weird", 'invalid mount config for type "bind": invalid '
                                                             "propagation mode: weird"),
    ("type=npipe,source=/a,target=/x", 'invalid mount config for type "npipe": mount type unknown'),
    ("type=volume,source=v,target=rel", "invalid mount config for type \"volume\": invalid mount path: 'rel' "
                                        "mount path must be absolute"),
])
def test_mount_config_errors_are_the_daemons(value, problem):
    with pytest.raises(MountError) as caught:
        plan(mount_flags=[value])
    assert caught.value.message == problem


# ---------------------------------------------------------------- -v (moby ParseMountRaw)

def test_volume_flag_kinds_and_modes():
    bind, named, anonymous = plan(volumes=["/srv:/data:ro,rslave", "cache:/cache", "/scratch"])
    assert bind.inspect() == {"Type": "bind", "Source": "/srv", "Destination": "/data", "Mode": "ro,rslave",
                              "RW": False, "Propagation": "rslave"}
    assert named.inspect() == {"Type": "volume", "Name": "cache", "Source": "/r/volumes/cache/_data",
                               "Destination": "/cache", "Driver": "local", "Mode": "z", "RW": True,
                               "Propagation": ""}
    assert (anonymous.name, anonymous.anonymous, anonymous.mode, anonymous.copy_data) == ("anon0", True, "", True)
    assert bind.create_source and not named.create_source


@pytest.mark.parametrize(("value", "message"), [
    ("/foo:rw", "invalid volume specification: '/foo:rw'"),
    (":/x", "invalid volume specification: ':/x'"),
    ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
    ("/a:/b:bogus", "invalid mode: bogus"),
    ("/a:/b:ro,rw", "invalid mode: ro,rw"),
    ("/a:/b:nocopy", "invalid volume specification: '/a:/b:nocopy': invalid mount config for type \"bind\": "
                     "field VolumeOptions must not be specified"),
    ("v:/b:rshared", "invalid volume specification: 'v:/b:rshared': invalid mount config for type \"volume\": "
                     "field BindOptions must not be specified"),
    ("/tmp:relative", "invalid volume specification: '/tmp:relative': invalid mount config for type \"bind\": "
                      "invalid mount path: 'relative' mount path must be absolute"),
    ("/a:/", "invalid volume specification: '/a:/': invalid mount config for type \"bind\": invalid "
             "specification: destination can't be '/'"),
])
def test_volume_flag_errors_are_the_daemons(value, message):
    with pytest.raises(MountError) as caught:
        m.parse_volume_flag(value)
    assert caught.value.message == message


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "x", ".hidden", "-dash", "sp ace", "/"[:0] + "é"])
def test_hostile_or_bad_volume_names_are_the_local_drivers_error(name):
    with pytest.raises(MountError) as caught:
        m.check_volume_name(name)
    assert caught.value.message == m.invalid_volume_name(name)
    assert caught.value.message.startswith(f'create {name}: "{name}" includes invalid characters')


@pytest.mark.parametrize("name", ["ab", "a..b", "a.b_c-d", "0" * 64])
def test_good_volume_names(name):
    assert m.check_volume_name(name) == name


def test_nocopy_mode_disables_copy_up():
    [point] = plan(volumes=["data:/d:nocopy"])
    assert not point.copy_data and point.mode == "nocopy"
    [point] = plan(mount_flags=["source=data,target=/d,volume-nocopy=true"])
    assert not point.copy_data and point.mode == "z"


# ---------------------------------------------------------------- the plan

def test_image_volumes_become_anonymous_unless_covered():
    points = plan(volumes=["named:/data"], image_volumes={"/data": {}, "/logs": {}, "/var/lib/x/": {}})
    assert [(p.destination, p.name, p.anonymous) for p in points] == [
        ("/data", "named", False), ("/logs", "anon0", True), ("/var/lib/x", "anon1", True)]


def test_duplicate_destinations_are_refused():
    with pytest.raises(MountError, match="Duplicate mount point: /x"):
        plan(volumes=["/a:/x", "vv:/x/"])
    with pytest.raises(MountError, match="Duplicate mount point: /x"):
        plan(volumes=["/a:/x"], tmpfs=["/x:size=1m"])


def test_tmpfs_flag_is_mounted_but_not_a_mount_point():
    [point] = plan(tmpfs=["/run:exec,size=64k"])
    assert (point.type, point.shown) == ("tmpfs", False)
    kind, source, options = m.spec_mount_fields(point)
    assert (kind, source) == ("tmpfs", "tmpfs")
    assert options == ["nosuid", "nodev", "exec", "size=64k"]  # Docker's defaults, `exec` undoing noexec
    with pytest.raises(MountError, match="mount path must be absolute"):
        m.parse_tmpfs_flag("run")


def test_mount_tmpfs_options_as_docker_converts_them():
    [point] = plan(mount_flags=["type=tmpfs,target=/t,tmpfs-size=1536k,tmpfs-mode=700"])
    assert point.tmpfs_options == "size=1536k,mode=700"
    [point] = plan(mount_flags=["type=tmpfs,target=/t,tmpfs-size=2g,readonly"])
    assert point.tmpfs_options == "size=2g,ro" and m.spec_mount_fields(point)[2][-1] == "ro"
    assert point.inspect() == {"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "", "RW": False,
                               "Propagation": ""}
    assert m.tmpfs_options(m.MountRequest("tmpfs", "/t", tmpfs_size=1000)) == "size=1000"


def test_volumes_from_inherits_with_mode_and_yields_to_the_users_mounts():
    source = plan(volumes=["/h:/bind:ro", "shared:/s", "/anon"], mount_flags=["type=tmpfs,dst=/t"],
                  tmpfs=["/hidden"])
    inherited = m.inherit(source, "rw")
    assert [(p.destination, p.rw, p.mode) for p in inherited] == [
        ("/bind", False, ""), ("/s", True, ""), ("/anon", True, ""), ("/t", True, "")]  # rw cannot undo C's ro
    assert inherited[2].anonymous and not inherited[2].copy_data
    points = plan(volumes=["mine:/s"], inherited=m.inherit(source, "ro"))
    assert [(p.destination, p.name or p.source, p.rw) for p in points] == [
        ("/s", "mine", True), ("/bind", "/h", False), ("/anon", "anon0", False), ("/t", "", False)]


@pytest.mark.parametrize(("value", "expected"), [("c", ("c", "rw")), ("c:ro", ("c", "ro")), ("c:ro,z", ("c", "ro,z"))])
def test_parse_volumes_from(value, expected):
    assert m.parse_volumes_from(value) == expected


@pytest.mark.parametrize("value", ["c:rshared", "c:nocopy", "c:bogus", ""])
def test_parse_volumes_from_errors(value):
    with pytest.raises(MountError):
        m.parse_volumes_from(value)


def test_local_volume_options_decide_the_mount():
    [point] = plan(volumes=["vv:/v"])
    assert m.spec_mount_fields(point) == ("bind", "/r/volumes/vv/_data", ["rbind", "rprivate", "rw"])
    assert m.spec_mount_fields(point, {"type": "none", "o": "bind", "device": "/srv"}) == \
        ("bind", "/srv", ["bind", "rprivate", "rw"])
    assert m.spec_mount_fields(point, {"type": "tmpfs", "device": "tmpfs", "o": "size=2m,uid=5"}) == \
        ("tmpfs", "tmpfs", ["size=2m", "uid=5", "rw"])


def test_host_config_entries_as_docker_inspect_shows_them():
    entries = m.host_config_entries(["type=bind,src=/a,dst=/b,ro,bind-propagation=shared",
                                     "type=volume,dst=/v,volume-nocopy,volume-opt=o=x",
                                     "type=tmpfs,dst=/t,tmpfs-size=1m"], ["/run:size=1m", "/x"], ["c:ro"])
    assert entries["Mounts"] == [
        {"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True, "BindOptions": {"Propagation": "shared"}},
        {"Type": "volume", "Target": "/v", "VolumeOptions": {"NoCopy": True, "DriverConfig": {"Options": {"o": "x"}}}},
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 20}},
    ]
    assert entries["Tmpfs"] == {"/run": "size=1m", "/x": ""} and entries["VolumesFrom"] == ["c:ro"]
    assert m.host_config_entries([], [], []) == {"Mounts": None, "Tmpfs": None, "VolumesFrom": None}


def test_mount_point_round_trips_through_json():
    import json

    [point] = plan(mount_flags=["source=vv,target=/v,volume-label=a=1"])
    assert MountPoint.from_dict(json.loads(json.dumps(point.to_dict()))) == point
    assert MountPoint.from_dict({**point.to_dict(), "future_key": 1}) == point


def test_bind_nonrecursive_is_a_plain_bind():
    [point] = plan(mount_flags=["type=bind,src=/h,dst=/c,bind-nonrecursive"])
    assert m.spec_mount_fields(point)[2][0] == "bind"
    [point] = plan(mount_flags=["type=bind,src=/h,dst=/c,bind-nonrecursive=false"])
    assert m.spec_mount_fields(point)[2][0] == "rbind"
    assert m.api_mount(m.parse_mount_flag("type=bind,src=/h,dst=/c,bind-nonrecursive"))["BindOptions"] == \
        {"NonRecursive": True}


# moby v20.10 volume/mounts/parser_test.go TestParseMountRaw, its Linux set (valid specs, and the words each
# invalid one's error must hold), run against this port.
MOBY_VALID = ["/home", "/home:/home", "/home:/something/else", "/with space", "/home:/with space",
              "relative:/absolute-path", "hostPath:/containerPath:ro", "/hostPath:/containerPath:rw", "/rw:/ro",
              "/hostPath:/containerPath:shared", "/hostPath:/containerPath:rshared", "/hostPath:/containerPath:slave",
              "/hostPath:/containerPath:rslave", "/hostPath:/containerPath:private",
              "/hostPath:/containerPath:rprivate", "/hostPath:/containerPath:ro,shared",
              "/hostPath:/containerPath:ro,slave", "/hostPath:/containerPath:ro,private",
              "/hostPath:/containerPath:ro,z,shared", "/hostPath:/containerPath:ro,Z,slave",
              "/hostPath:/containerPath:Z,ro,slave", "/hostPath:/containerPath:slave,Z,ro",
              "/hostPath:/containerPath:Z,slave,ro", "/hostPath:/containerPath:slave,ro,Z",
              "/hostPath:/containerPath:rslave,ro,Z", "/hostPath:/containerPath:ro,rshared,Z",
              "/hostPath:/containerPath:ro,Z,rprivate"]
MOBY_INVALID = {
    "": "invalid volume specification", "./": "mount path must be absolute", "../": "mount path must be absolute",
    "/:../": "mount path must be absolute", "/:path": "mount path must be absolute",
    ":": "invalid volume specification", "/tmp:": "invalid volume specification",
    ":test": "invalid volume specification", ":/test": "invalid volume specification",
    "tmp:": "invalid volume specification", ":test:": "invalid volume specification",
    "::": "invalid volume specification", ":::": "invalid volume specification",
    "/tmp:::": "invalid volume specification", ":/tmp::": "invalid volume specification",
    "/path:rw": "invalid volume specification", "/path:ro": "invalid volume specification",
    "/rw:rw": "invalid volume specification", "path:ro": "invalid volume specification",
    "/path:/path:sw": "invalid mode", "/path:/path:rwz": "invalid mode",
    "/path:/path:ro,rshared,rslave": "invalid mode", "/path:/path:ro,z,rshared,rslave": "invalid mode",
    "/path:shared": "invalid volume specification", "/path:slave": "invalid volume specification",
    "/path:private": "invalid volume specification",
    "name:/absolute-path:shared": "invalid volume specification",
    "name:/absolute-path:rshared": "invalid volume specification",
    "name:/absolute-path:slave": "invalid volume specification",
    "name:/absolute-path:rslave": "invalid volume specification",
    "name:/absolute-path:private": "invalid volume specification",
    "name:/absolute-path:rprivate": "invalid volume specification",
}


@pytest.mark.parametrize("spec", MOBY_VALID)
def test_mobys_valid_raw_specs(spec):
    request = m.parse_volume_flag(spec)
    assert request.target == spec.split(":")[0 if ":" not in spec else 1]


@pytest.mark.parametrize(("spec", "words"), sorted(MOBY_INVALID.items()))
def test_mobys_invalid_raw_specs(spec, words):
    with pytest.raises(MountError, match=re.escape(words)):
        m.parse_volume_flag(spec)
