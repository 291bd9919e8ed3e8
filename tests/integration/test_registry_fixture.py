"""The test rig itself: the registry fixture serves every seed image with the media types real registries use.

Every other integration test trusts these images, so this checks them with tools other than pyctr: raw HTTP
against the registry API and `skopeo inspect`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path

import pytest

from tests.fixtures import ocilayout, seed
from tests.fixtures.registry import RegistryStartError, start_registry
from tests.integration.conftest import REPO_ROOT

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, accept: str | None = None) -> tuple[int, Message, bytes]:
    """(status, headers looked up case-insensitively, body): Go canonicalises names (Www-Authenticate)."""
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with _NO_PROXY.open(request, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def manifest(registry, repo: str, ref: str, accept: str) -> tuple[str, dict]:
    status, headers, body = http_get(f"{registry.url}/v2/{repo}/manifests/{ref}", accept)
    assert status == 200, body
    assert headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
    return headers["Content-Type"], json.loads(body)


def blob(registry, repo: str, digest: str) -> bytes:
    status, _, body = http_get(f"{registry.url}/v2/{repo}/blobs/{digest}")
    assert status == 200
    assert "sha256:" + hashlib.sha256(body).hexdigest() == digest
    return body


def tar_entries(raw: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    """{name without ./ or trailing /: (member, file bytes or None)}, in archive order."""
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name.removeprefix("./").rstrip("/"): (m, tar.extractfile(m).read() if m.isfile() else None)
                for m in tar.getmembers()}


def skopeo_inspect(reference: str) -> dict:
    out = subprocess.run(["skopeo", "--insecure-policy", "inspect", "--tls-verify=false", f"docker://{reference}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_catalog_lists_every_seed_repository(registry):
    status, _, body = http_get(f"{registry.url}/v2/_catalog")
    assert status == 200
    assert set(json.loads(body)["repositories"]) >= {"library/busybox", "library/multi", "library/python",
                                                      "test/whiteout"}
    assert registry.host.startswith("127.0.0.1:")
    assert registry.images["busybox"] == f"{registry.host}/library/busybox:latest"
    assert set(registry.images) == {s.name for s in seed.SEED_IMAGES}


def test_busybox_is_an_oci_image_with_sh_and_path(registry):
    content_type, m = manifest(registry, "library/busybox", "latest", OCI_MANIFEST)
    assert content_type == OCI_MANIFEST
    assert [layer["mediaType"] for layer in m["layers"]] == [ocilayout.OCI_LAYER_GZIP]
    config = json.loads(blob(registry, "library/busybox", m["config"]["digest"]))
    assert config["config"]["Cmd"] == ["sh"]
    assert f"PATH={seed.DEFAULT_PATH}" in config["config"]["Env"]
    entries = tar_entries(blob(registry, "library/busybox", m["layers"][0]["digest"]))
    members = {name: member for name, (member, _) in entries.items()}
    assert members["bin/busybox"].isfile() and members["bin/sh"].issym()
    assert members["tmp"].mode & 0o7777 == 0o1777
    assert (members["home/app"].uid, members["home/app"].gid) == (1000, 1000)
    passwd = entries["etc/passwd"][1].decode()
    assert "app:x:1000:1000:" in passwd and "nobody:x:65534:" in passwd


def test_busybox_v2s2_uses_docker_media_types(registry):
    content_type, m = manifest(registry, "library/busybox", "v2s2", DOCKER_MANIFEST)
    assert content_type == DOCKER_MANIFEST
    assert m["config"]["mediaType"] == DOCKER_CONFIG
    assert [layer["mediaType"] for layer in m["layers"]] == [DOCKER_LAYER]
    _, oci = manifest(registry, "library/busybox", "latest", OCI_MANIFEST)
    assert m["layers"][0]["digest"] == oci["layers"][0]["digest"], "same layer bytes under both media types"
    status, _, body = http_get(f"{registry.url}/v2/library/busybox/tags/list")
    assert status == 200 and set(json.loads(body)["tags"]) == {"latest", "v2s2"}


def test_multi_is_an_index_with_platforms_and_attestation(registry):
    content_type, index = manifest(registry, "library/multi", "latest", f"{OCI_INDEX}, {OCI_MANIFEST}")
    assert content_type == OCI_INDEX
    platforms = [(d["platform"]["os"], d["platform"]["architecture"], d["platform"].get("variant"))
                 for d in index["manifests"]]
    assert platforms == [("linux", "amd64", None), ("linux", "arm64", "v8"), ("unknown", "unknown", None)]
    amd64, arm64, attestation = index["manifests"]
    assert attestation["annotations"] == {"vnd.docker.reference.type": "attestation-manifest",
                                          "vnd.docker.reference.digest": amd64["digest"]}
    for desc, arch in ((amd64, "amd64"), (arm64, "arm64")):
        _, m = manifest(registry, "library/multi", desc["digest"], OCI_MANIFEST)
        top = tar_entries(blob(registry, "library/multi", m["layers"][-1]["digest"]))
        assert top["platform"][1] == arch.encode()
        config = json.loads(blob(registry, "library/multi", m["config"]["digest"]))
        assert config["architecture"] == arch
    _, att = manifest(registry, "library/multi", attestation["digest"], OCI_MANIFEST)
    assert att["layers"][0]["mediaType"] == "application/vnd.in-toto+json"


def test_whiteout_layers_are_gzip_gzip_zstd_with_matching_diff_ids(registry):
    import zstandard

    _, m = manifest(registry, "test/whiteout", "latest", OCI_MANIFEST)
    assert [x["mediaType"] for x in m["layers"]] == [ocilayout.OCI_LAYER_GZIP, ocilayout.OCI_LAYER_GZIP,
                                                     ocilayout.OCI_LAYER_ZSTD]
    config = json.loads(blob(registry, "test/whiteout", m["config"]["digest"]))
    tars = []
    for desc, diff_id in zip(m["layers"], config["rootfs"]["diff_ids"], strict=True):
        data = blob(registry, "test/whiteout", desc["digest"])
        raw = gzip.decompress(data) if desc["mediaType"].endswith("gzip") else \
            zstandard.ZstdDecompressor().decompressobj().decompress(data)
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == diff_id
        tars.append(raw)
    assert tars == seed.whiteout_layer_tars()
    names = list(tar_entries(tars[1]))
    assert names.index("dir/new") < names.index("dir/.wh..wh..opq"), "opaque marker must follow its siblings"
    assert "a/.wh.gone" in names


def test_skopeo_inspects_busybox_and_python(registry):
    busybox = skopeo_inspect(registry.images["busybox"])
    assert (busybox["Os"], busybox["Architecture"], len(busybox["Layers"])) == ("linux", "amd64", 1)
    python = skopeo_inspect(registry.images["python"])
    assert (python["Os"], python["Architecture"], len(python["Layers"])) == ("linux", "amd64", 2)
    assert "LANG=C.UTF-8" in python["Env"]
    _, m = manifest(registry, "library/python", "3-slim", OCI_MANIFEST)
    config = json.loads(blob(registry, "library/python", m["config"]["digest"]))
    assert config["config"]["Cmd"] == ["python3"]


def test_pushed_digests_match_the_cached_layouts(registry):
    for name, repo, tag in (("busybox", "library/busybox", "latest"), ("multi", "library/multi", "latest"),
                            ("whiteout", "test/whiteout", "latest")):
        status, headers, _ = http_get(f"{registry.url}/v2/{repo}/manifests/{tag}", f"{OCI_INDEX}, {OCI_MANIFEST}")
        assert status == 200 and headers["Docker-Content-Digest"] == seed.manifest_digest(name)


def test_extra_config_enables_htpasswd_auth(tmp_path):
    import bcrypt

    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode() + "\n")
    extra = {"auth": {"htpasswd": {"realm": "pyctr-test", "path": str(htpasswd)}}}
    with start_registry(tmp_path / "reg", extra) as reg:
        status, headers, _ = http_get(f"{reg.url}/v2/")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        assert reg.config["storage"]["delete"] == {"enabled": True}, "deep merge keeps the defaults"
    assert reg.proc.poll() is not None


def test_start_failure_reports_the_registry_log(tmp_path):
    with pytest.raises(RegistryStartError, match="no-such-driver"):
        start_registry(tmp_path, {"storage": {"no-such-driver": {}}})


def test_warm_cache_and_stale_build_dirs(tmp_path, monkeypatch):
    """ensure_layouts removes a killed build's leftovers, builds once, and is a no-op afterwards."""
    monkeypatch.setattr(seed, "CACHE_ROOT", tmp_path)
    stale = tmp_path / ".build-busybox-99999"
    (stale / "layout").mkdir(parents=True)
    seed.ensure_layouts(("busybox",))
    assert not stale.exists()
    index = seed.layout_path("busybox") / "index.json"
    before = index.stat().st_mtime_ns
    started = time.monotonic()
    seed.ensure_layouts(("busybox",))
    assert index.stat().st_mtime_ns == before and time.monotonic() - started < 0.5


def test_registry_factory_gives_fresh_registries(registry_factory, empty_registry):
    status, _, body = http_get(f"{empty_registry.url}/v2/_catalog")
    assert status == 200 and json.loads(body)["repositories"] == []
    seeded = registry_factory(push=("whiteout",))
    status, _, body = http_get(f"{seeded.url}/v2/_catalog")
    assert json.loads(body)["repositories"] == ["test/whiteout"]
    assert seeded.port != empty_registry.port


def test_python_layer_two_is_a_real_diff_with_whiteouts(registry):
    _, m = manifest(registry, "library/python", "3-slim", OCI_MANIFEST)
    base = tar_entries(blob(registry, "library/python", m["layers"][0]["digest"]))
    top = tar_entries(blob(registry, "library/python", m["layers"][1]["digest"]))
    assert "usr/bin/python3.11" not in base and top["usr/bin/python3.11"][0].isfile()
    assert top["usr/local/bin/python"][0].linkname == "/usr/bin/python3"
    assert "var/lib/dpkg/.wh.status-old" in top and "var/lib/dpkg/status-old" in base
    assert not [name for name in {**base, **top} if "__pycache__" in name or name.startswith("var/lib/apt/lists/")
                and not name.endswith("lists")]


def test_pyctr_fixtures_use_temp_roots_and_the_registry_mirror(registry, pyctr, fresh_pyctr, pyctr_env):
    for runner in (pyctr, fresh_pyctr):
        out = runner("info", "--format", "json", check=True)
        info = json.loads(out.stdout)
        assert info["Root"] == str(runner.root) and info["Root"] != "/var/lib/pyctr"
        assert runner.root.stat().st_mode & 0o777 == 0o700
    assert pyctr.root != fresh_pyctr.root
    config = Path(pyctr_env["PYCTR_CONFIG"]).read_text()
    assert f'registry_mirrors = ["{registry.url}"]' in config
    assert f'insecure_registries = ["{registry.host}"]' in config
    with pytest.raises(AssertionError, match="no-such-command exited 1"):
        pyctr("no-such-command", check=True)


def test_concurrent_cold_builds_build_once(tmp_path):
    """Two test sessions starting on a cold cache: the flock makes one build and the other reuse it."""
    script = ("import sys; from pathlib import Path; from tests.fixtures import seed; "
              f"seed.CACHE_ROOT = Path({str(tmp_path)!r}); seed.ensure_layouts(('busybox', 'whiteout'), log=print)")
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert "".join(outputs).count("building seed image layout busybox") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "busybox", "whiteout"]


def test_umoci_unpack_gives_the_referee_tree(tmp_path):
    rootfs = seed.umoci_unpack("busybox", tmp_path / "bundle")
    tree = seed.snapshot_tree(rootfs)
    assert tree["bin/sh"] == seed.Entry("symlink", 0o777, b"busybox")
    assert tree["tmp"] == seed.Entry("dir", 0o1777)
    assert tree["etc/passwd"].content == seed.PASSWD.encode()
