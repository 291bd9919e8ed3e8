"""`pyctr pull` against the real registry fixture: every media type, digests, platforms, mirrors, concurrency
and crashes (SIGKILL at many moments, then a pull that must complete)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from pyctr.config import Paths
from pyctr.image.store import ImageStore
from tests.fixtures import seed
from tests.integration.conftest import PYCTR_BIN, wait_for_killed_workers


def store_of(runner) -> ImageStore:
    return ImageStore(Paths(runner.root))


def config_of(runner, name: str) -> dict:
    return store_of(runner).resolve(name).config


def test_pull_oci_image_prints_dockers_lines(fresh_pyctr, registry):
    ref = registry.reference("busybox")
    r = fresh_pyctr("pull", ref, check=True)
    lines = r.stdout.splitlines()
    assert lines[0] == "latest: Pulling from library/busybox"  # the tag was given: no "Using default tag"
    assert any(line.endswith(": Pull complete") for line in lines)
    assert f"Digest: {seed.manifest_digest('busybox')}" in lines
    assert f"Status: Downloaded newer image for {ref}" in lines
    assert lines[-1] == ref
    image = store_of(fresh_pyctr).resolve(ref)
    assert (image.layer_dirs[0] / "bin" / "busybox").exists()
    again = fresh_pyctr("pull", ref, check=True)
    # Docker 20.10 for an image it has: no layer lines at all (no "Already exists")
    assert again.stdout.splitlines() == ["latest: Pulling from library/busybox",
                                         f"Digest: {seed.manifest_digest('busybox')}",
                                         f"Status: Image is up to date for {ref}", ref]


def test_pull_docker_schema2_media_types(fresh_pyctr, registry):
    ref = registry.reference("busybox-v2s2")
    fresh_pyctr("pull", ref, check=True)
    image = store_of(fresh_pyctr).resolve(ref)
    assert image.manifest_media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert (image.layer_dirs[0] / "bin" / "busybox").exists()


def test_pull_through_mirror_with_docker_hub_name(fresh_pyctr):
    r = fresh_pyctr("pull", "busybox", check=True)
    assert r.stdout.splitlines()[0] == "Using default tag: latest"
    assert r.stdout.splitlines()[-1] == "docker.io/library/busybox:latest"
    assert "Status: Downloaded newer image for busybox:latest" in r.stdout
    listed = fresh_pyctr("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout.split()
    assert listed == ["busybox:latest"]


def test_pull_by_digest_verifies_it(fresh_pyctr, registry):
    digest = seed.manifest_digest("busybox")
    name = registry.reference("busybox").rsplit(":", 1)[0]
    r = fresh_pyctr("pull", f"{name}@{digest}", check=True)
    assert r.stdout.splitlines()[-1] == f"{name}@{digest}"
    image = store_of(fresh_pyctr).resolve(f"{name}@{digest}")
    assert image.repo_tags == [] and f"{name}@{digest}" in image.repo_digests
    wrong = "sha256:" + "0" * 64
    bad = fresh_pyctr("pull", f"{name}@{wrong}")
    assert bad.returncode == 1 and "not found" in bad.stderr and "Traceback" not in bad.stderr


def test_multi_platform_index_picks_host_and_skips_attestation(fresh_pyctr, registry):
    ref = registry.reference("multi")
    fresh_pyctr("pull", ref, check=True)
    image = store_of(fresh_pyctr).resolve(ref)
    assert (image.config["os"], image.config["architecture"]) == ("linux", "amd64")
    arm = fresh_pyctr("pull", "--platform", "linux/arm64", ref, check=True)
    assert "Pull complete" in arm.stdout
    image = store_of(fresh_pyctr).resolve(ref)
    assert image.config["architecture"] == "arm64"
    none = fresh_pyctr("pull", "--platform", "linux/s390x", ref)
    assert none.returncode == 1 and "no matching manifest for linux/s390x" in none.stderr


def test_whiteouts_and_zstd_layer(fresh_pyctr, registry):
    ref = registry.reference("whiteout")
    fresh_pyctr("pull", ref, check=True)
    image = store_of(fresh_pyctr).resolve(ref)
    assert len(image.layers) == 3
    assert (image.layer_dirs[-1] / "z" / "file").read_text() == "from a zstd layer\n"


def test_python_two_gzip_layers_and_timing(fresh_pyctr, registry):
    ref = registry.reference("python")
    start = time.monotonic()
    r = fresh_pyctr("pull", ref, timeout=300, check=True)
    elapsed = time.monotonic() - start
    print(f"\ncold pull of python:3-slim from the loopback registry: {elapsed:.2f}s")
    assert r.stdout.count("Pull complete") == 2
    image = store_of(fresh_pyctr).resolve(ref)
    assert len(image.layer_dirs) == 2 and image.size > 50_000_000


def test_unknown_image_and_bad_reference(fresh_pyctr, registry):
    r = fresh_pyctr("pull", f"{registry.host}/library/nope:latest")
    assert r.returncode == 1 and r.stderr.startswith("Error response from daemon: ") and "not found" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = fresh_pyctr("pull", "Busybox")
    assert r.returncode == 1
    assert r.stderr.strip() == "invalid reference format: repository name must be lowercase"  # docker-cli's own


def test_quiet_prints_only_the_name(fresh_pyctr, registry):
    ref = registry.reference("busybox")
    r = fresh_pyctr("pull", "-q", ref, check=True)
    assert r.stdout == ref + "\n"


def test_two_concurrent_pulls_store_it_once(fresh_pyctr, registry):
    ref = registry.reference("python")
    argv = [str(PYCTR_BIN), "pull", ref]
    procs = [subprocess.Popen(argv, env=fresh_pyctr.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    store = store_of(fresh_pyctr)
    assert len(store.list_images()) == 1
    assert len(list(store.paths.layers.iterdir())) == 2
    assert not list(store.paths.tmp.iterdir())


def _pull_killed_after(runner, ref: str, delay: float) -> None:
    proc = subprocess.Popen([str(PYCTR_BIN), "pull", ref], env=runner.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_for_killed_workers()


@pytest.mark.slow
def test_sigkilled_pulls_leave_no_half_image_and_next_pull_completes(fresh_pyctr, registry):
    ref = registry.reference("python")
    store = store_of(fresh_pyctr)
    for delay in (0.3, 0.6, 0.9, 1.2, 1.6, 2.2, 3.0):
        _pull_killed_after(fresh_pyctr, ref, delay)
        listed = fresh_pyctr("images", "-q", check=True).stdout.split()
        if listed:  # the pull had finished before the kill: fine, but start over for the next moment
            assert len(listed) == 1
            store.resolve(ref)
            fresh_pyctr("rmi", ref, check=True)
            continue
        assert fresh_pyctr("image", "inspect", ref).returncode != 0  # nothing half-recorded under the name
    r = fresh_pyctr("pull", ref, timeout=300, check=True)
    assert "Status: Downloaded newer image" in r.stdout
    image = store.resolve(ref)
    assert all((d / "usr").is_dir() or any(d.iterdir()) for d in image.layer_dirs)
    assert json.loads((store.paths.images / "repositories.json").read_text())["tags"]


def test_killed_download_resumes_from_partial_blob(fresh_pyctr, registry):
    ref = registry.reference("python")
    store = store_of(fresh_pyctr)
    partial = []
    for _ in range(20):
        proc = subprocess.Popen([str(PYCTR_BIN), "pull", ref], env=fresh_pyctr.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            partial = [p for p in store.paths.tmp.glob("blob-*.partial") if p.stat().st_size > 1_000_000]
            if partial:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_for_killed_workers()
        partial = [p for p in store.paths.tmp.glob("blob-*.partial") if p.stat().st_size > 0]
        if partial:
            break
        fresh_pyctr("rmi", ref)  # finished too fast: try again
    assert partial, "never caught a pull mid-download"
    assert fresh_pyctr("images", "-q", check=True).stdout == ""
    fresh_pyctr("pull", ref, timeout=300, check=True)
    assert not list(store.paths.tmp.glob("blob-*.partial"))
    assert store.resolve(ref).size > 50_000_000


def test_dead_mirror_falls_back_to_the_next(fresh_pyctr, registry, tmp_path):
    from tests.fixtures.registry import free_port

    config = tmp_path / "mirrors.toml"
    config.write_text(f'registry_mirrors = ["http://127.0.0.1:{free_port()}", "{registry.url}"]\n')
    r = fresh_pyctr("pull", "busybox:latest", env_extra={"PYCTR_CONFIG": str(config)}, timeout=120, check=True)
    assert "Status: Downloaded newer image for busybox:latest" in r.stdout


def test_ctrl_c_stops_promptly_and_next_pull_completes(fresh_pyctr, registry):
    ref = registry.reference("python")
    store = store_of(fresh_pyctr)
    proc = subprocess.Popen([str(PYCTR_BIN), "pull", ref], env=fresh_pyctr.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(store.paths.tmp.glob("blob-*.partial")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.fail("the pull finished before the interrupt arrived; cannot test Ctrl-C")
    assert proc.returncode == 130 and "Traceback" not in err
    assert time.monotonic() - start < 15  # at most one layer's unpack finishes; downloads stop at the next chunk
    assert fresh_pyctr("images", "-q", check=True).stdout == ""
    fresh_pyctr("pull", ref, timeout=300, check=True)


def test_corrupted_blob_in_registry_is_refused_and_nothing_stored(fresh_pyctr, tmp_path):
    from tests.fixtures.registry import start_registry

    with start_registry(tmp_path / "corrupt-registry") as reg:
        fresh_pyctr("pull", "-q", "busybox", check=True)
        target = f"{reg.host}/bad/bb:1"
        fresh_pyctr("tag", "busybox", target, check=True)
        fresh_pyctr("push", "-q", target, check=True)
        image = store_of(fresh_pyctr).resolve(target)
        layer = image.layers[0].blob["digest"]
        fresh_pyctr("rmi", "-f", image.id, check=True)
        blobs = reg.workdir / "storage" / "docker" / "registry" / "v2" / "blobs" / "sha256"
        data = blobs / layer[7:9] / layer[7:] / "data"
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0xFF  # same size, different bytes
        data.write_bytes(bytes(raw))
        r = fresh_pyctr("pull", target)
        assert r.returncode == 1 and "verification failed" in r.stderr, r.stderr
        store = store_of(fresh_pyctr)
        assert not store.has_blob(layer)
        assert fresh_pyctr("images", "-q", check=True).stdout == ""
        assert not list(store.paths.tmp.glob("blob-*"))


def test_pull_all_tags(fresh_pyctr, registry):
    name = registry.reference("busybox").rsplit(":", 1)[0]
    r = fresh_pyctr("pull", "-a", name, check=True)
    assert "latest: Pulling from library/busybox" in r.stdout and "v2s2: Pulling from library/busybox" in r.stdout
    assert r.stdout.splitlines()[-1] == name
    tags = fresh_pyctr("images", "--format", "{{.Tag}}", check=True).stdout.split()
    assert sorted(tags) == ["latest", "v2s2"]
    bad = fresh_pyctr("pull", "-a", f"{name}:latest")
    assert bad.returncode == 1 and "can't be used with --all-tags" in bad.stderr
