"""commit keeps the runtime's mount-point stubs out of the image, as Docker's init layer does: a container of an
image without /proc, /sys, /etc/hosts, /etc/hostname or /etc/resolv.conf gets them made as mount targets in its
writable layer; `diff` does not list them and the committed layer holds only what the container itself wrote."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from tests.integration.helpers import lifecycle_runner, removed_after


@pytest.fixture(scope="module")
def cs(pyctr_config, tmp_path_factory):
    yield from lifecycle_runner(pyctr_config, tmp_path_factory, "commit-stubs")


@pytest.fixture
def cleanup(cs):
    yield from removed_after(cs)


def top_layer_names(cs, image: str, tmp_path) -> list[str]:
    archive = tmp_path / "image.tar"
    cs("save", "-o", str(archive), image, check=True)
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        layer = outer.extractfile(manifest[0]["Layers"][-1]).read()
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return sorted(tar.getnames())


def test_commit_leaves_the_mount_stubs_out(cs, cleanup, tmp_path):
    cleanup += ["stub-base", "stub-c"]
    # an image without the init layer's paths: busybox's /bin only (export, keep bin/, import); run, not
    # create: export of a never-started container fails today (its upper dir does not exist yet)
    cs("run", "--name", "stub-base", "--network", "none", "busybox", "true", check=True)
    exported = tmp_path / "base.tar"
    cs("export", "-o", str(exported), "stub-base", check=True)
    minimal = tmp_path / "minimal.tar"
    with tarfile.open(exported) as src, tarfile.open(minimal, "w") as dst:
        for member in src.getmembers():
            if member.name == "bin" or member.name.startswith("bin/"):
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    cs("import", str(minimal), "stub-minimal:1", check=True)
    cs("run", "--name", "stub-c", "--network", "none", "stub-minimal:1", "/bin/sh", "-c", "echo hi > /greeting",
       check=True)
    assert cs("diff", "stub-c", check=True).stdout.split() == ["A", "/greeting"]
    cs("commit", "stub-c", "stub-committed:1", check=True)
    assert top_layer_names(cs, "stub-committed:1", tmp_path) == ["greeting"]
    assert cs("run", "--rm", "--network", "none", "stub-committed:1", "/bin/cat", "/greeting",
              check=True).stdout == "hi\n"
    cs("rm", "stub-c", "stub-base", check=True)
    cs("rmi", "stub-committed:1", "stub-minimal:1", check=True)
