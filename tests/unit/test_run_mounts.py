"""RUN --mount and build --secret: BuildKit's option rules (commands_runmount.go, convert_runmount.go).

The mounts themselves are proven for real in tests/integration/test_build.py; here are the decisions:
what each option means, its defaults and BuildKit's errors, and how mount points stay out of the layer.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyctr.build import instructions as ins
from pyctr.build.parser import parse_dockerfile
from pyctr.build.run_mounts import RunMount, parse_mount, parse_secret_flag, resolve_mount
from pyctr.build.run_step import remove_mount_stubs, stub_mount_points
from pyctr.errors import BuildError, DockerfileSyntaxError, UsageError
from pyctr.runtime.spec import Mount


@pytest.mark.parametrize("text, expected", [
    ("target=/x", RunMount(type="bind", target="/x", readonly=True)),
    ("type=bind,src=a,dst=/x,rw", RunMount(type="bind", source="a", target="/x", readonly=False)),
    ("type=bind,source=a,destination=/x,readwrite=true", RunMount(source="a", target="/x", readonly=False)),
    ("type=bind,from=builder,source=/out,target=/x,ro=false",
     RunMount(from_="builder", source="/out", target="/x", readonly=False)),
    ("type=cache,target=/root/.cache", RunMount(type="cache", target="/root/.cache", readonly=False)),
    ("type=cache,target=/c,id=pip,sharing=LOCKED,mode=0700,uid=1000,gid=1000,ro",
     RunMount(type="cache", target="/c", id="pip", sharing="locked", mode=0o700, uid=1000, gid=1000,
              readonly=True)),
    ("type=tmpfs,target=/t,size=64m", RunMount(type="tmpfs", target="/t", size=64 << 20, readonly=False)),
    ("type=secret,id=tok", RunMount(type="secret", id="tok", readonly=True)),
    ("type=secret,id=tok,required,mode=0440,uid=1", RunMount(type="secret", id="tok", required=True,
                                                             mode=0o440, uid=1)),
    ("type=secret,id=tok,env=TOKEN", RunMount(type="secret", id="tok", env="TOKEN")),
    ("type=ssh,required=true", RunMount(type="ssh", required=True)),
    ("TYPE=Cache,Target=/c", RunMount(type="cache", target="/c", readonly=False)),
])
def test_parse_mount_like_buildkit(text, expected):
    assert parse_mount(text) == expected


@pytest.mark.parametrize("text, message", [
    ("type=nfs,target=/x", 'unsupported mount type "nfs"'),
    ("type=bind,target=/x,mode=0700", 'mode not allowed for "bind" type mounts'),
    ("type=tmpfs,target=/x,uid=1", 'uid not allowed for "tmpfs" type mounts'),
    ("type=bind,target=/x,size=1m", "unexpected key 'size' for mount type 'bind'"),
    ("type=cache,target=/x,required", "unexpected key 'required' for mount type 'cache'"),
    ("required,type=secret,id=x", "unexpected key 'required' for mount type 'bind'"),
    ("type=cache,target=/x,sharing=all", 'unsupported sharing value "all"'),
    ("type=bind,target=/x,sharing=shared", "invalid cache sharing set for bind mount"),
    ("type=secret,id=x,from=stage", "secret mount should not have a from"),
    ("type=secret", "invalid secret mount. one of source, target required"),
    ("type=secret,id=a,source=b", "both source and id can't be set"),
    ("type=cache,target=/x,mode=9", "invalid value 9 for mode"),
    ("type=cache,target=/x,uid=-1", "invalid value -1 for uid"),
    ("type=cache,target=/x,mode=0o700", "invalid value 0o700 for mode"),
    ("type=cache,target=/x,gid=1_000", "invalid value 1_000 for gid"),
    ("type=cache,target=/x,uid=4294967296", "invalid value 4294967296 for uid"),
    ("type=bind,target=/x,ro=maybe", "invalid value for ro: maybe"),
    ("type=bind,target=/x,bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
    ("type=bind,target=/x,nokey", "invalid field 'nokey' must be a key=value pair"),
    ("type=tmpfs,target=/x,size=lots", "invalid value for size: lots"),
])
def test_parse_mount_errors(text, message):
    with pytest.raises(BuildError, match=message):
        parse_mount(text)


def test_resolve_defaults():
    assert resolve_mount(parse_mount("type=cache,target=cache"), "/app").target == "/app/cache"
    assert resolve_mount(parse_mount("type=cache,target=/c/"), "/").id == "/c"
    secret = resolve_mount(parse_mount("type=secret,id=tok"), "/")
    assert (secret.target, secret.id, secret.readonly) == ("/run/secrets/tok", "tok", True)
    assert resolve_mount(parse_mount("type=secret,target=/etc/key"), "/").id == "key"
    assert resolve_mount(parse_mount("type=secret,source=legacy"), "/").id == "legacy"
    assert resolve_mount(parse_mount("type=ssh"), "/", 2).target == "/run/buildkit/ssh_agent.2"
    with pytest.raises(BuildError, match="mount target must be specified"):
        resolve_mount(parse_mount("type=cache"), "/")
    with pytest.raises(BuildError, match='invalid mount target "/"'):
        resolve_mount(parse_mount("type=tmpfs,target=/"), "/")


def test_run_instruction_carries_mounts_expanded_and_not_in_history():
    df = parse_dockerfile("FROM scratch\nARG DIR=/cache\nWORKDIR /w\n"
                          "RUN --mount=type=cache,target=$DIR --mount=type=secret,id=tok --mount=type=bind,target=src"
                          " make\n")
    state = ins.start_stage({}, (), stage_index=0, stage_name=None, build_args={}, meta_args={}, created="x")
    step = None
    for inst in df.stages[0].instructions:
        state, step = ins.apply_instruction(state, inst)
    assert isinstance(step, ins.RunStep)
    assert [(m.type, m.target) for m in step.mounts] == [
        ("cache", "/cache"), ("secret", "/run/secrets/tok"), ("bind", "/w/src")]
    assert "mount" not in step.created_by and step.argv[-1] == "make"


def test_run_mount_errors_name_the_line():
    with pytest.raises(DockerfileSyntaxError, match='Dockerfile:2: unsupported mount type "nfs"'):
        state = ins.start_stage({}, (), stage_index=0, stage_name=None, build_args={}, meta_args={}, created="x")
        inst = parse_dockerfile("FROM scratch\nRUN --mount=type=nfs,target=/x true\n").stages[0].instructions[0]
        ins.apply_instruction(state, inst)


@pytest.mark.parametrize("text, environ, expected", [
    ("id=tok,src=/run/tok", {}, ("tok", "/run/tok", None)),
    ("id=tok,source=f", {}, ("tok", "f", None)),
    ("src=/path/to/key", {}, ("key", "/path/to/key", None)),
    ("id=tok,env=TOKEN", {}, ("tok", None, "TOKEN")),
    ("id=tok,type=env", {}, ("tok", None, "tok")),
    ("id=HOME", {"HOME": "/root"}, ("HOME", None, "HOME")),
    ("id=file", {}, ("file", "file", None)),
])
def test_secret_flag(text, environ, expected):
    secret = parse_secret_flag(text, environ)
    assert (secret.id, secret.path, secret.env) == expected


@pytest.mark.parametrize("text", ["tok", "id=a,src=b,env=C", "id=a,type=ssh", "id=a,bogus=1", "type=file"])
def test_secret_flag_errors(text):
    with pytest.raises(UsageError):
        parse_secret_flag(text, {})


def test_mount_points_go_in_the_init_layer_with_the_image_modes(tmp_path):
    image = tmp_path / "image"
    (image / "tmp").mkdir(parents=True)
    os.chmod(image / "tmp", 0o1777)
    (image / "var").mkdir()
    os.symlink("/tmp", image / "var" / "tmp")
    init = tmp_path / "init"
    init.mkdir()
    secret_file = tmp_path / "secret"
    secret_file.write_text("s")
    mounts = [Mount("/tmp/cache/pip", "bind", str(tmp_path), []), Mount("/run/secrets/tok", "bind", str(secret_file),
                                                                       []),
              Mount("/var/tmp/x", "tmpfs", "tmpfs", [])]
    left = stub_mount_points(init, [image], mounts)
    assert left == [mounts[2]]  # through a symlink: the runtime resolves it, the stub is removed afterwards
    assert (init / "tmp" / "cache" / "pip").is_dir()
    assert (init / "tmp").stat().st_mode & 0o7777 == 0o1777  # not hidden by a 0755 copy
    assert (init / "run" / "secrets" / "tok").is_file()
    assert not (image / "tmp" / "cache").exists()


def test_stubs_the_runtime_made_are_removed_from_the_layer(tmp_path):
    image, upper = tmp_path / "image", tmp_path / "upper"
    (image / "var").mkdir(parents=True)
    (upper / "var" / "tmp" / "x").mkdir(parents=True)
    (upper / "var" / "kept").write_text("made by the command")
    remove_mount_stubs(upper, [image], [Mount("/var/tmp/x", "tmpfs", "tmpfs", [])])
    assert not (upper / "var" / "tmp").exists()
    assert (upper / "var" / "kept").exists()
    (upper / "data").mkdir()
    (upper / "data" / "file").write_text("written under the mount point before it was one")
    remove_mount_stubs(upper, [Path(image)], [Mount("/data", "tmpfs", "tmpfs", [])])
    assert (upper / "data" / "file").exists()


def test_bind_source_from_a_stage_stays_inside_its_root(tmp_path):
    """`from=stage,source=../../etc` or a stage's symlink to /etc mean the stage's own /etc, never the host's."""
    from pyctr.build.staging import resolve_in_root

    root = tmp_path / "stage"
    (root / "etc").mkdir(parents=True)
    (root / "out").mkdir()
    os.symlink("/etc", root / "out" / "abs")
    os.symlink("../../../../etc", root / "out" / "rel")
    for source in ("../../etc", "/out/abs", "out/rel", "out/abs/../../../etc"):
        assert resolve_in_root(root, source) == root / "etc", source
    os.symlink("loop", root / "loop")
    with pytest.raises(BuildError, match="too many levels of symbolic links"):
        resolve_in_root(root, "loop")
