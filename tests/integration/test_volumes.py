"""Volumes through the real CLI: `volume create/ls/inspect/rm/prune`, `-v`, `--mount`, `--tmpfs`, `--volumes-from`,
copy-up of the image's content, anonymous volumes and `rm -v`, and the hostile cases (names with `..` or `/`, a
bind source that is a symlink into PYCTR_ROOT). A root of its own with busybox; nothing may be left behind.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from tests.integration.helpers import leftovers, lifecycle_runner, removed_after

RUN = ("run", "--rm", "--network", "none")


@pytest.fixture(scope="module")
def vc(pyctr_config, tmp_path_factory):
    yield from lifecycle_runner(pyctr_config, tmp_path_factory, "volumes")


@pytest.fixture
def cleanup(vc):
    yield from removed_after(vc)


@pytest.fixture
def volumes(vc):
    """Names a test appends are removed (`volume rm -f`) after it, containers first."""
    names: list[str] = []
    yield names
    if names:
        vc("volume", "rm", "-f", *names)


@pytest.fixture(scope="module")
def data_image(vc, tmp_path_factory):
    """An image whose /data holds a file owned by 1000:1000 in a directory of mode 0750, declared a VOLUME."""
    context = tmp_path_factory.mktemp("data-image")
    (context / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN mkdir -p /data/sub && echo from-image > /data/f && echo deep > /data/sub/g "
        "&& chown -R 1000:1000 /data && chmod 750 /data && ln -s /etc/passwd /data/link\n"
        "VOLUME /data\n")
    vc("build", "-q", "-t", "voldata", str(context), check=True, timeout=180)
    yield "voldata"
    vc("rmi", "-f", "voldata")


def volume_names(vc) -> list[str]:
    return vc("volume", "ls", "-q", check=True).stdout.split()


def test_volume_create_ls_inspect_rm(vc, volumes):
    volumes.append("v1")
    r = vc("volume", "create", "--label", "app=web", "v1", check=True)
    assert r.stdout == "v1\n"
    [doc] = json.loads(vc("volume", "inspect", "v1", check=True).stdout)
    assert (doc["Name"], doc["Driver"], doc["Scope"], doc["Labels"]) == ("v1", "local", "local", {"app": "web"})
    assert doc["Mountpoint"] == str(vc.root / "volumes" / "v1" / "_data")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["CreatedAt"])
    table = vc("volume", "ls", check=True).stdout.splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["DRIVER", "VOLUME NAME"] and ["local", "v1"] in \
        [row.split() for row in table[1:]]
    assert vc("volume", "ls", "--filter", "label=app=web", "--format", "{{.Name}} {{.Labels}}").stdout == \
        "v1 app=web\n"
    assert vc("volume", "ls", "-q", "--filter", "label=app=db").stdout == ""
    assert vc("volume", "ls", "-q", "--filter", "name=^v1$", "--filter", "dangling=true").stdout == "v1\n"
    assert vc("volume", "create", "v1", check=True).stdout == "v1\n"  # existing: returned as it is
    assert vc("volume", "rm", "v1").stdout == "v1\n"
    assert "v1" not in volume_names(vc)
    r = vc("volume", "rm", "v1")
    assert (r.returncode, r.stderr) == (1, "Error: No such volume: v1\n")
    assert vc("volume", "rm", "-f", "v1").returncode == 0  # -f forgives a missing volume
    r = vc("volume", "inspect", "nosuch")
    assert (r.returncode, r.stderr) == (1, "Error: No such volume: nosuch\n")


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "/abs", "x"])
def test_hostile_volume_names_are_refused(vc, name):
    r = vc("volume", "create", name)
    assert r.returncode == 1 and "includes invalid characters for a local volume name" in r.stderr, r.stderr
    assert r.stderr.startswith("Error response from daemon: create ")
    r = vc(*RUN, "--mount", f"source={name},target=/x", "busybox", "true")
    assert r.returncode == 125 and "includes invalid characters" in r.stderr
    assert not (vc.root / "escape").exists() and not (vc.root / "a").exists()
    assert leftovers(vc.root) == []


def test_named_volume_survives_its_container(vc, volumes):
    volumes.append("keep")
    vc(*RUN, "-v", "keep:/k", "busybox", "sh", "-c", "echo persisted > /k/f", check=True)
    assert "keep" in volume_names(vc)
    r = vc(*RUN, "--mount", "type=volume,source=keep,target=/again,readonly", "busybox", "sh", "-c",
           "cat /again/f; touch /again/x")
    assert r.stdout == "persisted\n" and r.returncode != 0 and "Read-only file system" in r.stderr


def test_image_content_is_copied_into_a_new_volume_only(vc, volumes, data_image):
    volumes.extend(["fresh", "full", "nocopy"])
    script = "stat -c '%u:%g %a' /data; cat /data/f /data/sub/g; readlink /data/link"
    r = vc(*RUN, "-v", "fresh:/data", data_image, "sh", "-c", script, check=True)
    assert r.stdout == "1000:1000 750\nfrom-image\ndeep\n/etc/passwd\n"
    host = vc.root / "volumes" / "fresh" / "_data"
    assert (host.stat().st_uid, oct(host.stat().st_mode & 0o777)) == (1000, "0o750")
    assert os.readlink(host / "link") == "/etc/passwd"  # copied as a link, never followed
    vc("volume", "create", "full", check=True)
    (vc.root / "volumes" / "full" / "_data" / "mine").write_text("mine\n")
    r = vc(*RUN, "-v", "full:/data", data_image, "ls", "/data", check=True)
    assert r.stdout == "mine\n"  # a volume with content is left as it is
    r = vc(*RUN, "-v", "nocopy:/data:nocopy", data_image, "ls", "-A", "/data", check=True)
    assert r.stdout == ""


def test_image_volume_is_anonymous_and_goes_with_rm_v(vc, cleanup, data_image):
    before = set(volume_names(vc))
    cleanup.append("anon")
    vc("create", "--name", "anon", "--network", "none", data_image, "cat", "/data/f", check=True)
    [new] = set(volume_names(vc)) - before
    assert re.fullmatch(r"[0-9a-f]{64}", new)
    assert vc("start", "-a", "anon").stdout == "from-image\n"
    mounts = json.loads(vc("inspect", "-f", "{{json .Mounts}}", "anon", check=True).stdout)
    assert mounts == [{"Type": "volume", "Name": new, "Source": str(vc.root / "volumes" / new / "_data"),
                       "Destination": "/data", "Driver": "local", "Mode": "", "RW": True, "Propagation": ""}]
    r = vc("volume", "rm", new)
    assert r.returncode == 1
    assert r.stderr.strip() == f"Error response from daemon: remove {new}: volume is in use - " \
        f"[{vc('inspect', '-f', '{{.Id}}', 'anon').stdout.strip()}]"
    vc("rm", "-v", "anon", check=True)
    assert set(volume_names(vc)) == before


def test_volume_in_use_by_a_stopped_container_cannot_be_removed_then_prune(vc, cleanup, volumes):
    cleanup.append("holder")
    volumes.extend(["held", "loose"])
    vc("create", "--name", "holder", "-v", "held:/h", "busybox", "true", check=True)
    vc("volume", "create", "loose", check=True)
    assert vc("volume", "ls", "-q", "--filter", "dangling=false").stdout.split() == ["held"]
    assert vc("volume", "rm", "held").returncode == 1
    r = vc("volume", "prune", "-f", check=True)
    assert "loose" in r.stdout and "held" not in r.stdout and r.stdout.startswith("Deleted Volumes:\n")
    assert set(volume_names(vc)) >= {"held"} and "loose" not in volume_names(vc)
    vc("rm", "holder", check=True)
    assert vc("volume", "rm", "held", check=True).stdout == "held\n"


def test_mount_tmpfs_with_size_and_mode(vc):
    r = vc(*RUN, "--mount", "type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770", "busybox", "sh", "-c",
           "grep ' /t ' /proc/mounts; stat -c %a /t", check=True)
    line, mode = r.stdout.splitlines()
    assert line.split()[2] == "tmpfs" and "size=1024k" in line and "noexec" in line and mode == "1770"
    r = vc(*RUN, "--tmpfs", "/run/x:exec,size=64k", "busybox", "grep", " /run/x ", "/proc/mounts", check=True)
    assert "size=64k" in r.stdout and "noexec" not in r.stdout and "nosuid" in r.stdout


def test_mount_bind_and_docker_errors(vc, tmp_path):
    (tmp_path / "f").write_text("host\n")
    r = vc(*RUN, "--mount", f"type=bind,src={tmp_path},dst=/h,ro", "busybox", "cat", "/h/f", check=True)
    assert r.stdout == "host\n"
    r = vc(*RUN, "--mount", "type=bind,source=/nonexistent-x,target=/x", "busybox", "true")
    assert r.returncode == 125
    assert r.stderr.startswith('pyctr: Error response from daemon: invalid mount config for type "bind": '
                               "bind source path does not exist: /nonexistent-x.")
    r = vc(*RUN, "--mount", "type=tmpfs,source=x,target=/x", "busybox", "true")
    assert r.returncode == 125 and "field Source must not be specified" in r.stderr
    r = vc(*RUN, "--mount", "type=bind,target=/x,volume-nocopy", "busybox", "true")
    assert r.returncode == 125 and "cannot mix 'volume-*' options with mount type 'bind'" in r.stderr
    r = vc(*RUN, "--mount", "target=/x,bogus=1", "busybox", "true")
    assert r.returncode == 125 and "unexpected key 'bogus' in 'bogus=1'" in r.stderr
    r = vc(*RUN, "-v", "/a:/x", "--tmpfs", "/x", "busybox", "true")
    assert r.returncode == 125 and "Duplicate mount point: /x" in r.stderr
    assert leftovers(vc.root) == []


def test_volumes_from_shares_mounts_with_mode(vc, cleanup, volumes):
    cleanup.extend(["source-c"])
    volumes.append("shared")
    vc("create", "--name", "source-c", "-v", "shared:/s", "-v", "/anon", "busybox", "true", check=True)
    r = vc(*RUN, "--volumes-from", "source-c", "busybox", "sh", "-c", "echo hi > /s/f; echo a > /anon/a", check=True)
    r = vc(*RUN, "--volumes-from", "source-c:ro", "busybox", "sh", "-c", "cat /s/f /anon/a; touch /s/g")
    assert r.stdout == "hi\na\n" and "Read-only file system" in r.stderr
    r = vc(*RUN, "--volumes-from", "nosuch", "busybox", "true")
    assert r.returncode == 125 and "No such container: nosuch" in r.stderr


def test_local_volume_options_tmpfs_and_bind(vc, volumes, tmp_path):
    volumes.extend(["tmpv", "bindv"])
    vc("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=2m", "tmpv", check=True)
    r = vc(*RUN, "-v", "tmpv:/t", "busybox", "grep", " /t ", "/proc/mounts", check=True)
    assert r.stdout.split()[2] == "tmpfs" and "size=2048k" in r.stdout
    (tmp_path / "h").write_text("bound\n")
    vc("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={tmp_path}", "bindv", check=True)
    assert vc(*RUN, "-v", "bindv:/b", "busybox", "cat", "/b/h", check=True).stdout == "bound\n"
    [doc] = json.loads(vc("volume", "inspect", "bindv").stdout)
    assert doc["Options"] == {"type": "none", "o": "bind", "device": str(tmp_path)}
    r = vc("volume", "create", "-o", "bogus=1", "badopt")
    assert r.returncode == 1 and 'create badopt: invalid option: "bogus"' in r.stderr


def test_bind_source_symlink_into_the_store_is_refused(vc, volumes, tmp_path):
    """A symlink (or a plain path) leading into PYCTR_ROOT must not hand a container pyctr's state: other
    containers' layers and volumes, the image store, the locks."""
    volumes.append("secret")
    vc("volume", "create", "secret", check=True)
    (vc.root / "volumes" / "secret" / "_data" / "s").write_text("other tenant\n")
    for target in (vc.root, vc.root / "volumes", vc.root / "volumes" / "secret" / "_data"):
        link = tmp_path / f"link-{target.name}"
        link.symlink_to(target)
        for flag in (("--mount", f"type=bind,source={link},target=/x"), ("-v", f"{link}:/x")):
            r = vc(*RUN, *flag, "busybox", "cat", "/x/s")
            assert r.returncode == 125 and "state directory" in r.stderr and "other tenant" not in r.stdout, r
    r = vc(*RUN, "-v", f"{vc.root}/volumes/secret/_data:/x", "busybox", "cat", "/x/s")
    assert r.returncode == 125 and "state directory" in r.stderr
    r = vc(*RUN, "-v", "secret:/x", "busybox", "cat", "/x/s", check=True)  # by its name it is fine
    assert r.stdout == "other tenant\n"


def test_bind_source_swapped_to_the_store_after_create_is_refused_at_start(vc, cleanup, tmp_path):
    """The create-time check sees a plain directory; the link swapped in before `start` is caught on the
    opened source (rootfs.apply_mount), so the race gains nothing."""
    cleanup.append("swap")
    source = tmp_path / "src"
    source.mkdir()
    vc("create", "--name", "swap", "--network", "none", "-v", f"{source}:/x", "busybox", "ls", "/x", check=True)
    source.rmdir()
    source.symlink_to(vc.root / "containers")
    r = vc("start", "-a", "swap")
    assert r.returncode != 0 and "state directory" in r.stderr and vc("inspect", "-f", "{{.Id}}", "swap").stdout \
        .strip() not in r.stdout


def test_leak_200_cycles_leave_no_volume_or_mount(vc):
    before = set(volume_names(vc))
    started = time.monotonic()
    for i in range(200):
        name = f"cyc{i}"
        vc("volume", "create", name, check=True)
        vc("create", "--name", "c-" + name, "--network", "none", "-v", f"{name}:/v", "-v", "/anon",
           "--tmpfs", "/t", "busybox", "true", check=True)
        vc("start", "-a", "c-" + name, check=True)
        vc("rm", "-v", "c-" + name, check=True)
        vc("volume", "rm", name, check=True)
    elapsed = time.monotonic() - started
    assert set(volume_names(vc)) == before
    hidden = [p.name for p in (vc.root / "volumes").iterdir() if p.name.startswith(".")]
    assert hidden == [] and leftovers(vc.root) == []
    print(f"200 volume cycles: {elapsed:.1f}s")


def test_anonymous_volume_over_a_file_is_refused_and_leaves_nothing(vc):
    before = set(volume_names(vc))
    r = vc(*RUN, "-v", "/etc/passwd", "busybox", "true")
    assert r.returncode == 125
    assert "cannot mount volume over existing file, file exists " in r.stderr and "/etc/passwd" in r.stderr
    assert set(volume_names(vc)) == before and leftovers(vc.root) == []


def test_bind_alias_of_the_store_and_volume_device_into_it_are_refused(vc, volumes, tmp_path):
    """A second mount of PYCTR_ROOT elsewhere (no symlink anywhere) is caught by identity, walking `..` up from
    the source; a local volume whose `device` is in the store is a bind source like any other."""
    import subprocess

    volumes.extend(["secret2", "sneaky"])
    vc("volume", "create", "secret2", check=True)
    alias = tmp_path / "alias"
    alias.mkdir()
    subprocess.run(["mount", "--bind", str(vc.root), str(alias)], check=True)
    try:
        r = vc(*RUN, "-v", f"{alias}/volumes/secret2/_data:/x", "busybox", "true")
        assert r.returncode == 125 and "state directory" in r.stderr, r.stderr
    finally:
        subprocess.run(["umount", str(alias)], check=True)
    vc("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={vc.root}/containers", "sneaky",
       check=True)
    r = vc(*RUN, "-v", "sneaky:/x", "busybox", "ls", "/x")
    assert r.returncode == 125 and "state directory" in r.stderr, r.stderr


def test_an_overlay_volume_over_the_store_is_refused(vc, volumes, tmp_path):
    """The attack review listed the state directory through an overlay volume whose lowerdir was PYCTR_ROOT."""
    volumes.append("layered")
    upper, work = tmp_path / "up", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    vc("volume", "create", "-o", "type=overlay", "-o", "device=overlay",
       "-o", f"o=lowerdir={vc.root},upperdir={upper},workdir={work}", "layered", check=True)
    r = vc(*RUN, "-v", "layered:/x", "busybox", "ls", "/x")
    assert r.returncode == 125 and "state directory" in r.stderr, (r.stdout, r.stderr)
    assert "blobs" not in r.stdout


def test_failed_start_of_an_auto_removed_container_takes_its_anonymous_volumes(vc):
    before = set(volume_names(vc))
    r = vc(*RUN, "-v", "/anon", "busybox", "nosuchcommand")
    assert r.returncode == 127
    r = vc("run", "-d", "--rm", "--network", "none", "-v", "/anon2", "busybox", "nosuchcommand")
    assert r.returncode == 127
    assert set(volume_names(vc)) == before and leftovers(vc.root) == []
