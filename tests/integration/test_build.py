"""`pyctr build` end to end: real registry (FROM), real image store, real RUN containers.

Builds run through the installed CLI against the session root; what a build
produced is checked in the image store itself (config, history, layer dirs),
so these tests do not depend on `pyctr run` except where they say so.
"""

from __future__ import annotations

import http.server
import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from pyctr.config import Paths
from pyctr.errors import NotFoundError
from pyctr.image.store import ImageStore

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module", autouse=True)
def _remove_built_images(pyctr_env):
    """Images these tests build are deleted afterwards; pulled bases stay for the rest of the session."""
    store = ImageStore(Paths(Path(pyctr_env["PYCTR_ROOT"])))
    before = set(store.image_ids())
    yield
    for image_id in set(store.image_ids()) - before:
        tags = store.get_image(image_id).repo_tags
        if not any(tag.startswith(("busybox", "python")) for tag in tags):
            store.delete_image(image_id)


def store_of(pyctr) -> ImageStore:
    return ImageStore(Paths(pyctr.root))


def image(pyctr, name: str):
    return store_of(pyctr).resolve(name)


def top_layer(pyctr, name: str) -> Path:
    return image(pyctr, name).layer_dirs[-1]


def build(pyctr, context: Path, *args: str, check: bool = True, timeout: float = 240):
    return pyctr("build", *args, str(context), check=check, timeout=timeout)


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return directory


# --- examples -------------------------------------------------------------------------------


def test_pyserv_example(pyctr):
    result = build(pyctr, EXAMPLES / "pyserv", "-t", "pyserv-test:latest")
    out = result.stdout
    assert "Step 1/5 : FROM python:3-slim" in out
    assert "Step 3/5 : ADD server.py /server.py" in out
    assert "Successfully tagged pyserv-test:latest" in out
    img = image(pyctr, "pyserv-test")
    config = img.config
    assert config["config"]["Entrypoint"] == ["python", "server.py"]
    assert config["config"]["ExposedPorts"] == {"8000/tcp": {}}
    assert config["config"]["WorkingDir"] == "/"
    assert (img.layer_dirs[-1] / "server.py").read_bytes() == (EXAMPLES / "pyserv" / "server.py").read_bytes()
    created = [h["created_by"] for h in config["history"][-4:]]
    assert created[1].startswith("/bin/sh -c #(nop) ADD file:") and created[1].endswith(" in /server.py ")
    assert created[2:] == ["/bin/sh -c #(nop)  EXPOSE 8000/tcp", '/bin/sh -c #(nop)  ENTRYPOINT ["python" "server.py"]']
    base = image(pyctr, "python:3-slim")
    assert len(img.layers) == len(base.layers) + 1  # WORKDIR / exists: no layer
    assert config["history"][-4]["empty_layer"] is True
    assert sum(not h.get("empty_layer") for h in config["history"]) == len(config["rootfs"]["diff_ids"])


def test_built_image_pushed_reads_the_same_in_skopeo(pyctr, registry):
    """The build is a proper image: an independent client sees its config and layers after a push."""
    import json
    import subprocess

    build(pyctr, EXAMPLES / "pyserv", "-t", "pyserv-test:latest")
    target = f"{registry.host}/built/pyserv:v1"
    pyctr("tag", "pyserv-test:latest", target, check=True)
    pyctr("push", target, check=True, timeout=120)
    r = subprocess.run(["skopeo", "inspect", "--config", "--tls-verify=false", f"docker://{target}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    ours = image(pyctr, "pyserv-test").config
    for key in ("Entrypoint", "Cmd", "Env", "WorkingDir", "ExposedPorts"):
        assert seen["config"].get(key) == ours["config"].get(key), key
    assert seen["rootfs"]["diff_ids"] == ours["rootfs"]["diff_ids"]
    pyctr("rmi", target, check=True)


def test_pyserv_cached_rebuild_reuses_everything(pyctr):
    build(pyctr, EXAMPLES / "pyserv", "-t", "pyserv-test:latest")
    first = image(pyctr, "pyserv-test").id
    out = build(pyctr, EXAMPLES / "pyserv", "-t", "pyserv-test:latest").stdout
    assert out.count(" ---> Using cache") == 4
    assert " ---> Running in" not in out
    assert image(pyctr, "pyserv-test").id == first


def test_multistage_example_builds_only_needed_stages(pyctr):
    out = build(pyctr, EXAMPLES / "multistage", "-t", "greet-test", "--build-arg", "GREETING=hi",
                "--network", "none").stdout
    assert "never built" not in out
    img = image(pyctr, "greet-test")
    assert (img.layer_dirs[-1] / "srv" / "message.txt").read_text() == "hi from the build stage\n"
    assert (img.layer_dirs[-1] / "srv" / "note.txt").exists()
    assert img.config["config"]["Cmd"] == ["cat", "/srv/message.txt", "/srv/note.txt"]
    busybox = image(pyctr, "busybox")
    assert len(img.layers) == len(busybox.layers) + 1  # only the COPY --from layer on top of busybox


def test_busybox_httpd_example(pyctr):
    build(pyctr, EXAMPLES / "busybox-httpd", "-t", "bbhttpd-test", "--network", "none")
    layer = top_layer(pyctr, "bbhttpd-test")
    assert (layer / "www" / "index.html").read_text() == "Hello from busybox httpd\n"
    assert not (layer / "proc").exists() and not (layer / "etc" / "hosts").exists()  # mount points stay out


# --- cache ----------------------------------------------------------------------------------


def test_cache_hits_and_misses(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n",
        "a.txt": "one\n",
    })
    build(pyctr, ctx, "-t", "cache-test", "--network", "none")
    first = image(pyctr, "cache-test").id
    os.utime(ctx / "a.txt", (1, 1))  # mtime only: still a hit (as Docker)
    out = build(pyctr, ctx, "-t", "cache-test", "--network", "none").stdout
    assert out.count("Using cache") == 2 and image(pyctr, "cache-test").id == first
    os.utime(ctx / "Dockerfile", (2e9, 2e9))
    out = build(pyctr, ctx, "-t", "cache-test", "--network", "none").stdout
    newer = image(pyctr, "cache-test")  # a newer input dates the image anew, the steps still hit the cache
    assert out.count("Using cache") == 2 and newer.config["created"] == "2033-05-18T03:33:20Z"
    assert [layer.chain_id for layer in newer.layers] == [layer.chain_id for layer in image(pyctr, first).layers]
    (ctx / "a.txt").write_text("two\n")
    out = build(pyctr, ctx, "-t", "cache-test", "--network", "none").stdout
    assert "Using cache" not in out
    assert (top_layer(pyctr, "cache-test") / "b.txt").read_text() == "two\n"
    os.chmod(ctx / "a.txt", 0o600)  # metadata change: miss
    out = build(pyctr, ctx, "-t", "cache-test", "--network", "none").stdout
    assert "Using cache" not in out
    out = build(pyctr, ctx, "-t", "cache-test", "--network", "none", "--no-cache").stdout
    assert "Using cache" not in out and out.count("Running in") >= 1


def test_build_arg_changes_the_run_cache_and_history(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nARG WHO=world\nRUN echo hello $WHO > /greeting\n"})
    build(pyctr, ctx, "-t", "args-test", "--network", "none")
    assert (top_layer(pyctr, "args-test") / "greeting").read_text() == "hello world\n"
    out = build(pyctr, ctx, "-t", "args-test", "--network", "none", "--build-arg", "WHO=pyctr").stdout
    assert "Running in" in out
    img = image(pyctr, "args-test")
    assert (img.layer_dirs[-1] / "greeting").read_text() == "hello pyctr\n"
    assert img.config["history"][-1]["created_by"] == "|1 WHO=pyctr /bin/sh -c echo hello $WHO > /greeting"
    result = build(pyctr, ctx, "-t", "args-test", "--network", "none", "--build-arg", "UNUSED=1")
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in result.stderr


# --- failures -------------------------------------------------------------------------------


def test_failing_run_stops_the_build_and_tags_nothing(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN false\nRUN echo never\n"})
    result = build(pyctr, ctx, "-t", "fail-test", "--network", "none", check=False)
    assert result.returncode == 1
    assert "The command '/bin/sh -c false' returned a non-zero code: 1" in result.stderr
    assert "Step 3/3" not in result.stdout
    with pytest.raises(NotFoundError):
        image(pyctr, "fail-test")


def test_syntax_error_names_the_line(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUNN x\n"})
    result = build(pyctr, ctx, check=False)
    assert result.returncode == 1
    # Docker 20.10 (legacy builder): the daemon refuses the Dockerfile: `Error response from daemon: Dockerfile
    # parse error line 2: unknown instruction: RUNN`, exit 1
    assert result.stderr.strip() == "Error response from daemon: Dockerfile:2: unknown instruction: RUNN"


def test_context_never_escapes(pyctr, tmp_path):
    (tmp_path / "secret").write_text("host secret\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY ../secret /\n"})
    result = build(pyctr, ctx, check=False)
    assert result.returncode == 1 and "outside the build context" in result.stderr
    os.symlink("../secret", ctx / "link")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY link /\n")
    result = build(pyctr, ctx, check=False)
    assert result.returncode == 1 and "outside the build context" in result.stderr


# --- COPY / ADD -----------------------------------------------------------------------------


def test_dockerignore_and_copy_semantics(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nCOPY . /ctx/\nCOPY dir /flat\nCOPY *.md /docs/\n",
        ".dockerignore": "*.log\nsecret\n!keep.log\nsub\n!sub/keep.txt\n",
        "app.log": "x", "keep.log": "k", "secret": "s", "README.md": "r", "dir/sub/deep.txt": "d",
        "sub/keep.txt": "kept", "sub/drop.txt": "dropped",
    })
    build(pyctr, ctx, "-t", "ignore-test")
    img = image(pyctr, "ignore-test")
    copied = img.layer_dirs[-3] / "ctx"
    assert sorted(p.name for p in copied.iterdir()) == [".dockerignore", "Dockerfile", "README.md", "dir",
                                                         "keep.log", "sub"]
    assert sorted(p.name for p in (copied / "sub").iterdir()) == ["keep.txt"]  # an exception inside an excluded dir
    assert (img.layer_dirs[-2] / "flat" / "sub" / "deep.txt").read_text() == "d"  # contents, not the dir
    assert (img.layer_dirs[-1] / "docs" / "README.md").read_text() == "r"
    st = (copied / "README.md").stat()
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_copy_chown_uses_the_image_passwd_and_chmod(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nCOPY --chown=nobody:nobody --chmod=0700 f /f\nCOPY --chown=12:34 f /g\n",
        "f": "x",
    })
    build(pyctr, ctx, "-t", "chown-test")
    img = image(pyctr, "chown-test")
    st = (img.layer_dirs[-2] / "f").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (65534, 65534, 0o700)
    st = (img.layer_dirs[-1] / "g").stat()
    assert (st.st_uid, st.st_gid) == (12, 34)
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY --chown=nosuchuser f /f\n")
    result = build(pyctr, ctx, check=False)
    assert result.returncode == 1 and "nosuchuser" in result.stderr


def test_add_extracts_archives_and_fetches_urls(pyctr, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    with tarfile.open(ctx / "pkg.tar.gz", "w:gz") as tar:
        data = b"inside the archive\n"
        info = tarfile.TarInfo("pkg/file.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    served = tmp_path / "www"
    write(served, {"remote.txt": "fetched over http\n"})
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/remote.txt"
        (ctx / "Dockerfile").write_text(f"FROM busybox\nADD pkg.tar.gz /opt/\nADD {url} /dl/\n")
        build(pyctr, ctx, "-t", "add-test")
    finally:
        server.shutdown()
        server.server_close()
    img = image(pyctr, "add-test")
    assert (img.layer_dirs[-2] / "opt" / "pkg" / "file.txt").read_text() == "inside the archive\n"
    remote = img.layer_dirs[-1] / "dl" / "remote.txt"
    assert remote.read_text() == "fetched over http\n" and remote.stat().st_mode & 0o777 == 0o600


def test_workdir_user_and_heredocs(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox\nWORKDIR /app/sub\nENV NAME=pyctr\n"
        "COPY <<EOF greeting.txt\nhello $NAME\nEOF\n"
        "RUN <<EOF\nset -e\npwd > where.txt\nid -u >> where.txt\nEOF\n"
        "USER nobody\nRUN id -u > /tmp/uid.txt\n"
    )})
    build(pyctr, ctx, "-t", "workdir-test", "--network", "none")
    img = image(pyctr, "workdir-test")
    dirs = img.layer_dirs
    assert (dirs[-4] / "app" / "sub").is_dir()
    assert (dirs[-3] / "app" / "sub" / "greeting.txt").read_text() == "hello pyctr\n"
    assert (dirs[-2] / "app" / "sub" / "where.txt").read_text() == "/app/sub\n0\n"
    assert (dirs[-1] / "tmp" / "uid.txt").read_text() == "65534\n"
    assert img.config["config"]["User"] == "nobody"


def test_run_deletes_are_whiteouts(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN rm /bin/vi && touch /new\n"})
    build(pyctr, ctx, "-t", "rm-test", "--network", "none")
    layer = top_layer(pyctr, "rm-test")
    assert (layer / "new").exists()
    vi = layer / "bin" / "vi"
    st = os.lstat(vi)
    assert os.major(st.st_rdev) == 0 and os.minor(st.st_rdev) == 0  # overlay whiteout


# --- reproducibility ------------------------------------------------------------------------


def test_no_cache_rebuild_gives_the_same_digest(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nCOPY . /src/\nRUN mkdir /out && echo built > /out/x && touch /out/y\n"
                      "CMD [\"cat\", \"/out/x\"]\n",
        "a.txt": "a", "d/b.txt": "b",
    })
    for path in [ctx, *ctx.rglob("*")]:
        os.utime(path, (1800000000, 1800000000))  # newer than the base image: the newest input
    first = build(pyctr, ctx, "-q", "--no-cache", "--network", "none").stdout.strip()
    second = build(pyctr, ctx, "-q", "--no-cache", "--network", "none").stdout.strip()
    assert first.startswith("sha256:") and first == second
    # Not the epoch (Docker's `images` said "56 years ago"): the time the newest input was written.
    assert image(pyctr, first).config["created"] == "2027-01-15T08:00:00Z"
    third = pyctr("build", "-q", "--no-cache", "--network", "none", str(ctx), check=True, timeout=240,
                  env_extra={"SOURCE_DATE_EPOCH": "1700000000"}).stdout.strip()
    assert third != first
    assert image(pyctr, third).config["created"] == "2023-11-14T22:13:20Z"
    # BuildKit's way: the build arg, consumed by the build (no "not consumed" warning)
    fourth = build(pyctr, ctx, "--no-cache", "--network", "none", "--build-arg", "SOURCE_DATE_EPOCH=1700000000")
    assert image(pyctr, third).id in {r.id for r in store_of(pyctr).list_images()}
    assert "were not consumed" not in fourth.stderr
    assert f"Successfully built {third[7:19]}" in fourth.stdout


def test_quiet_prints_only_the_id(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nLABEL quiet=yes\n"})
    out = build(pyctr, ctx, "-q").stdout
    assert out.count("\n") == 1 and out.startswith("sha256:")


# --- stages, triggers, flags ----------------------------------------------------------------


def test_onbuild_triggers_run_in_the_child_build(pyctr, tmp_path):
    base = write(tmp_path / "base", {"Dockerfile": "FROM busybox\nONBUILD COPY hello.txt /from-trigger.txt\n"})
    build(pyctr, base, "-t", "onbuild-base-test")
    assert image(pyctr, "onbuild-base-test").config["config"]["OnBuild"] == ["COPY hello.txt /from-trigger.txt"]
    child = write(tmp_path / "child", {"Dockerfile": "FROM onbuild-base-test\nLABEL child=1\n", "hello.txt": "hi"})
    out = build(pyctr, child, "-t", "onbuild-child-test").stdout
    assert "# Executing 1 build trigger" in out
    img = image(pyctr, "onbuild-child-test")
    assert (img.layer_dirs[-1] / "from-trigger.txt").read_text() == "hi"
    assert "OnBuild" not in img.config["config"]  # triggers are not inherited further


def test_stage_as_base_target_file_flag_and_copy_from_image(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {"build.df": (
        "FROM busybox AS one\nRUN echo one > /one.txt\n"
        "FROM one AS two\nRUN echo two > /two.txt\n"
        "FROM scratch AS three\nCOPY --from=two /one.txt /two.txt /\nCOPY --from=busybox /bin/busybox /bin/\n"
        "FROM busybox\nRUN false\n"
    )})
    out = build(pyctr, ctx, "-f", str(ctx / "build.df"), "--target", "three", "-t", "target-test",
                "--network", "none").stdout
    assert "RUN false" not in out
    img = image(pyctr, "target-test")
    assert len(img.layers) == 2
    assert (img.layer_dirs[0] / "one.txt").read_text() == "one\n"
    assert (img.layer_dirs[0] / "two.txt").read_text() == "two\n"
    assert (img.layer_dirs[1] / "bin" / "busybox").stat().st_size > 100_000


def test_pyserv_image_runs_and_answers(pyctr):
    """End to end with the runtime: the built image serves HTTP on a published port."""
    import socket
    import time
    import urllib.request

    build(pyctr, EXAMPLES / "pyserv", "-t", "pyserv-test:latest")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    container = pyctr("run", "-d", "-p", f"127.0.0.1:{port}:8000", "pyserv-test", check=True).stdout.strip()
    try:
        deadline = time.monotonic() + 20
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    body = response.read().decode()
            except OSError:
                time.sleep(0.2)
        assert body == "Hello from pyserv\n", pyctr("logs", container).stderr
    finally:
        pyctr("rm", "-f", container)


def test_run_heredoc_shebang_uses_its_interpreter(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM python:3-slim\nRUN <<EOF\n#!/usr/bin/env python3\nimport sys\n"
        "open('/py.txt', 'w').write(sys.version_info.major.__str__())\nEOF\n"
    )})
    build(pyctr, ctx, "-t", "shebang-test", "--network", "none")
    assert (top_layer(pyctr, "shebang-test") / "py.txt").read_text() == "3"


def test_run_uses_the_bridge_by_default(pyctr, tmp_path):
    import json

    def connected() -> set[str]:
        try:
            doc = json.loads((pyctr.root / "network" / "ipam.json").read_text())
        except FileNotFoundError:
            return set()
        return {cid for net in doc.get("networks", {}).values() for cid in net.get("containers", {})}

    before = connected()
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN ip -o -4 addr show eth0 > /ip.txt\n"})
    build(pyctr, ctx, "-t", "bridge-test", "--no-cache")
    assert "inet 10.78.0." in (top_layer(pyctr, "bridge-test") / "ip.txt").read_text()
    assert connected() <= before  # the RUN container's address was released


def test_from_only_is_the_base_image(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\n"})
    out = build(pyctr, ctx, "-q").stdout.strip()
    assert out == image(pyctr, "busybox").id


# --- RUN --mount ----------------------------------------------------------------------------


def layer_files(pyctr, name: str, count: int) -> set[str]:
    """Every path in the image's top `count` layers (what the build's own steps put in the image)."""
    found = set()
    for layer in image(pyctr, name).layer_dirs[-count:]:
        for dirpath, dirnames, filenames in os.walk(layer):
            for entry in dirnames + filenames:
                found.add(os.path.relpath(os.path.join(dirpath, entry), layer))
    return found


def layers_contain(pyctr, name: str, needle: bytes) -> bool:
    for layer in image(pyctr, name).layer_dirs:
        for dirpath, _dirnames, filenames in os.walk(layer):
            for entry in filenames:
                path = os.path.join(dirpath, entry)
                if os.path.isfile(path) and not os.path.islink(path) and needle in Path(path).read_bytes():
                    return True
    return False


def test_run_mount_cache_persists_across_builds_and_stays_out_of_the_layer(pyctr, tmp_path):
    cache_id = f"peer-{os.getpid()}-{tmp_path.name}"
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        f"FROM busybox\nRUN --mount=type=cache,target=/var/cache/app,id={cache_id} "
        "sh -c 'echo run >> /var/cache/app/runs && wc -l < /var/cache/app/runs > /runs.txt'\n")})
    build(pyctr, ctx, "-t", "mount-cache-test", "--network", "none")
    assert (top_layer(pyctr, "mount-cache-test") / "runs.txt").read_text().strip() == "1"
    build(pyctr, ctx, "-t", "mount-cache-test", "--network", "none", "--no-cache")
    assert (top_layer(pyctr, "mount-cache-test") / "runs.txt").read_text().strip() == "2"  # the cache was kept
    assert layer_files(pyctr, "mount-cache-test", 1) == {"runs.txt"}  # no /var/cache/app, not even the dir
    caches = list((pyctr.root / "cache-mounts").iterdir())
    assert any((c / "runs").is_file() and (c / "runs").read_text() == "run\nrun\n" for c in caches)


def test_run_mount_cache_seeded_from_a_stage_and_locked(pyctr, tmp_path):
    cache_id = f"seeded-{os.getpid()}-{tmp_path.name}"
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox AS seed\nRUN mkdir /s && echo seeded > /s/first\n"
        f"FROM busybox\nRUN --mount=type=cache,id={cache_id},from=seed,source=/s,target=/c,sharing=locked,"
        "mode=0750,uid=65534 sh -c 'cat /c/first > /got.txt && stat -c %a:%u /c >> /got.txt'\n")})
    build(pyctr, ctx, "-t", "mount-cache-seed-test", "--network", "none")
    assert (top_layer(pyctr, "mount-cache-seed-test") / "got.txt").read_text() == "seeded\n750:65534\n"
    assert layer_files(pyctr, "mount-cache-seed-test", 1) == {"got.txt"}


def test_run_mount_bind_context_and_stage_read_only_and_discarded(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": (
            "FROM busybox AS builder\nRUN mkdir /out && echo from-stage > /out/artifact\n"
            "FROM busybox\n"
            "RUN --mount=type=bind,target=/ctx --mount=type=bind,from=builder,source=/out,target=/stage "
            "sh -c 'cat /ctx/data.txt /stage/artifact > /result.txt && test ! -e /ctx/ignored.txt "
            "&& ! touch /ctx/new 2>/dev/null'\n"
            "RUN --mount=type=bind,source=data.txt,target=/one.txt,rw "
            "sh -c 'echo changed > /one.txt && cat /one.txt > /written.txt'\n"),
        "data.txt": "ctx-data\n",
        "ignored.txt": "never visible\n",
        ".dockerignore": "ignored.txt\n",
    })
    build(pyctr, ctx, "-t", "mount-bind-test", "--network", "none")
    img = image(pyctr, "mount-bind-test")
    assert (img.layer_dirs[-2] / "result.txt").read_text() == "ctx-data\nfrom-stage\n"
    assert (img.layer_dirs[-1] / "written.txt").read_text() == "changed\n"  # rw: writable for the command
    assert (ctx / "data.txt").read_text() == "ctx-data\n"  # ... but the write went nowhere
    assert layer_files(pyctr, "mount-bind-test", 2) == {"result.txt", "written.txt"}


def test_run_mount_tmpfs(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox\nRUN --mount=type=tmpfs,target=/scratch,size=1m "
        "sh -c 'grep \" /scratch tmpfs \" /proc/mounts | grep -q size=1024k && echo hi > /scratch/f "
        "&& cat /scratch/f > /t.txt'\n")})
    build(pyctr, ctx, "-t", "mount-tmpfs-test", "--network", "none")
    assert layer_files(pyctr, "mount-tmpfs-test", 1) == {"t.txt"}
    assert (top_layer(pyctr, "mount-tmpfs-test") / "t.txt").read_text() == "hi\n"


def test_run_mount_secret_never_reaches_layer_or_history(pyctr, tmp_path):
    token = f"s3cr3t-{tmp_path.name}"
    (tmp_path / "token").write_text(token)
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox\n"
        "RUN --mount=type=secret,id=tok sh -c 'stat -c %a:%u /run/secrets/tok > /mode.txt && "
        "wc -c < /run/secrets/tok > /len.txt'\n"
        "RUN --mount=type=secret,id=tok,env=TOKEN,uid=65534,mode=0440,target=/home/tok "
        "sh -c 'test \"$TOKEN\" = \"$(cat /home/tok)\" && stat -c %a:%u /home/tok > /mode2.txt'\n"
        "RUN --mount=type=secret,id=absent cat /run/secrets/absent 2>/dev/null || echo skipped > /absent.txt\n")})
    build(pyctr, ctx, "-t", "mount-secret-test", "--network", "none", "--secret", f"id=tok,src={tmp_path / 'token'}")
    img = image(pyctr, "mount-secret-test")
    assert (img.layer_dirs[-3] / "mode.txt").read_text() == "400:0\n"
    assert (img.layer_dirs[-3] / "len.txt").read_text().strip() == str(len(token))
    assert (img.layer_dirs[-2] / "mode2.txt").read_text() == "440:65534\n"
    assert (img.layer_dirs[-1] / "absent.txt").read_text() == "skipped\n"  # an optional secret not given
    assert layer_files(pyctr, "mount-secret-test", 3) == {"mode.txt", "len.txt", "mode2.txt", "absent.txt"}
    assert not layers_contain(pyctr, "mount-secret-test", token.encode())
    assert token not in str(img.config)
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN --mount=type=secret,id=missing,required true\n")
    result = build(pyctr, ctx, "--network", "none", check=False)
    assert result.returncode != 0 and "secret missing: not found" in result.stderr


def test_run_mount_bind_cannot_leave_the_context(pyctr, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN --mount=type=bind,source=../../etc,target=/x "
                                                 "cat /x/shadow\n"})
    result = build(pyctr, ctx, "--network", "none", check=False)
    assert result.returncode != 0 and "outside the build context" in result.stderr
    os.symlink("/etc", ctx / "abs")
    os.symlink("../../../../../../etc", ctx / "rel")
    for link in ("abs", "rel", "abs/shadow"):
        (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN --mount=type=bind,source={link},target=/x "
                                        "cat /x/shadow\n")
        result = build(pyctr, ctx, "--network", "none", check=False)
        assert result.returncode != 0 and "outside the build context" in result.stderr, link
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN --mount=type=bind,target=/x "
                                    "sh -c 'readlink /x/abs > /seen.txt; ls /x/abs/ > /listed.txt'\n")
    build(pyctr, ctx, "-t", "mount-hostile-test", "--network", "none")
    layer = top_layer(pyctr, "mount-hostile-test")
    assert (layer / "seen.txt").read_text() == "/etc\n"  # the link is a link in the container's own root
    listed = set((layer / "listed.txt").read_text().split())
    assert "passwd" in listed and listed != set(os.listdir("/etc"))  # busybox's /etc, not the host's: contained


def test_heredoc_forms_as_buildkit(pyctr, tmp_path):
    """`<<-` strips tabs, a quoted name is not expanded, several heredocs in one line, fd-numbered heredocs."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox\nENV NAME=pyctr\n"
        "RUN <<-EOF\n\techo tabs stripped > /chomp.txt\n\tEOF\n"
        "COPY <<'RAW' <<COOKED /docs/\n$NAME raw\nRAW\n$NAME cooked\nCOOKED\n"
        "RUN cat <<A > /a.txt && cat 3<<B <&3 > /b.txt\nfirst\nA\nsecond\nB\n"
        "RUN <<eo'f'\necho quoted-part > /q.txt\neof\n"
    )})
    build(pyctr, ctx, "-t", "heredoc-forms-test", "--network", "none")
    dirs = image(pyctr, "heredoc-forms-test").layer_dirs
    assert (dirs[-4] / "chomp.txt").read_text() == "tabs stripped\n"
    assert (dirs[-3] / "docs" / "RAW").read_text() == "$NAME raw\n"
    assert (dirs[-3] / "docs" / "COOKED").read_text() == "pyctr cooked\n"
    assert (dirs[-2] / "a.txt").read_text() == "first\n" and (dirs[-2] / "b.txt").read_text() == "second\n"
    assert (dirs[-1] / "q.txt").read_text() == "quoted-part\n"
