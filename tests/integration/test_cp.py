"""`pyctr cp` through the real CLI: files and directories both ways, running and stopped containers, tar
streams, ownership, and hostile symlinks planted by the container (CVE-2018-15664) that must never make cp
touch the host."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import uuid

import pytest

from tests.integration.conftest import PYCTR_BIN, PyctrRunner, _env_for, make_root


@pytest.fixture(scope="module")
def cpr(pyctr_config, tmp_path_factory):
    if not PYCTR_BIN.exists():
        pytest.fail(f"{PYCTR_BIN} is missing: run `make install`", pytrace=False)
    runner = PyctrRunner(_env_for(make_root(tmp_path_factory.mktemp("cp") / "root"), pyctr_config))
    runner("pull", "busybox", check=True, timeout=120)
    yield runner
    ids = runner("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        runner("rm", "-f", *ids)
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if str(runner.root) in line], "a cp left a mount behind"


@pytest.fixture
def box(cpr):
    name = f"cp-{uuid.uuid4().hex[:8]}"
    cpr("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "1000", check=True)
    yield name
    cpr("rm", "-f", name)


def sh(runner: PyctrRunner, name: str, script: str) -> str:
    return runner("exec", name, "sh", "-c", script, check=True).stdout


def digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_file_round_trip(cpr, box, tmp_path):
    src = tmp_path / "hello.txt"
    src.write_text("hello from the host\n")
    os.chmod(src, 0o640)
    cpr("cp", str(src), f"{box}:/tmp/", check=True)
    assert sh(cpr, box, "cat /tmp/hello.txt; stat -c '%a %u %g' /tmp/hello.txt") == \
        "hello from the host\n640 0 0\n"
    cpr("cp", str(src), f"{box}:/tmp/renamed.txt", check=True)
    cpr("cp", f"{box}:/tmp/renamed.txt", str(tmp_path / "back.txt"), check=True)
    assert (tmp_path / "back.txt").read_text() == "hello from the host\n"
    assert os.stat(tmp_path / "back.txt").st_mode & 0o777 == 0o640
    cpr("cp", f"{box}:etc/passwd", str(tmp_path), check=True)  # relative container path = from its /
    assert (tmp_path / "passwd").read_text().startswith("root:x:0:0")


def test_directory_round_trip(cpr, box, tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "sub" / "deeper" / "f").write_text("deep\n")
    (tree / "top.sh").write_text("#!/bin/sh\necho ran\n")
    os.chmod(tree / "top.sh", 0o755)
    os.symlink("sub/deeper/f", tree / "link")
    cpr("cp", str(tree), f"{box}:/srv", check=True)  # missing destination: created with the contents
    assert sh(cpr, box, "cat /srv/sub/deeper/f; /srv/top.sh; readlink /srv/link") == "deep\nran\nsub/deeper/f\n"
    cpr("cp", str(tree), f"{box}:/srv", check=True)  # existing directory: copied into it
    assert sh(cpr, box, "cat /srv/tree/sub/deeper/f") == "deep\n"
    out = tmp_path / "out"
    out.mkdir()
    cpr("cp", f"{box}:/srv/.", str(out), check=True)  # "/." copies the contents
    assert (out / "sub" / "deeper" / "f").read_text() == "deep\n"
    assert (out / "tree" / "top.sh").read_text() == "#!/bin/sh\necho ran\n"
    assert os.readlink(out / "link") == "sub/deeper/f"
    assert os.stat(out / "top.sh").st_mode & 0o777 == 0o755


def test_archive_mode_keeps_owners(cpr, box, tmp_path):
    src = tmp_path / "owned"
    src.write_text("x")
    os.chown(src, 1234, 2345)
    cpr("cp", "-a", str(src), f"{box}:/tmp/", check=True)
    cpr("cp", str(src), f"{box}:/tmp/plain", check=True)
    assert sh(cpr, box, "stat -c '%u %g' /tmp/owned /tmp/plain") == "1234 2345\n0 0\n"
    sh(cpr, box, "echo y > /tmp/app-owned; chown 1000:1000 /tmp/app-owned")
    cpr("cp", f"{box}:/tmp/app-owned", str(tmp_path / "host-owned"), check=True)
    cpr("cp", "-a", f"{box}:/tmp/app-owned", str(tmp_path / "kept"), check=True)
    assert (os.stat(tmp_path / "host-owned").st_uid, os.stat(tmp_path / "kept").st_uid) == (os.getuid(), 1000)


def test_follow_link_in_source(cpr, box, tmp_path):
    sh(cpr, box, "echo target > /tmp/target; ln -s /tmp/target /tmp/alias")
    cpr("cp", f"{box}:/tmp/alias", str(tmp_path / "as-link"), check=True)
    assert os.readlink(tmp_path / "as-link") == "/tmp/target"
    cpr("cp", "-L", f"{box}:/tmp/alias", str(tmp_path / "as-file"), check=True)
    assert (tmp_path / "as-file").read_text() == "target\n"


def test_tar_streams(cpr, box, tmp_path):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        info = tarfile.TarInfo("streamed/file.txt")
        payload = b"from a tar stream\n"
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    proc = subprocess.run([str(PYCTR_BIN), "cp", "-", f"{box}:/tmp"], input=data.getvalue(), env=cpr.env,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sh(cpr, box, "cat /tmp/streamed/file.txt") == "from a tar stream\n"
    proc = subprocess.run([str(PYCTR_BIN), "cp", f"{box}:/tmp/streamed", "-"], env=cpr.env, capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as archive:
        assert archive.getnames() == ["streamed", "streamed/file.txt"]
        assert archive.extractfile("streamed/file.txt").read() == b"from a tar stream\n"
    r = cpr("cp", "-", f"{box}:/etc/passwd")
    assert r.returncode == 1 and "must be a directory" in r.stderr


def test_errors(cpr, box, tmp_path):
    """docker-cli's cp: every error exits 1; the archive API's 404 is `Error: No such container:path: c:/p`."""
    r = cpr("cp", f"{box}:/nonexistent", str(tmp_path))
    assert r.returncode == 1 and f"No such container:path: {box}:/nonexistent" in r.stderr
    r = cpr("cp", str(tmp_path / "missing"), f"{box}:/tmp")
    assert r.returncode == 1 and "no such file or directory" in r.stderr
    r = cpr("cp", "no-such-container:/etc", str(tmp_path))
    assert r.returncode == 1 and "Error: No such container:path: no-such-container:/etc" in r.stderr
    r = cpr("cp", f"{box}:/etc", f"{box}:/tmp")
    assert r.returncode == 1 and "copying between containers is not supported" in r.stderr
    r = cpr("cp", f"{box}:/etc", f"{tmp_path}/no/such/dir/")
    assert r.returncode == 1


@pytest.mark.parametrize("setup,destination", [
    ("ln -s /etc /tmp/x", "/tmp/x/passwd"),
    ("ln -s / /hostroot", "/hostroot/etc/passwd"),
    ("ln -s ../../../../../../etc /tmp/up", "/tmp/up/passwd"),
    ("mkdir -p /tmp/d && ln -s /etc/passwd /tmp/d/passwd", "/tmp/d/passwd"),
])
def test_hostile_symlinks_only_reach_the_containers_files(cpr, box, tmp_path, setup, destination):
    before = digest("/etc/passwd")
    sh(cpr, box, setup)
    src = tmp_path / "evil.txt"
    src.write_text("pwned:x:0:0::/:/bin/sh\n")
    r = cpr("cp", str(src), f"{box}:{destination}")
    assert digest("/etc/passwd") == before, "the host's /etc/passwd was modified"
    assert r.returncode == 0, r.stderr
    assert sh(cpr, box, "cat /etc/passwd") == "pwned:x:0:0::/:/bin/sh\n"  # the container's own file
    cpr("cp", "-L", f"{box}:{destination}", str(tmp_path / "read-back"), check=True)
    assert (tmp_path / "read-back").read_text() == "pwned:x:0:0::/:/bin/sh\n"


def test_hostile_symlink_as_source_reads_the_containers_file(cpr, box, tmp_path):
    sh(cpr, box, "ln -s /etc/shadow-of-host /tmp/s; ln -s / /tmp/root")
    r = cpr("cp", "-L", f"{box}:/tmp/s", str(tmp_path / "x"))
    assert r.returncode == 1 and not (tmp_path / "x").exists()
    cpr("cp", f"{box}:/tmp/root/etc/hostname", str(tmp_path / "hostname"), check=True)
    with open("/etc/hostname") as host_hostname:
        assert (tmp_path / "hostname").read_text() != host_hostname.read()


def test_stopped_and_created_containers(cpr, tmp_path):
    name = f"cp-stopped-{uuid.uuid4().hex[:6]}"
    cpr("run", "--name", name, "--network", "none", "busybox", "sh", "-c", "echo kept > /root/data", check=True)
    try:
        cpr("cp", f"{name}:/root/data", str(tmp_path / "data"), check=True)
        assert (tmp_path / "data").read_text() == "kept\n"
        (tmp_path / "in.txt").write_text("copied while stopped\n")
        cpr("cp", str(tmp_path / "in.txt"), f"{name}:/root/", check=True)
        r = cpr("start", "-a", name)
        assert r.returncode == 0
        cpr("cp", f"{name}:/root/in.txt", str(tmp_path / "back.txt"), check=True)
        assert (tmp_path / "back.txt").read_text() == "copied while stopped\n"
    finally:
        cpr("rm", "-f", name)
    created = f"cp-created-{uuid.uuid4().hex[:6]}"
    cpr("create", "--name", created, "--network", "none", "busybox", "cat", "/greeting", check=True)
    try:
        (tmp_path / "greeting").write_text("before the first start\n")
        cpr("cp", str(tmp_path / "greeting"), f"{created}:/", check=True)
        r = cpr("start", "-a", created)
        assert (r.returncode, r.stdout) == (0, "before the first start\n")
    finally:
        cpr("rm", "-f", created)


def test_devices_and_setuid_bits_do_not_reach_the_host(cpr, box, tmp_path):
    sh(cpr, box, "cp /bin/busybox /tmp/suid && chmod 4755 /tmp/suid && mkdir /tmp/devs && mknod /tmp/devs/disk b 8 0")
    cpr("cp", f"{box}:/tmp/suid", str(tmp_path / "plain"), check=True)
    cpr("cp", "-a", f"{box}:/tmp/suid", str(tmp_path / "kept"), check=True)
    assert os.stat(tmp_path / "plain").st_mode & 0o7777 == 0o755
    assert os.stat(tmp_path / "kept").st_mode & 0o7777 == 0o4755
    r = cpr("cp", "-a", f"{box}:/tmp/devs", str(tmp_path / "devs"), check=True)
    assert "skipped 1 device node" in r.stderr
    assert os.listdir(tmp_path / "devs") == []


def test_read_only_container_refuses_writes_even_when_stopped(cpr, tmp_path):
    name = f"cp-ro-{uuid.uuid4().hex[:6]}"
    cpr("run", "--name", name, "--read-only", "--network", "none", "busybox", "true", check=True)
    try:
        (tmp_path / "f").write_text("x")
        r = cpr("cp", str(tmp_path / "f"), f"{name}:/tmp/")
        assert r.returncode == 1 and "read-only file system" in r.stderr
        cpr("cp", f"{name}:/etc/passwd", str(tmp_path / "passwd"), check=True)  # reading still works
    finally:
        cpr("rm", "-f", name)
