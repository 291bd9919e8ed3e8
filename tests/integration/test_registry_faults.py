"""`pyctr pull` through a faulty network: transient faults are retried, bad content is refused and never stored.

A fault-injecting proxy (tests/fixtures/faulty_registry.py) sits in front of the session registry. Connections
dropped mid-blob must be resumed with Range, 500s and 429s retried (honouring Retry-After), and the pull must then
succeed. A blob whose bytes do not match its digest, or that is cut short, must make the pull fail with one line and
exit 125, leave nothing unverified in PYCTR_ROOT (blobs, layers, partial downloads, image records), and not prevent
a later clean pull. A blob redirected to another host must not receive the registry's Authorization header.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.faulty_registry import TOKEN, Fault, FaultyRegistry
from tests.integration.conftest import PyctrRunner

REPOSITORY = "library/busybox"
MANIFEST_ACCEPT = ("application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
                   "application/vnd.docker.distribution.manifest.v2+json, "
                   "application/vnd.docker.distribution.manifest.list.v2+json")


def fetch_manifest(host: str, reference: str) -> tuple[bytes, dict]:
    req = urllib.request.Request(f"http://{host}/v2/{REPOSITORY}/manifests/{reference}",
                                 headers={"Accept": MANIFEST_ACCEPT})
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
    return body, json.loads(body)


@pytest.fixture(scope="module")
def busybox_blobs(registry) -> dict[str, str]:
    """Digests of busybox:latest in the seed registry: manifest, config and its (single) layer."""
    body, doc = fetch_manifest(registry.host, "latest")
    if "manifests" in doc:  # an index: follow this machine's entry
        entry = next(m for m in doc["manifests"] if m.get("platform", {}).get("architecture") == "amd64")
        body, doc = fetch_manifest(registry.host, entry["digest"])
    return {"manifest": "sha256:" + hashlib.sha256(body).hexdigest(), "config": doc["config"]["digest"],
            "layer": doc["layers"][-1]["digest"], "layer_size": str(doc["layers"][-1]["size"])}


@pytest.fixture
def faulty(registry) -> Iterator[FaultyRegistry]:
    with FaultyRegistry(registry.host) as proxy:
        yield proxy


@pytest.fixture
def faulty_with_token(registry) -> Iterator[FaultyRegistry]:
    with FaultyRegistry(registry.host, require_token=True) as proxy:
        yield proxy


def runner_for(fresh_pyctr: PyctrRunner, proxy: FaultyRegistry, tmp_path: Path) -> PyctrRunner:
    """The fresh root, with a config naming only the proxy (insecure: plain HTTP on loopback)."""
    config = tmp_path / "faulty-config.toml"
    config.write_text(f'insecure_registries = ["{proxy.host}"]\n\n[network]\nbridge = "pyctrt0"\n'
                      'subnet = "10.78.0.0/24"\n')
    return PyctrRunner({**fresh_pyctr.env, "PYCTR_CONFIG": str(config)})


def image_ref(proxy: FaultyRegistry, suffix: str = ":latest") -> str:
    return f"{proxy.host}/{REPOSITORY}{suffix}"


def blob_path(digest: str) -> str:
    return f"/blobs/{digest}"


def assert_pulled(runner: PyctrRunner, proxy: FaultyRegistry, run: bool = False) -> None:
    """The image is listed, every stored blob is verified, and (with `run`) a container runs from it."""
    listed = runner("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout.split()
    assert f"{proxy.host}/{REPOSITORY}:latest" in listed, listed
    for blob in (runner.root / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, blob
    if run:
        ran = runner("run", "--rm", "--network", "none", image_ref(proxy), "echo", "ok", timeout=60)
        assert ran.stdout == "ok\n", ran.stderr


def assert_refused(proc, *words: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)  # a failed pull: docker-cli's 1
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


def assert_nothing_unverified(root: Path, bad_digest: str | None = None) -> None:
    """Every stored blob matches its name, no layer or image was recorded, no partial download is left."""
    blobs = root / "blobs" / "sha256"
    for blob in blobs.iterdir() if blobs.is_dir() else ():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, f"unverified blob stored: {blob}"
        if bad_digest:
            assert blob.name != bad_digest.removeprefix("sha256:"), "the refused blob was stored"
    layers = root / "layers"
    assert not list(layers.iterdir()) if layers.is_dir() else True, list(layers.iterdir())
    tmp = root / "tmp"
    partials = [p for p in tmp.rglob("*") if p.is_file()] if tmp.is_dir() else []
    assert not partials, f"unverified partial downloads left: {partials}"
    records = [p for p in (root / "images").glob("*.json") if p.name != "repositories.json"] \
        if (root / "images").is_dir() else []
    assert not records, records


# ------------------------------------------------------------------ baseline


def test_clean_pull_through_the_proxy(faulty, fresh_pyctr, tmp_path):
    """The proxy itself is transparent: without faults the pull succeeds and every blob passes through it."""
    runner = runner_for(fresh_pyctr, faulty, tmp_path)
    runner("pull", image_ref(faulty), check=True, timeout=120)
    assert faulty.blob_requests(), "the pull did not go through the proxy"
    assert_pulled(runner, faulty, run=True)


# ------------------------------------------------------------------ retryable faults


def test_dropped_connection_mid_blob_is_resumed(faulty, fresh_pyctr, tmp_path, busybox_blobs):
    layer = busybox_blobs["layer"]
    fault = faulty.add(Fault(blob_path(layer), "drop", times=2, at=200_000))
    runner = runner_for(fresh_pyctr, faulty, tmp_path)
    runner("pull", image_ref(faulty), check=True, timeout=120)
    assert fault.hits == 2
    layer_gets = [r for r in faulty.requests if r.path.endswith(blob_path(layer)) and r.method == "GET"]
    assert len(layer_gets) == 3, layer_gets
    assert any(r.headers.get("Range", "").startswith("bytes=") for r in layer_gets[1:]), \
        "the download restarted from zero instead of resuming with Range"
    assert_pulled(runner, faulty)


def test_dropped_connection_while_reading_the_manifest_is_retried(faulty, fresh_pyctr, tmp_path):
    fault = faulty.add(Fault(r"/manifests/", "drop", times=1, at=20))
    runner = runner_for(fresh_pyctr, faulty, tmp_path)
    proc = runner("pull", image_ref(faulty), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert fault.hits == 1
    assert_pulled(runner, faulty)


def test_dropped_connection_while_reading_the_config_is_retried(faulty, fresh_pyctr, tmp_path, busybox_blobs):
    fault = faulty.add(Fault(blob_path(busybox_blobs["config"]), "drop", times=1, at=10))
    runner = runner_for(fresh_pyctr, faulty, tmp_path)
    proc = runner("pull", image_ref(faulty), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert fault.hits == 1
    assert_pulled(runner, faulty)


def test_a_download_that_keeps_dropping_fails_then_resumes(faulty, fresh_pyctr, tmp_path, busybox_blobs):
    """Give up in one line when the connection never holds; the next pull continues from the partial download."""
    layer = busybox_blobs["layer"]
    faulty.add(Fault(blob_path(layer), "drop", times=None, at=100_000))
    runner = runner_for(fresh_pyctr, faulty, tmp_path)
    proc = runner("pull", image_ref(faulty), timeout=120)
    assert_refused(proc)
    assert not runner("images", "-q", check=True).stdout.strip()
    assert not list((runner.root / "blobs" / "sha256").glob(layer.removeprefix("sha256:")))
    faulty.clear()
    runner("pull", image_ref(faulty), check=True, timeout=120)
    first = next(r for r in faulty.requests if r.path.endswith(blob_path(layer)) and r.method == "GET")
    assert first.headers.get("Range", "bytes=0-") != "bytes=0-", "the partial download was thrown away"
    assert_pulled(runner, faulty)


def test_server_errors_are_retried_until_the_registry_recovers(faulty, fresh_pyctr, tmp_path, busybox_blobs):
    manifest_fault = faulty.add(Fault(r"/manifests/", "status", times=2, status=500))
    config_fault = faulty.add(Fault(blob_path(busybox_blobs["config"]), "status", times=1, status=502))
    layer_fault = faulty.add(Fault(blob_path(busybox_blobs["layer"]), "status", times=2, status=503))
    runner = runner_for(fresh_pyctr, faulty, tmp_path)
    runner("pull", image_ref(faulty), check=True, timeout=120)
    assert (manifest_fault.hits, config_fault.hits, layer_fault.hits) == (2, 1, 2)
    assert_pulled(runner, faulty)


def test_too_many_requests_honours_retry_after(faulty, fresh_pyctr, tmp_path, busybox_blobs):
    layer = busybox_blobs["layer"]
    fault = faulty.add(Fault(blob_path(layer), "status", times=1, status=429, retry_after="2"))
    runner = runner_for(fresh_pyctr, faulty, tmp_path)
    runner("pull", image_ref(faulty), check=True, timeout=120)
    assert fault.hits == 1
    gets = [r for r in faulty.requests if r.path.endswith(blob_path(layer)) and r.method == "GET"]
    assert [r.status for r in gets] == [429, 200], gets
    waited = gets[1].when - gets[0].when
    assert waited >= 1.8, f"retried {waited:.2f}s after a 429 with Retry-After: 2"
    assert_pulled(runner, faulty)


def test_persistent_server_errors_fail_in_one_line(faulty, fresh_pyctr, tmp_path):
    faulty.add(Fault(r"/manifests/", "status", times=None, status=500))
    runner = runner_for(fresh_pyctr, faulty, tmp_path)
    started = time.monotonic()
    proc = runner("pull", image_ref(faulty), timeout=120)
    assert_refused(proc, faulty.host)
    assert time.monotonic() - started < 30, "gave up, but only after a long time"
    assert_nothing_unverified(runner.root)
    assert not runner("images", "-q", check=True).stdout.strip()


# ------------------------------------------------------------------ bad content: refused, nothing stored


def _assert_refused_then_clean_pull_works(faulty, runner, proc, bad_digest: str) -> None:
    assert_refused(proc, "digest")
    assert_nothing_unverified(runner.root, bad_digest)
    assert not runner("images", "-q", check=True).stdout.strip()
    faulty.clear()
    runner("pull", image_ref(faulty), check=True, timeout=120)
    assert_pulled(runner, faulty, run=True)


def test_layer_with_a_wrong_digest_is_refused(faulty, fresh_pyctr, tmp_path, busybox_blobs):
    layer = busybox_blobs["layer"]
    faulty.add(Fault(blob_path(layer), "corrupt", times=None))
    runner = runner_for(fresh_pyctr, faulty, tmp_path)
    proc = runner("pull", image_ref(faulty), timeout=120)
    _assert_refused_then_clean_pull_works(faulty, runner, proc, layer)


def test_truncated_layer_is_refused(faulty, fresh_pyctr, tmp_path, busybox_blobs):
    layer = busybox_blobs["layer"]
    faulty.add(Fault(blob_path(layer), "truncate", times=None, at=int(busybox_blobs["layer_size"]) // 2))
    runner = runner_for(fresh_pyctr, faulty, tmp_path)
    proc = runner("pull", image_ref(faulty), timeout=120)
    _assert_refused_then_clean_pull_works(faulty, runner, proc, layer)


def test_config_with_a_wrong_digest_is_refused(faulty, fresh_pyctr, tmp_path, busybox_blobs):
    config = busybox_blobs["config"]
    faulty.add(Fault(blob_path(config), "corrupt", times=None))
    runner = runner_for(fresh_pyctr, faulty, tmp_path)
    proc = runner("pull", image_ref(faulty), timeout=120)
    _assert_refused_then_clean_pull_works(faulty, runner, proc, config)


def test_manifest_pinned_by_digest_with_wrong_content_is_refused(faulty, fresh_pyctr, tmp_path, busybox_blobs):
    manifest = busybox_blobs["manifest"]
    faulty.add(Fault(r"/manifests/", "corrupt", times=None))
    runner = runner_for(fresh_pyctr, faulty, tmp_path)
    proc = runner("pull", image_ref(faulty, f"@{manifest}"), timeout=120)
    assert_refused(proc)
    assert_nothing_unverified(runner.root, manifest)
    faulty.clear()
    runner("pull", image_ref(faulty, f"@{manifest}"), check=True, timeout=120)


# ------------------------------------------------------------------ redirects and credentials


def test_blob_redirect_to_another_host_gets_no_authorization(faulty_with_token, fresh_pyctr, tmp_path):
    proxy = faulty_with_token
    proxy.add(Fault(r"/blobs/", "redirect", times=None))
    runner = runner_for(fresh_pyctr, proxy, tmp_path)
    runner("pull", image_ref(proxy), check=True, timeout=120)
    authorized = [r for r in proxy.requests if r.headers.get("Authorization") == f"Bearer {TOKEN}"]
    assert any("/manifests/" in r.path for r in authorized), "the client never authenticated to the registry"
    redirected = [r for r in proxy.requests if r.fault == "redirect"]
    assert redirected and all(r.headers.get("Authorization") for r in redirected)
    arrived = proxy.blob_host.requests
    assert arrived, "no blob was fetched from the redirect target"
    leaked = [r for r in arrived if "Authorization" in r.headers or "authorization" in r.headers]
    assert not leaked, f"Authorization sent to another host: {leaked}"
    assert_pulled(runner, proxy)
