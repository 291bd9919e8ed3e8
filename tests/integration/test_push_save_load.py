"""push (checked with skopeo, an independent client) and save/load in docker-archive format (hand-written
Docker-layout tars, skopeo's docker-archive, and round trips)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile

import pytest

from pyctr.config import Paths
from pyctr.image.store import ImageStore
from tests.integration.conftest import PYCTR_BIN


def skopeo(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def pulled(fresh_pyctr):
    fresh_pyctr("pull", "-q", "busybox", check=True)
    return fresh_pyctr


def image_id(runner, name):
    return runner("image", "inspect", "-f", "{{.Id}}", name, check=True).stdout.strip()


def test_push_then_skopeo_inspects_it(pulled, registry):
    target = f"{registry.host}/pushed/bb:v1"
    pulled("tag", "busybox", target, check=True)
    r = pulled("push", target, check=True)
    lines = r.stdout.splitlines()
    layer = ImageStore(Paths(pulled.root)).resolve(target).layers[0].blob["digest"][7:19]
    # Docker 20.10 (not a TTY): every layer's "Preparing" first, then its outcome, then the digest line
    assert lines[:3] == [f"The push refers to repository [{registry.host}/pushed/bb]", f"{layer}: Preparing",
                         f"{layer}: Pushed"]
    digest = lines[-1].split("digest: ")[1].split()[0]
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{target}").stdout)
    assert info["Digest"] == digest
    assert info["Architecture"] == "amd64" and len(info["Layers"]) == 1
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{target}").stdout)
    assert raw["config"]["digest"] == image_id(pulled, "busybox")
    again = pulled("push", target, check=True)
    assert again.stdout.splitlines()[1:3] == [f"{layer}: Preparing", f"{layer}: Layer already exists"]
    assert f"{registry.host}/pushed/bb@{digest}" in json.loads(
        pulled("image", "inspect", target, check=True).stdout)[0]["RepoDigests"]


def test_push_of_a_missing_tag_says_what_docker_says(pulled, registry):
    r = pulled("push", f"{registry.host}/nothere")
    assert r.stdout == f"Using default tag: latest\nThe push refers to repository [{registry.host}/nothere]\n"
    assert r.returncode == 1 and f"An image does not exist locally with the tag: {registry.host}/nothere" in r.stderr
    pulled("tag", "busybox", f"{registry.host}/there:v1", check=True)
    r = pulled("push", f"{registry.host}/there:v2")
    assert r.returncode == 1 and f"tag does not exist: {registry.host}/there:v2" in r.stderr


def test_save_load_round_trip(pulled, tmp_path):
    original = image_id(pulled, "busybox")
    archive = tmp_path / "bb.tar"
    pulled("save", "-o", archive, "busybox", check=True)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        repositories = json.load(tar.extractfile("repositories"))
    assert manifest[0]["RepoTags"] == ["busybox:latest"] and manifest[0]["Config"] == f"{original[7:]}.json"
    assert all(layer.endswith("/layer.tar") and layer in names for layer in manifest[0]["Layers"])
    assert list(repositories) == ["busybox"]
    pulled("rmi", "busybox", check=True)
    r = pulled("load", "-i", archive, check=True)
    assert r.stdout == "Loaded image: busybox:latest\n"
    assert pulled("load", "-q", "-i", archive, check=True).stdout == "Loaded image: busybox:latest\n"  # as Docker
    assert image_id(pulled, "busybox") == original
    image = ImageStore(Paths(pulled.root)).resolve("busybox")
    assert (image.layer_dirs[0] / "bin" / "busybox").exists()
    # skopeo reads what we wrote
    info = json.loads(skopeo("inspect", f"docker-archive:{archive}").stdout)
    assert info["Architecture"] == "amd64"


def test_save_to_stdout_load_from_stdin(pulled):
    saved = subprocess.run([str(PYCTR_BIN), "save", "busybox"],
                           env=pulled.env, capture_output=True, timeout=120)
    assert saved.returncode == 0 and saved.stdout[:100]
    original = image_id(pulled, "busybox")
    pulled("rmi", "busybox", check=True)
    loaded = subprocess.run([str(PYCTR_BIN), "load"], input=saved.stdout, env=pulled.env,
                            capture_output=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    assert image_id(pulled, "busybox") == original


def _docker_layout_tar(layers: list[bytes], repo_tag: str, duplicate_as_symlink: bool) -> tuple[bytes, str]:
    """A tar in `docker save`'s (moby's) layout, written by hand; returns (tar bytes, config digest)."""
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2023-01-01T00:00:00Z",
                         "config": {"Cmd": ["/bin/hello"], "Env": ["PATH=/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": "ADD x"} for _ in layers]}).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    out = io.BytesIO()
    layer_paths = []
    with tarfile.open(fileobj=out, mode="w") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for i, layer in enumerate(layers):
            v1 = hashlib.sha256(f"v1-{i}".encode()).hexdigest()
            if duplicate_as_symlink and i > 0 and layer == layers[0]:
                link = tarfile.TarInfo(f"{v1}/layer.tar")
                link.type = tarfile.SYMTYPE
                link.linkname = f"../{layer_paths[0].split('/')[0]}/layer.tar"
                tar.addfile(link)
            else:
                add(f"{v1}/layer.tar", layer)
            add(f"{v1}/VERSION", b"1.0")
            add(f"{v1}/json", json.dumps({"id": v1}).encode())
            layer_paths.append(f"{v1}/layer.tar")
        add(f"{config_hex}.json", config)
        add("manifest.json", json.dumps([{"Config": f"{config_hex}.json", "RepoTags": [repo_tag],
                                          "Layers": layer_paths}]).encode())
        repo, tag = repo_tag.rsplit(":", 1)
        add("repositories", json.dumps({repo: {tag: layer_paths[-1].split("/")[0]}}).encode())
    return out.getvalue(), "sha256:" + config_hex


def _layer_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_load_handwritten_docker_archive(fresh_pyctr, tmp_path):
    base = _layer_tar({"bin/hello": b"#!/bin/sh\necho hi\n"})
    top = _layer_tar({"etc/motd": b"welcome\n"})
    data, config_digest = _docker_layout_tar([base, top, base], "example/hello:1.0", duplicate_as_symlink=True)
    archive = tmp_path / "docker.tar"
    archive.write_bytes(data)
    r = fresh_pyctr("load", "-i", archive, check=True)
    assert r.stdout == "Loaded image: example/hello:1.0\n"
    image = ImageStore(Paths(fresh_pyctr.root)).resolve("example/hello:1.0")
    assert image.id == config_digest and len(image.layers) == 3
    assert (image.layer_dirs[0] / "bin" / "hello").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (image.layer_dirs[1] / "etc" / "motd").read_text() == "welcome\n"
    history = fresh_pyctr("history", "example/hello:1.0", check=True).stdout
    assert "ADD x" in history


def test_loaded_image_can_be_pushed_and_pulled_back(fresh_pyctr, registry, tmp_path):
    data, config_digest = _docker_layout_tar([_layer_tar({"a": b"1"})], "example/pushme:1", False)
    archive = tmp_path / "p.tar"
    archive.write_bytes(data)
    fresh_pyctr("load", "-q", "-i", archive, check=True)
    target = f"{registry.host}/loaded/pushme:1"
    fresh_pyctr("tag", "example/pushme:1", target, check=True)
    fresh_pyctr("push", "-q", target, check=True)
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{target}").stdout)
    assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert raw["config"]["digest"] == config_digest
    fresh_pyctr("rmi", "example/pushme:1", check=True)
    fresh_pyctr("rmi", target, check=True)
    fresh_pyctr("pull", "-q", target, check=True)
    assert image_id(fresh_pyctr, target) == config_digest


def test_load_skopeo_docker_archive(fresh_pyctr, registry, tmp_path):
    archive = tmp_path / "skopeo.tar"
    skopeo("copy", "--quiet", "--src-tls-verify=false", f"docker://{registry.reference('multi')}",
           f"docker-archive:{archive}:skopeo/multi:v1")
    r = fresh_pyctr("load", "-i", archive, check=True)
    assert r.stdout == "Loaded image: skopeo/multi:v1\n"
    assert len(ImageStore(Paths(fresh_pyctr.root)).resolve("skopeo/multi:v1").layers) == 2


def test_load_garbage_is_one_clear_error(fresh_pyctr, tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive" * 100)
    r = fresh_pyctr("load", "-i", junk)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert fresh_pyctr("images", "-q", check=True).stdout == ""
    assert not list((fresh_pyctr.root / "tmp").iterdir())
