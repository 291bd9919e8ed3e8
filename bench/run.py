#!/usr/bin/env python3
"""`make bench`: pyctr side by side with Docker and Podman on the same machine, in the same run.

Each benchmark runs a warm-up, then alternates pyctr and each peer (A B A B ...) so drift in the
machine's speed hits both alike; it reports median, min and max per tool and the median of the
pair-by-pair ratios pyctr/peer. Images come from the same seeded loopback registry as the tests,
by explicit reference (127.0.0.1:PORT/...), which Docker and Podman treat as insecure by default.
All traffic stays on loopback and container addresses. Results go to bench/results.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PYCTR = str(REPO / ".venv" / "bin" / "pyctr")
RESULTS = REPO / "bench" / "results.md"


@dataclass
class Tool:
    """A runtime under test: how to invoke it and its environment."""

    name: str
    argv: list[str]
    env: dict[str, str]

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

    def before(tool: Tool, state: dict) -> None:
        # A cold pull: the image under every tag, and (pyctr) its blobs and layers, are gone. Other images that
        # share its layers would make a peer's pull warm: the bench removes its own builds when it ends.
        found = tool.run("image", "inspect", "-f", "{{.Id}}", ref, check=False).stdout.split()
        tool.run("rmi", "-f", *(found or [ref]), check=False)
        if tool.name == "pyctr":
            tool.run("image", "prune", "-a", "-f", check=False)

    return Bench("pull python:3-slim (cold, loopback registry)", "<= 0.5",
                 lambda t, s: timed(t, "pull", "-q", ref), before_each=before, runs=5)


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
    built: list[str] = []

    def setup(tool: Tool, state: dict) -> None:
        if built:
            return
        if tool.name != "pyctr":
            raise RuntimeError("the image is built and pushed by pyctr, whose setup failed")
        with tempfile.TemporaryDirectory(prefix="pyctr-bench-many-files-") as tmp:
            context = many_file_context(Path(tmp))
            tool.run("build", "-q", "-t", ref, str(context), timeout=1800)
        tool.run("push", ref, timeout=1800)
        built.append(ref)

    return Bench("pull of a 10-layer image, 20k small files + 3 x 50 MB (cold, loopback registry)", "<= 0.5",
                 lambda t, s: timed(t, "pull", "-q", ref), setup=setup, before_each=cold(ref), runs=5)


def cold(ref: str) -> Callable[[Tool, dict], None]:
    """Before each cold pull: the image under every tag, and (pyctr) its blobs and layers, are gone."""

    def before(tool: Tool, state: dict) -> None:
        found = tool.run("image", "inspect", "-f", "{{.Id}}", ref, check=False).stdout.split()
        tool.run("rmi", "-f", *(found or [ref]), check=False)
        if tool.name == "pyctr":
            tool.run("image", "prune", "-a", "-f", check=False)

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
                 lambda t, s: timed(t, *args) if t.name != "python" else timed(t, "-I", "-c", "pass"), runs=11)


# ---------------------------------------------------------------- scale: many containers, big contexts, long logs

MANY_CONTAINERS = 1000


class ManyContainers:
    """MANY_CONTAINERS stopped containers per tool, made once (parallel creates) for every bench that needs them,
    removed when the whole run ends (`cleanups`), whichever of those benches `--only` selected."""

    def __init__(self, ref: str, cleanups: list[Callable[[], None]]) -> None:
        self.ref = ref
        self.cleanups = cleanups
        self.ids: dict[str, list[str]] = {}

    def ensure(self, tool: Tool) -> None:
        if tool.name in self.ids:
            return
        from concurrent.futures import ThreadPoolExecutor

        def create(_: int) -> str:
            return tool.run("create", "--network", "none", self.ref, "true").stdout.strip()

        tool.run("pull", self.ref)
        self.ids[tool.name] = []
        self.cleanups.append(lambda: self.remove(tool))
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
    many = ManyContainers(ref, ctx["cleanups"])
    label = f"with {MANY_CONTAINERS} stopped containers"

    def create_then_remove(tool: Tool, state: dict) -> float:
        start = time.perf_counter()
        cid = tool.run("create", "--network", "none", ref, "true").stdout.strip()
        elapsed = time.perf_counter() - start
        tool.run("rm", cid)
        return elapsed

    return [
        Bench(f"ps {label}", "<= 1.0", lambda t, s: timed(t, "ps"), setup=lambda t, s: many.ensure(t)),
        Bench(f"ps -a {label}", "<= 1.0", lambda t, s: timed(t, "ps", "-a"), setup=lambda t, s: many.ensure(t)),
        Bench(f"create {label}", "<= 0.5", create_then_remove, setup=lambda t, s: many.ensure(t)),
        Bench(f"run --rm --network none busybox true {label}", "<= 0.3",
              lambda t, s: timed(t, "run", "--rm", "--network", "none", ref, "true"),
              setup=lambda t, s: many.ensure(t)),
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

    def setup(tool: Tool, state: dict) -> None:
        tool.run("pull", ref)
        tool.run("tag", ref, "busybox")
        state["context"] = big_context(ctx["work"] / "big-context")
        tool.run("build", "-q", "-t", "bench-bigctx", str(state["context"]))

    def teardown(tool: Tool, state: dict) -> None:
        tool.run("rmi", "-f", "bench-bigctx", check=False)

    return Bench("build fully cached, context of 20k files + 100 MB", "<= 0.25",
                 lambda t, s: timed(t, "build", "-q", "-t", "bench-bigctx", str(s["context"])),
                 setup=setup, teardown=teardown, runs=5)


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
                 teardown=teardown, runs=5)


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


def bench_oci_run(ctx: dict) -> Bench:
    bundle = str(ctx["oci_bundle"])
    ids = itertools.count()
    return Bench("OCI runtime: run of a busybox bundle (`true`)", "<= 1.0",
                 lambda t, s: timed(t, "run", "--bundle", bundle, f"bench-run-{next(ids)}"))


def bench_oci_cycle(ctx: dict) -> Bench:
    bundle = str(ctx["oci_bundle"])
    ids = itertools.count()

    def cycle(tool: Tool, state: dict) -> float:
        # create's streams go to the container, which outlives create: never a pipe we would wait on
        def call(*args: str) -> None:
            subprocess.run([*tool.argv, *args], env=tool.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True, timeout=60)

        name = f"bench-cycle-{next(ids)}"
        start = time.perf_counter()
        call("create", "--bundle", bundle, name)
        call("start", name)
        call("delete", "--force", name)
        return time.perf_counter() - start

    return Bench("OCI runtime: create + start + delete", "<= 1.0", cycle)


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


# ---------------------------------------------------------------- driver


def peers(enabled: bool, registry_host: str, work: Path) -> tuple[list[Tool], list[str]]:
    found, notes = [], []
    if not enabled:
        return found, ["peers not requested (make bench-peers benchmarks Docker and Podman too)"]
    env = dict(os.environ)
    # Docker treats 127.0.0.0/8 as insecure by default; podman is told so in its registries.conf.
    conf = work / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{registry_host}"\ninsecure = true\n')
    podman_env = dict(env, CONTAINERS_REGISTRIES_CONF=str(conf))
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        found.append(Tool("docker", ["docker"], env))
    else:
        notes.append("docker: no running Docker engine; benchmarked pyctr alone against it")
    if shutil.which("podman"):
        found.append(Tool("podman", ["podman"], podman_env))
    else:
        notes.append("podman: not installed")
    return found, notes


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


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"
    return f"{value:.1f} {unit}"


def table(benches: list[Bench], baseline: str = "pyctr") -> str:
    rows = ["| benchmark | tool | median | min | max | ratio pyctr/tool (median) | target |",
            "|---|---|---|---|---|---|---|"]
    for b in benches:
        mine = b.results.get(baseline, [])
        for tool, values in b.results.items():
            ratio = ""
            if tool != baseline and mine:
                pairs = [m / v for m, v in zip(mine, values, strict=False) if v]
                ratio = f"{statistics.median(pairs):.2f}" if pairs else ""
            rows.append(f"| {b.name} | {tool} | {fmt(statistics.median(values), b.unit)} | {fmt(min(values), b.unit)}"
                        f" | {fmt(max(values), b.unit)} | {ratio} | {b.target if tool == baseline else ''} |")
        if not b.results:
            rows.append(f"| {b.name} | - | - | - | - | - | {b.target} |")
    return "\n".join(rows)


def machine_line() -> str:
    mem = Path("/proc/meminfo").read_text().split()[1]
    return (f"{platform.node()}: {os.cpu_count()} cores, {int(mem) // 1024 // 1024} GiB, kernel {os.uname().release}, "
            f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def warm_server(tool: Tool) -> None:
    """Start pyctr's server (the first command does, in the background) and wait until it serves: the peers'
    daemons are running too. Every benchmark's warm-up would do this; doing it first keeps the figures clean."""
    from pyctr.client import socket_path

    tool.run("version")
    deadline = time.monotonic() + 30
    while not os.path.exists(socket_path(str(REPO / ".venv" / "bin"), str(REPO / "pyctr"))):
        if time.monotonic() > deadline:
            print("pyctr's server did not start: commands run in-process", file=sys.stderr)
            return
        time.sleep(0.05)
    tool.run("version")


def start_registry(workdir: Path):
    from tests.fixtures.registry import start_registry as start
    from tests.fixtures.seed import ensure_layouts, push_images

    ensure_layouts()
    reg = start(workdir)
    return reg, push_images(reg.host)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peers", action="store_true", help="benchmark Docker and Podman too, when present")
    parser.add_argument("--only", help="run only benchmarks whose name contains this")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        print("make bench needs root", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="pyctr-bench-") as tmp:
        work = Path(tmp)
        reg, images = start_registry(work / "registry")
        cleanups: list[Callable[[], None]] = []
        try:
            env = dict(os.environ, PYCTR_ROOT=str(work / "root"))
            env.pop("PYCTR_CONFIG", None)
            cfg = work / "config.toml"
            cfg.write_text(f'insecure_registries = ["{reg.host}"]\n')
            env["PYCTR_CONFIG"] = str(cfg)
            tools = [Tool("pyctr", [PYCTR], env)]
            warm_server(tools[0])
            peer_tools, notes = peers(opts.peers, reg.host, work)
            tools += peer_tools
            ctx = {"images": images, "pyserv_context": REPO / "examples" / "pyserv", "work": work, "cleanups": cleanups}
            benches = [
                bench_run_none(ctx), bench_run_bridge(ctx), bench_pull(ctx), bench_pull_many_files(ctx),
                bench_build(ctx, cached=False),
                bench_build(ctx, cached=True), bench_exec(ctx), bench_ps(ctx), bench_http(ctx), bench_memory(ctx),
                *bench_many(ctx), bench_big_context_build(ctx), bench_logs(ctx),
                bench_run_user_network(ctx), bench_dns(ctx),
            ]
            if opts.only:
                benches = [b for b in benches if opts.only in b.name]
            for b in benches:
                print(f"== {b.name}", flush=True)
                run_bench(b, tools)
            ctx["oci_bundle"] = oci_bundle(work)
            runtimes, oci_notes = oci_tools(work)
            notes += oci_notes
            for b in (bench_oci_run(ctx), bench_oci_cycle(ctx)):
                if not opts.only or opts.only in b.name:
                    print(f"== {b.name}", flush=True)
                    run_bench(b, runtimes)
                    benches.append(b)
            floor = [Tool("python", [sys.executable], env), tools[0]]
            for args, label in ((["--help"], "pyctr --help"), (["ps"], "pyctr ps (no containers)")):
                b = bench_startup(ctx, args, label)
                if not opts.only or opts.only in b.name:
                    run_bench(b, floor)
                    benches.append(b)
            report = "\n".join([
                "# pyctr benchmarks", "", machine_line(), "", table(benches), "",
                *(f"- {n}" for n in notes), *(f"- {b.name}: {n}" for b in benches for n in dict.fromkeys(b.notes)), "",
            ])
            RESULTS.write_text(report)
            print(report)
            print(json.dumps({b.name: b.results for b in benches}), file=sys.stderr)
        finally:
            for cleanup in cleanups:  # what benches left for the end (e.g. the 1000 containers)
                cleanup()
            reg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
