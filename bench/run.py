#!/usr/bin/env python3
"""`make bench`: pyctr alone; `make bench-peers` (`--peers`): side by side with Docker on the same machine, in
the same run.

Each benchmark runs a warm-up, then alternates pyctr and each peer (A B A B ...) so drift in the
machine's speed hits both alike; it reports median, min and max per tool and the median of the
pair-by-pair ratios pyctr/peer (bench/report.py). Images come from the same seeded loopback registry as the
tests, by explicit reference (127.0.0.1:PORT/...), which Docker and Podman treat as insecure by default.
All traffic stays on loopback and container addresses. Results go to bench/results.md.

With --peers the benchmarks run in GROUPS; for each group that needs Docker, dockerd is started (under the
integration-test lock, with its state in the bench's temporary directory) and stopped again with the host's
network state restored (bench/dockerd.py), so no period with dockerd up is long or unlocked. Preparations that
need no Docker (building the many-file image, generating the big context) run before the lock is taken.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402 - the repo must be importable first
from bench.dockerd import docker_cli, running_dockerd  # noqa: E402

PYCTR = str(REPO / ".venv" / "bin" / "pyctr")
RESULTS = REPO / "bench" / "results.md"


@dataclass
class Tool:
    """A runtime under test: how to invoke it and its environment."""

    name: str
    argv: list[str]
    env: dict[str, str]
    daemon_pid: Callable[[], int] | None = None  # the daemon a client tool talks to (its memory is measured)

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        r = subprocess.run([*self.argv, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(args)} exited {r.returncode}: {r.stderr.strip()[-300:]}")
        return r


@dataclass
class Bench:
    """One benchmark: a measured action per tool, optional per-iteration setup, and a target ratio."""

    name: str
    target: str
    measure: Callable[[Tool, dict], float]  # returns the figure (seconds unless `unit` says otherwise)
    setup: Callable[[Tool, dict], None] | None = None  # once per tool, not timed
    before_each: Callable[[Tool, dict], None] | None = None  # before every run, not timed
    teardown: Callable[[Tool, dict], None] | None = None
    unit: str = "s"
    higher_is_better: bool = False
    runs: int = 7
    group: str = "net"  # benches of one group share one period with dockerd up (see main)
    kind: str = "cli"  # which tools: cli (pyctr + peers), api (the docker CLI on both daemons), oci, floor
    prepare: Callable[[dict], None] | None = None  # once, before the group's lock: no Docker needed
    results: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def timed(tool: Tool, *args: str) -> float:
    start = time.perf_counter()
    tool.run(*args)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- benchmarks


def bench_run_none(ctx: dict) -> Bench:
    ref = ctx["images"]["busybox"]

    def setup(tool: Tool, state: dict) -> None:
        tool.run("pull", ref)

    return Bench("run --rm --network none busybox true", "<= 0.3",
                 lambda t, s: timed(t, "run", "--rm", "--network", "none", ref, "true"), setup=setup)


def bench_run_bridge(ctx: dict) -> Bench:
    ref = ctx["images"]["busybox"]
    return Bench("run --rm busybox true (bridge)", "<= 0.3",
                 lambda t, s: timed(t, "run", "--rm", ref, "true"),
                 setup=lambda t, s: t.run("pull", ref))


BENCH_NETWORK = "pyctr-bench-net"


def _create_bench_network(tool: Tool, state: dict, ref: str) -> None:
    tool.run("pull", ref)
    tool.run("network", "rm", BENCH_NETWORK, check=False)
    tool.run("network", "create", BENCH_NETWORK)


def bench_run_user_network(ctx: dict) -> Bench:
    """`run --rm` on a user-defined network (each tool creates its own network of that name first)."""
    ref = ctx["images"]["busybox"]
    return Bench("run --rm --network NAME busybox true (user network)", "<= 0.3",
                 lambda t, s: timed(t, "run", "--rm", "--network", BENCH_NETWORK, ref, "true"),
                 setup=lambda t, s: _create_bench_network(t, s, ref),
                 teardown=lambda t, s: t.run("network", "rm", BENCH_NETWORK, check=False))


def bench_dns(ctx: dict) -> Bench:
    """Median answer time of the embedded DNS server for a container name, asked from inside a container's
    network namespace (a host thread that entered it: no process start in the figure)."""
    ref = ctx["images"]["busybox"]

    def setup(tool: Tool, state: dict) -> None:
        _create_bench_network(tool, state, ref)
        tool.run("run", "-d", "--name", "bench-dns-target", "--network", BENCH_NETWORK, ref, "sleep", "3600")
        cid = tool.run("run", "-d", "--network", BENCH_NETWORK, ref, "sleep", "3600").stdout.strip()
        state["ids"] = ["bench-dns-target", cid]
        state["pid"] = int(tool.run("inspect", "-f", "{{.State.Pid}}", cid).stdout.strip())

    def measure(tool: Tool, state: dict) -> float:
        return dns_median(state["pid"], "bench-dns-target", 200)

    def teardown(tool: Tool, state: dict) -> None:
        tool.run("rm", "-f", *state.get("ids", []), check=False)
        tool.run("network", "rm", BENCH_NETWORK, check=False)

    return Bench("DNS answer for a container name (median)", "< 1 ms", measure, setup=setup, teardown=teardown)


def dns_median(pid: int, name: str, count: int) -> float:
    from pyctr.runtime.network.dns_server import build_query, parse_answer
    from pyctr.runtime.network.veth import call_in_netns

    times: list[float] = []

    def ask() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.connect(("127.0.0.11", 53))
            for i in range(count):
                start = time.perf_counter()
                sock.send(build_query(i, name))
                reply = sock.recv(4096)
                times.append(time.perf_counter() - start)
                if not parse_answer(reply)[1]:
                    raise RuntimeError(f"no address for {name}")

    call_in_netns(pid, ask)
    return sorted(times)[len(times) // 2]


def bench_pull(ctx: dict) -> Bench:
    ref = ctx["images"]["python"]
    return Bench("pull python:3-slim (cold, loopback registry, sync before each)", "<= 0.5",
                 lambda t, s: timed(t, "pull", "-q", ref), before_each=cold(ref), runs=5, group="pull")


MANY_FILES = 20_000
SMALL_LAYERS = 7  # + one layer per big file: 10 layers
BIG_FILES_MIB = (50, 50, 50)


def many_file_context(directory: Path) -> Path:
    """A build context whose image has SMALL_LAYERS layers of small files (MANY_FILES in all, 100 per directory)
    and one layer per big incompressible file."""
    rng = __import__("random").Random(18)
    per_layer = MANY_FILES // SMALL_LAYERS
    for layer in range(SMALL_LAYERS):
        for i in range(per_layer):
            sub = directory / f"l{layer}" / f"d{i // 100}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"f{i}.txt").write_bytes(rng.randbytes(rng.randrange(50, 4000)))
    for i, mib in enumerate(BIG_FILES_MIB):
        (directory / f"big{i}.bin").write_bytes(rng.randbytes(mib << 20))
    lines = ["FROM scratch", *(f"COPY l{n} /l{n}" for n in range(SMALL_LAYERS)),
             *(f"COPY big{i}.bin /big/" for i in range(len(BIG_FILES_MIB)))]
    (directory / "Dockerfile").write_text("\n".join(lines) + "\n")
    return directory


def bench_pull_many_files(ctx: dict) -> Bench:
    """A cold pull of a 10-layer image with 20k small files and 3 x 50 MB, which pyctr builds and pushes to the
    loopback registry once (every tool then pulls the same image)."""
    host = ctx["images"]["busybox"].split("/", 1)[0]
    ref = f"{host}/bench/many-files:latest"

    def prepare(ctx: dict) -> None:
        pyctr = ctx["pyctr"]
        with tempfile.TemporaryDirectory(prefix="pyctr-bench-many-files-") as tmp:
            context = many_file_context(Path(tmp))
            pyctr.run("build", "-q", "-t", ref, str(context), timeout=1800)
        pyctr.run("push", ref, timeout=1800)
        pyctr.run("rmi", ref)

    return Bench("pull of a 10-layer image, 20k small files + 3 x 50 MB (cold, loopback registry, sync before each)",
                 "<= 0.5", lambda t, s: timed(t, "pull", "-q", ref), prepare=prepare, before_each=cold(ref), runs=5,
                 group="pull")


def cold(ref: str) -> Callable[[Tool, dict], None]:
    """Before each cold pull, for every tool alike: the image under every tag is gone and so is every other
    image (one sharing its layers would make the pull warm: Docker keeps layers an image still uses), then
    `sync`, so no tool pays for the previous one's dirty pages."""

    def before(tool: Tool, state: dict) -> None:
        found = tool.run("image", "inspect", "-f", "{{.Id}}", ref, check=False).stdout.split()
        tool.run("rmi", "-f", *(found or [ref]), check=False)
        tool.run("image", "prune", "-a", "-f", check=False)
        os.sync()

    return before


def bench_build(ctx: dict, cached: bool) -> Bench:
    context = ctx["pyserv_context"]

    def run(tool: Tool, state: dict) -> float:
        args = ["build", "-q", "-t", "bench-pyserv"] + ([] if cached else ["--no-cache"]) + [str(context)]
        return timed(tool, *args)

    def setup(tool: Tool, state: dict) -> None:
        local_base(tool, ctx)
        tool.run("build", "-q", "-t", "bench-pyserv", str(context))

    name = "build examples/pyserv " + ("fully cached" if cached else "cold (--no-cache)")
    return Bench(name, "<= 0.5" if cached else "<= 1.0", run, setup=setup)


def bench_exec(ctx: dict) -> Bench:
    ref = ctx["images"]["busybox"]

    def setup(tool: Tool, state: dict) -> None:
        state["cid"] = tool.run("run", "-d", "--network", "none", ref, "sleep", "3600").stdout.strip()

    def teardown(tool: Tool, state: dict) -> None:
        tool.run("rm", "-f", state["cid"], check=False)

    return Bench("exec <container> true", "<= 1.0", lambda t, s: timed(t, "exec", s["cid"], "true"),
                 setup=setup, teardown=teardown)


def bench_ps(ctx: dict) -> Bench:
    ref = ctx["images"]["busybox"]

    def setup(tool: Tool, state: dict) -> None:
        state["ids"] = [tool.run("create", "--network", "none", ref, "true").stdout.strip() for _ in range(100)]

    def teardown(tool: Tool, state: dict) -> None:
        tool.run("rm", "-f", *state["ids"], check=False)

    return Bench("ps -a with 100 containers", "<= 3.0", lambda t, s: timed(t, "ps", "-a"),
                 setup=setup, teardown=teardown)


def bench_http(ctx: dict) -> Bench:
    context = ctx["pyserv_context"]

    def setup(tool: Tool, state: dict) -> None:
        local_base(tool, ctx)
        tool.run("build", "-q", "-t", "bench-pyserv", str(context))
        state["port"] = free_port()
        state["cid"] = tool.run("run", "-d", "-p", f"127.0.0.1:{state['port']}:8000", "bench-pyserv").stdout.strip()
        wait_http(f"http://127.0.0.1:{state['port']}/")

    def measure(tool: Tool, state: dict) -> float:
        return requests_per_second(f"http://127.0.0.1:{state['port']}/", seconds=3.0)

    def teardown(tool: Tool, state: dict) -> None:
        tool.run("rm", "-f", state["cid"], check=False)

    return Bench("HTTP requests/s through -p on loopback", ">= 1.0", measure, setup=setup, teardown=teardown,
                 unit="req/s", higher_is_better=True, runs=3)


def bench_memory(ctx: dict) -> Bench:
    ref = ctx["images"]["busybox"]
    count = 50

    def measure(tool: Tool, state: dict) -> float:
        before = runtime_private_kib(tool.name)
        ids = [tool.run("run", "-d", "--network", "none", ref, "sleep", "3600").stdout.strip() for _ in range(count)]
        try:
            time.sleep(1.0)
            return (runtime_private_kib(tool.name) - before) / count / 1024
        finally:
            tool.run("rm", "-f", *ids, check=False)

    return Bench("private memory per idle detached container (50)", "<= 1.0", measure, unit="MiB", runs=1)


def bench_startup(ctx: dict, args: list[str], label: str) -> Bench:
    return Bench(f"CLI start-up: {label}", "floor: python -I -c pass",
                 lambda t, s: timed(t, *args) if t.name != "python" else timed(t, "-I", "-c", "pass"), runs=11,
                 group="oci", kind="floor")


# ---------------------------------------------------------------- scale: many containers, big contexts, long logs

MANY_CONTAINERS = 1000


class ManyContainers:
    """MANY_CONTAINERS stopped containers per tool, made once (parallel creates) for every bench that needs them,
    removed when their group ends (ctx["cleanups"], before dockerd stops), whichever of those benches `--only`
    selected."""

    def __init__(self, ref: str, ctx: dict) -> None:
        self.ref = ref
        self.ctx = ctx
        self.ids: dict[str, list[str]] = {}

    def ensure(self, tool: Tool) -> None:
        if tool.name in self.ids:
            return
        from concurrent.futures import ThreadPoolExecutor

        def create(_: int) -> str:
            return tool.run("create", "--network", "none", self.ref, "true").stdout.strip()

        tool.run("pull", self.ref)
        self.ids[tool.name] = []
        self.ctx["cleanups"].append(lambda: self.remove(tool))
        with ThreadPoolExecutor(max_workers=4) as pool:
            self.ids[tool.name] = list(pool.map(create, range(MANY_CONTAINERS)))

    def remove(self, tool: Tool) -> None:
        ids = self.ids.pop(tool.name, [])
        for start in range(0, len(ids), 200):
            tool.run("rm", "-f", *ids[start:start + 200], check=False)


def bench_many(ctx: dict) -> list[Bench]:
    """ps, create and run --rm with MANY_CONTAINERS stopped containers present (flat in their number: the
    state index)."""
    ref = ctx["images"]["busybox"]
    many = ManyContainers(ref, ctx)
    label = f"with {MANY_CONTAINERS} stopped containers"

    def create_then_remove(tool: Tool, state: dict) -> float:
        start = time.perf_counter()
        cid = tool.run("create", "--network", "none", ref, "true").stdout.strip()
        elapsed = time.perf_counter() - start
        tool.run("rm", cid)
        return elapsed

    return [
        Bench(f"ps {label}", "<= 1.0", lambda t, s: timed(t, "ps"), setup=lambda t, s: many.ensure(t),
              group="scale"),
        Bench(f"ps -a {label}", "<= 1.0", lambda t, s: timed(t, "ps", "-a"), setup=lambda t, s: many.ensure(t),
              group="scale"),
        Bench(f"create {label}", "<= 0.5", create_then_remove, setup=lambda t, s: many.ensure(t), group="scale"),
        Bench(f"run --rm --network none busybox true {label}", "<= 0.3",
              lambda t, s: timed(t, "run", "--rm", "--network", "none", ref, "true"),
              setup=lambda t, s: many.ensure(t), group="scale"),
    ]


def big_context(directory: Path, files: int = 20_000, big_mib: int = 100) -> Path:
    """A build context of `files` small files in 200 directories plus `big_mib` MiB in two files (made once)."""
    done = directory / ".complete"
    if done.exists():
        return directory
    for d in range(200):
        sub = directory / "src" / f"d{d}"
        sub.mkdir(parents=True, exist_ok=True)
        for f in range(files // 200):
            (sub / f"f{f}.txt").write_text(f"file {d} {f}\n" * 3)
    rng = __import__("random").Random(18)
    for i in range(2):
        (directory / f"blob{i}.bin").write_bytes(rng.randbytes(big_mib // 2 << 20))
    (directory / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx\nRUN true\n")
    done.write_text("")
    return directory


def bench_big_context_build(ctx: dict) -> Bench:
    ref = ctx["images"]["busybox"]

    context = ctx["work"] / "big-context"

    def setup(tool: Tool, state: dict) -> None:
        tool.run("pull", ref)
        tool.run("tag", ref, "busybox")
        tool.run("build", "-q", "-t", "bench-bigctx", str(context), timeout=1800)

    def teardown(tool: Tool, state: dict) -> None:
        tool.run("rmi", "-f", "bench-bigctx", check=False)

    return Bench("build fully cached, context of 20k files + 100 MB", "<= 0.25",
                 lambda t, s: timed(t, "build", "-q", "-t", "bench-bigctx", str(context)),
                 prepare=lambda c: big_context(context), setup=setup, teardown=teardown, runs=5, group="big")


LOG_LINES = 2_000_000


def bench_logs(ctx: dict) -> Bench:
    """`logs` of LOG_LINES short lines a container printed (written by the container itself, for every tool)."""
    ref = ctx["images"]["busybox"]
    script = f"i=0; while [ $i -lt {LOG_LINES} ]; do echo line $i; i=$((i+1)); done"

    def setup(tool: Tool, state: dict) -> None:
        tool.run("pull", ref)
        state["cid"] = tool.run("run", "-d", "--network", "none", ref, "sh", "-c", script).stdout.strip()
        tool.run("wait", state["cid"], timeout=1800)

    def measure(tool: Tool, state: dict) -> float:
        start = time.perf_counter()
        with open(os.devnull, "wb") as sink:
            subprocess.run([*tool.argv, "logs", state["cid"]], env=tool.env, stdout=sink, stderr=sink, check=True)
        return time.perf_counter() - start

    def teardown(tool: Tool, state: dict) -> None:
        tool.run("rm", "-f", state["cid"], check=False)

    return Bench(f"logs of {LOG_LINES // 1_000_000} million short lines", "<= 0.5", measure, setup=setup,
                 teardown=teardown, runs=5, group="big")


# ---------------------------------------------------------------- measuring helpers


def oci_tools(work: Path) -> tuple[list[Tool], list[str]]:
    """pyctr-runtime (the baseline, named "pyctr" for the ratio column) and runc, each with a --root of its own."""
    runtime = str(REPO / ".venv" / "bin" / "pyctr-runtime")
    tools = [Tool("pyctr", [runtime, "--root", str(work / "oci-pyctr")], dict(os.environ))]
    if shutil.which("runc"):
        return tools + [Tool("runc", ["runc", "--root", str(work / "oci-runc")], dict(os.environ))], []
    return tools, ["runc: not installed (Debian's containerd brings it)"]


def oci_bundle(work: Path) -> Path:
    """A busybox bundle both runtimes run: busybox-static in rootfs/, runc's starter config running `true`."""
    from tests.integration.container_rootfs import build_busybox_rootfs

    bundle = work / "oci-bundle"
    build_busybox_rootfs(bundle / "rootfs")
    subprocess.run([str(REPO / ".venv" / "bin" / "pyctr-runtime"), "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(terminal=False, args=["true"])
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def prepare_oci_bundle(ctx: dict) -> None:
    if "oci_bundle" not in ctx:
        ctx["oci_bundle"] = oci_bundle(ctx["work"])


def bench_oci_run(ctx: dict) -> Bench:
    ids = itertools.count()
    return Bench("OCI runtime: run of a busybox bundle (`true`)", "<= 1.0",
                 lambda t, s: timed(t, "run", "--bundle", str(ctx["oci_bundle"]), f"bench-run-{next(ids)}"),
                 prepare=prepare_oci_bundle, group="oci", kind="oci")


def bench_run_vs_runc(ctx: dict) -> Bench:
    """Issue 18's floor for the whole `run`: pyctr's `run --rm --network none busybox true` (image to exit and
    cleanup) against `runc run` of an already prepared busybox bundle, alternating."""
    ref = ctx["images"]["busybox"]
    ids = itertools.count()

    def measure(tool: Tool, state: dict) -> float:
        if tool.name == "runc":
            return timed(tool, "run", "--bundle", str(ctx["oci_bundle"]), f"bench-floor-{next(ids)}")
        return timed(tool, "run", "--rm", "--network", "none", ref, "true")

    def setup(tool: Tool, state: dict) -> None:
        if tool.name != "runc":
            tool.run("pull", ref)

    return Bench("run --rm --network none busybox true vs runc run of a prepared bundle", "<= 1.0", measure,
                 setup=setup, prepare=prepare_oci_bundle, group="oci", kind="runc")


def bench_oci_cycle(ctx: dict) -> Bench:
    ids = itertools.count()

    def cycle(tool: Tool, state: dict) -> float:
        # create's streams go to the container, which outlives create: never a pipe we would wait on
        def call(*args: str) -> None:
            subprocess.run([*tool.argv, *args], env=tool.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True, timeout=60)

        name = f"bench-cycle-{next(ids)}"
        start = time.perf_counter()
        call("create", "--bundle", str(ctx["oci_bundle"]), name)
        call("start", name)
        call("delete", "--force", name)
        return time.perf_counter() - start

    return Bench("OCI runtime: create + start + delete", "<= 1.0", cycle, prepare=prepare_oci_bundle, group="oci",
                 kind="oci")


def local_base(tool: Tool, ctx: dict) -> None:
    """`FROM python:3-slim` must resolve locally for every tool: pull from loopback, tag with the short name."""
    tool.run("pull", "-q", ctx["images"]["python"])
    tool.run("tag", ctx["images"]["python"], "python:3-slim")


def wait_http(url: str, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def requests_per_second(url: str, seconds: float) -> float:
    """Bounded load on loopback: wrk when installed, else a small threaded Python client."""
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "-t2", "-c16", f"-d{int(seconds)}s", url], capture_output=True, text=True,
                             timeout=seconds + 30).stdout
        for line in out.splitlines():
            if line.startswith("Requests/sec:"):
                return float(line.split()[1])
    import concurrent.futures

    deadline = time.time() + seconds

    def worker() -> int:
        n = 0
        while time.time() < deadline and n < 100000:
            with urllib.request.urlopen(url, timeout=5) as r:
                r.read()
            n += 1
        return n

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        total = sum(pool.map(lambda _: worker(), range(8)))
    return total / seconds


def runtime_private_kib(tool: str) -> int:
    """Private memory of the per-container helper processes of a runtime (monitor or shim)."""
    marker = {"pyctr": "/monitor-", "docker": "containerd-shim", "podman": "conmon"}[tool]
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                continue
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


# ---------------------------------------------------------------- one docker CLI: pyctr's daemon and dockerd

API_BASELINE = "pyctr system service"


def bench_api(ctx: dict) -> list[Bench]:
    """Issue 16: Debian's docker CLI (20.10) against `pyctr system service` and against dockerd, alternating."""
    ref = ctx["images"]["busybox"]

    def create_hundred(tool: Tool, state: dict) -> None:
        tool.run("pull", ref)
        state["ids"] = [tool.run("create", "--network", "none", ref, "true").stdout.strip() for _ in range(100)]

    def start_one(tool: Tool, state: dict) -> None:
        tool.run("pull", ref)
        state["ids"] = [tool.run("run", "-d", "--network", "none", ref, "sleep", "3600").stdout.strip()]

    def remove(tool: Tool, state: dict) -> None:
        tool.run("rm", "-f", *state.get("ids", []), check=False)

    def idle_memory(tool: Tool, state: dict) -> float:
        time.sleep(1.0)
        return tree_pss_kib(tool.daemon_pid()) / 1024 if tool.daemon_pid else 0.0

    return [
        Bench("docker CLI: run --rm busybox true", "<= 0.5", lambda t, s: timed(t, "run", "--rm", ref, "true"),
              setup=lambda t, s: t.run("pull", ref), kind="api"),
        Bench("docker CLI: ps -a with 100 containers", "<= 1.0", lambda t, s: timed(t, "ps", "-a"),
              setup=create_hundred, teardown=remove, kind="api"),
        Bench("docker CLI: exec c true", "<= 1.0", lambda t, s: timed(t, "exec", s["ids"][0], "true"),
              setup=start_one, teardown=remove, kind="api"),
        # last: both daemons have served the same requests, and hold no container now
        Bench("idle daemon memory, PSS of its process tree (after the API benchmarks, no containers)", "reported",
              idle_memory, unit="MiB", runs=1, kind="api"),
    ]


def tree_pss_kib(root: int) -> int:
    """Proportional set size of a process and all its descendants (dockerd's tree holds its containerd)."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


@contextlib.contextmanager
def pyctr_service(ctx: dict) -> Iterator[subprocess.Popen]:
    """`pyctr system service` on a socket of the bench's, sharing the bench's pyctr root and config."""
    sock = ctx["work"] / "pyctr-api.sock"
    log = ctx["work"] / "pyctr-api.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([PYCTR, "system", "service", "--host", f"unix://{sock}"],
                                env={**ctx["pyctr"].env, "PYCTR_SERVER": "0"}, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pyctr system service did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- driver

GROUPS = ("net", "pull", "scale", "big", "oci")  # each with Docker is one locked period with dockerd up


def all_benches(ctx: dict) -> list[Bench]:
    return [
        bench_run_none(ctx), bench_run_bridge(ctx), bench_run_user_network(ctx), bench_dns(ctx), bench_exec(ctx),
        bench_ps(ctx), bench_build(ctx, cached=False), bench_build(ctx, cached=True), bench_http(ctx),
        bench_memory(ctx), *bench_api(ctx),
        bench_pull(ctx), bench_pull_many_files(ctx),
        *bench_many(ctx),
        bench_big_context_build(ctx), bench_logs(ctx),
        bench_run_vs_runc(ctx), bench_oci_run(ctx), bench_oci_cycle(ctx),
        bench_startup(ctx, ["--help"], "pyctr --help"), bench_startup(ctx, ["ps"], "pyctr ps (no containers)"),
    ]


def podman_tool(work: Path, registry_host: str) -> Tool:
    """Podman is told the loopback registry is insecure in a registries.conf of the bench's."""
    conf = work / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{registry_host}"\ninsecure = true\n')
    return Tool("podman", ["podman"], dict(os.environ, CONTAINERS_REGISTRIES_CONF=str(conf)))


def run_group(members: list[Bench], ctx: dict, opts: argparse.Namespace, notes: list[str]) -> None:
    """Prepare (no lock), then run the group's benches with dockerd up only for this group when Docker is wanted
    (bench/dockerd.py: locked, host restored); what benches left for the end is removed before dockerd stops."""
    for b in members:
        if b.prepare:
            print(f"-- preparing {b.name}", flush=True)
            b.prepare(ctx)
    kinds = {b.kind for b in members}
    pyctr = ctx["pyctr"]
    with contextlib.ExitStack() as stack:
        peers: list[Tool] = []
        api: list[Tool] = []
        dockerd = None
        if opts.peers and kinds & {"cli", "api"}:
            dockerd = stack.enter_context(running_dockerd(ctx["work"] / "docker", notes))
            peers.append(Tool("docker", [docker_cli()], dockerd.env))
            version = subprocess.run([docker_cli(), "version", "--format", "{{.Server.Version}}"], env=dockerd.env,
                                     capture_output=True, text=True, check=False).stdout.strip()
            ctx["docker_version"] = version
        if opts.podman and "cli" in kinds:
            peers.append(podman_tool(ctx["work"], ctx["registry_host"]))
        if "api" in kinds:
            service = stack.enter_context(pyctr_service(ctx))
            sock_env = dict(os.environ, DOCKER_HOST=f"unix://{ctx['work'] / 'pyctr-api.sock'}",
                            DOCKER_CONFIG=str(ctx["work"] / "cli-config"), DOCKER_BUILDKIT="0")
            api.append(Tool(API_BASELINE, [docker_cli()], sock_env, daemon_pid=lambda: service.pid))
            if dockerd:
                api.append(Tool("dockerd", [docker_cli()], dockerd.env, daemon_pid=lambda: dockerd.pid))
        tools = {"cli": [pyctr, *peers], "api": api, "oci": ctx["oci_tools"],
                 "runc": [pyctr, *ctx["oci_tools"][1:]], "floor": [Tool("python", [sys.executable], pyctr.env), pyctr]}
        ctx["cleanups"] = []
        try:
            for b in members:
                print(f"== {b.name}", flush=True)
                run_bench(b, tools[b.kind])
        finally:
            for cleanup in ctx["cleanups"]:  # what benches left for the end (e.g. the 1000 containers)
                cleanup()


def run_bench(bench: Bench, tools: list[Tool]) -> None:
    states: dict[str, dict] = {t.name: {} for t in tools}
    live: list[Tool] = []
    for tool in tools:
        try:
            if bench.setup:
                bench.setup(tool, states[tool.name])
            live.append(tool)
        except Exception as e:  # noqa: BLE001 - a tool that cannot run a benchmark is reported, not fatal
            bench.notes.append(f"{tool.name}: setup failed: {e}")
    try:
        for i in range(bench.runs + 1):  # the first round is the warm-up
            for tool in live:
                state = states[tool.name]
                try:
                    if bench.before_each:
                        bench.before_each(tool, state)
                    value = bench.measure(tool, state)
                except Exception as e:  # noqa: BLE001
                    bench.notes.append(f"{tool.name}: {e}")
                    continue
                if i > 0 or bench.runs == 1:
                    bench.results.setdefault(tool.name, []).append(value)
    finally:
        for tool in live:
            if bench.teardown:
                try:
                    bench.teardown(tool, states[tool.name])
                except Exception as e:  # noqa: BLE001
                    bench.notes.append(f"{tool.name}: teardown failed: {e}")



def machine_line() -> str:
    mem = Path("/proc/meminfo").read_text().split()[1]
    return (f"{platform.node()}: {os.cpu_count()} cores, {int(mem) // 1024 // 1024} GiB, kernel {os.uname().release}, "
            f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def warm_server(tool: Tool) -> None:
    """Start pyctr's server (the first command does, in the background) and wait until it serves: the peers'
    daemons are running too. Every benchmark's warm-up would do this; doing it first keeps the figures clean."""
    from pyctr.client import socket_path

    tool.run("version")
    deadline = time.monotonic() + 90  # a loaded machine (parallel test runs) starts it slowly
    while not os.path.exists(socket_path(str(REPO / ".venv" / "bin"), str(REPO / "pyctr"))):
        if time.monotonic() > deadline:
            print("pyctr's server did not start: commands run in-process", file=sys.stderr)
            return
        time.sleep(1.0)
        tool.run("version")  # a server that left (code changed under it) is started again by the next command
    tool.run("version")


def start_registry(workdir: Path):
    from tests.fixtures.registry import start_registry as start
    from tests.fixtures.seed import ensure_layouts, push_images

    ensure_layouts()
    reg = start(workdir)
    return reg, push_images(reg.host)


def results_markdown(benches: list[Bench], notes: list[str], ctx: dict, argv: list[str]) -> str:
    rows = [r for b in benches
            for r in report.rows(b.name, b.results, API_BASELINE if b.kind == "api" else "pyctr", b.target)]
    docker = ctx.get("docker_version")
    return "\n".join([
        "# pyctr benchmarks", "", machine_line(), "",
        f"Command: `{' '.join(['bench/run.py', *argv])}`; peers: " + (f"Docker {docker} (Debian's dockerd and CLI,"
                                                                      " started by the bench)" if docker else "none"),
        "Each benchmark: one warm-up round, then N rounds alternating the tools; ratio = median over rounds of "
        "(baseline / tool) with the baseline pyctr (the docker CLI rows: pyctr system service).", "",
        report.markdown(rows, {b.name: b.unit for b in benches}), "",
        *(f"- {n}" for n in notes), *(f"- {b.name}: {n}" for b in benches for n in dict.fromkeys(b.notes)), "",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peers", action="store_true", help="start dockerd (locked, host restored) and run Docker too")
    parser.add_argument("--podman", action="store_true", help="podman too (with --peers)")
    parser.add_argument("--only", help="run only benchmarks whose name contains this")
    parser.add_argument("--group", help=f"run only these groups (comma-separated of {', '.join(GROUPS)})")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and their groups")
    parser.add_argument("--runs", type=int, help="rounds per benchmark instead of each one's own (a dry run: 1)")
    opts = parser.parse_args()
    if os.geteuid() != 0 and not opts.list:
        print("make bench needs root", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="pyctr-bench-") as tmp:
        work = Path(tmp)
        if opts.list:
            ctx = {"images": {"busybox": "R/busybox", "python": "R/python"}, "work": work,
                   "pyserv_context": REPO / "examples" / "pyserv"}
            for b in all_benches(ctx):
                print(f"{b.group:6} {b.kind:5} {b.name}")
            return 0
        reg, images = start_registry(work / "registry")
        try:
            env = dict(os.environ, PYCTR_ROOT=str(work / "root"))
            cfg = work / "config.toml"
            cfg.write_text(f'insecure_registries = ["{reg.host}"]\n')
            env["PYCTR_CONFIG"] = str(cfg)
            pyctr = Tool("pyctr", [PYCTR], env)
            warm_server(pyctr)
            oci, notes = oci_tools(work)
            ctx = {"images": images, "pyserv_context": REPO / "examples" / "pyserv", "work": work, "pyctr": pyctr,
                   "registry_host": reg.host, "oci_tools": oci, "cleanups": []}
            groups = opts.group.split(",") if opts.group else list(GROUPS)
            benches = [b for b in all_benches(ctx) if b.group in groups and (not opts.only or opts.only in b.name)]
            for b in benches:
                b.runs = min(b.runs, opts.runs) if opts.runs else b.runs
            if not opts.peers:
                notes.append("peers not requested (make bench-peers runs Docker side by side)")
            for group in GROUPS:
                members = [b for b in benches if b.group == group]
                if members:
                    run_group(members, ctx, opts, notes)
            text = results_markdown(benches, notes, ctx, sys.argv[1:])
            RESULTS.write_text(text)
            print(text)
            print(json.dumps({b.name: b.results for b in benches}), file=sys.stderr)
        finally:
            reg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
