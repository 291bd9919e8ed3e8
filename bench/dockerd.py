"""dockerd for `make bench-peers`, up only while the integration lock is held, and the host put back afterwards.

Why all this: the machine is shared with integration test runs that own test bridges, subnets and firewall
rules. dockerd changes the host when it starts (docker0, DOCKER* iptables chains, FORWARD policy DROP, sysctls,
a containerd of its own, mounts) and leaves much of that behind when it stops. So every period in which dockerd
is up sits inside `flock /tmp/pyctr-integration.lock` (the lock the integration tests take), its state lives in
the bench's own temporary directories (never /var/lib/docker or /run/docker.sock), and when it stops the host's
network and netfilter state is compared with a snapshot taken before it started and restored.

Deciding (pure, unit-tested in tests/unit/test_bench_dockerd.py) is kept apart from doing (subprocess calls).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

LOCK_PATH = "/tmp/pyctr-integration.lock"
# iptables-nft keeps its rules in nft tables of these names; dockerd writes only through iptables
IPTABLES_FAMILIES = {"ip": "iptables", "ip6": "ip6tables"}
IPTABLES_TABLES = ("filter", "nat", "mangle", "raw", "security")
SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/ipv6/conf/default/forwarding",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/bridge/bridge-nf-call-arptables",
)
# what dockerd 20.10 may write outside the paths it is given: removed after it when it was not there before
DOCKER_FILES = ("/etc/docker/key.json", "/var/lib/docker", "/run/docker", "/run/docker.sock", "/run/docker.pid")
# dockerd uses a containerd answering here instead of starting its own (which the bench can clean up after)
SYSTEM_CONTAINERD = "/run/containerd/containerd.sock"


# ---------------------------------------------------------------- deciding


@dataclass
class HostState:
    """What dockerd may change on the host, as text, so two snapshots compare with ==."""

    iptables: dict[str, str]  # family -> iptables-save output without its timestamp comments
    nft_tables: set[str]  # "family name"
    nft_ruleset: str
    sysctls: dict[str, str]
    links: set[str]
    mounts: set[str]
    files: set[str]  # of DOCKER_FILES, the ones present
    processes: set[int] = field(default_factory=set)  # pids of containerd/shim processes (none expected)


def without_timestamps(save_output: str) -> str:
    """iptables-save output minus its "# Generated/Completed ..." lines and packet counters, which change on
    their own."""
    kept = []
    for line in save_output.splitlines():
        if line.startswith("#"):
            continue
        if line.startswith(":"):  # ":CHAIN POLICY [packets:bytes]"
            line = line.split(" [", 1)[0]
        kept.append(line)
    return "\n".join(kept)


def tables_from_listing(listing: str) -> set[str]:
    """`nft list tables` ("table ip filter" per line) -> {"ip filter"}."""
    return {line.split(None, 1)[1].strip() for line in listing.splitlines() if line.startswith("table ")}


def iptables_tables_to_delete(before: set[str], after: set[str]) -> list[str]:
    """The iptables-nft tables that appeared while dockerd ran: deleting them restores "no rules at all"
    (the state iptables-restore cannot express: it only rewrites tables its input names)."""
    wanted = {f"{family} {table}" for family in IPTABLES_FAMILIES for table in IPTABLES_TABLES}
    return sorted((after - before) & wanted)


def families_to_restore(before: HostState, after: HostState) -> list[str]:
    """Families whose iptables-save differs although their tables existed before: rewrite them from the
    snapshot with iptables-restore."""
    out = []
    for family in IPTABLES_FAMILIES:
        had_tables = any(t.startswith(f"{family} ") for t in before.nft_tables if t.split()[1] in IPTABLES_TABLES)
        if had_tables and before.iptables.get(family) != after.iptables.get(family):
            out.append(family)
    return out


def docker_links(before: set[str], after: set[str], network_ids: set[str]) -> list[str]:
    """Links dockerd made and left: docker0 and the bridges of ITS user networks (br-<first 12 of the id>; pyctr
    names its own user bridges the same way, so the name alone proves nothing), never anything else."""
    ours = {"docker0"} | {f"br-{nid[:12]}" for nid in network_ids}
    return sorted((after - before) & ours)


def differences(before: HostState, after: HostState) -> list[str]:
    """What is still not as it was, one line each (empty: the host is as before)."""
    out = []
    for family in IPTABLES_FAMILIES:
        if before.iptables.get(family) != after.iptables.get(family):
            out.append(f"{IPTABLES_FAMILIES[family]}-save differs")
    if before.nft_ruleset != after.nft_ruleset:
        out.append("nft list ruleset differs")
    out += [f"sysctl {k}: {before.sysctls.get(k)} -> {after.sysctls.get(k)}"
            for k in sorted(set(before.sysctls) | set(after.sysctls)) if before.sysctls.get(k) != after.sysctls.get(k)]
    out += [f"new link {name}" for name in sorted(after.links - before.links)]
    out += [f"new mount {m}" for m in sorted(after.mounts - before.mounts)]
    out += [f"new file {f}" for f in sorted(after.files - before.files)]
    out += [f"containerd process {pid} left" for pid in sorted(after.processes - before.processes)]
    return out


def dockerd_command(data_root: Path, exec_root: Path, socket: Path, pidfile: Path, config: Path) -> list[str]:
    """dockerd with every path of its own under the bench's directory (no /var/lib/docker, no /run/docker.sock,
    no /etc/docker/daemon.json)."""
    return ["dockerd", "--data-root", str(data_root), "--exec-root", str(exec_root), "--pidfile", str(pidfile),
            "-H", f"unix://{socket}", "--config-file", str(config), "--group", "root"]


# ---------------------------------------------------------------- doing


def _output(*argv: str) -> str:
    found = shutil.which(argv[0])
    if not found:
        return ""
    return subprocess.run([found, *argv[1:]], capture_output=True, text=True, check=False).stdout


def _read_sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", name).read_text().strip()
    except OSError:
        return None


def containerd_pids(marker: str | None = None) -> set[int]:
    """containerd and shim processes (of dockerd's: their command line names `marker`, its exec-root)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        first = cmd.split(" ", 1)[0].rsplit("/", 1)[-1]
        if first.startswith("containerd") and (marker is None or marker in cmd):
            pids.add(int(entry))
    return pids


def snapshot(marker: str) -> HostState:
    links = {line.split(":", 2)[1].strip().split("@")[0] for line in _output("ip", "-o", "link").splitlines()
             if line.count(":") >= 2}
    mounts = {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}
    return HostState(
        iptables={f: without_timestamps(_output(f"{cmd}-save")) for f, cmd in IPTABLES_FAMILIES.items()},
        nft_tables=tables_from_listing(_output("nft", "list", "tables")),
        nft_ruleset=_output("nft", "list", "ruleset"),
        sysctls={name: value for name in SYSCTLS if (value := _read_sysctl(name)) is not None},
        links=links, mounts=mounts, files={f for f in DOCKER_FILES if os.path.exists(f)},
        processes=containerd_pids(marker),
    )


def docker_mounts(before: set[str], after: set[str], base: str) -> list[str]:
    """Mounts dockerd made and left (under the bench's directory, or a docker path), deepest first; never a
    mount of anyone else's."""
    def dockers(mount: str) -> bool:
        return mount.startswith(base.rstrip("/") + "/") or "/docker" in mount

    return sorted((m for m in after - before if dockers(m)), key=len, reverse=True)


def restore(before: HostState, saved_iptables: dict[str, str], marker: str, network_ids: set[str]) -> None:
    """Undo what dockerd left: its processes, mounts, links, iptables-nft tables/rules, sysctls and files.
    `marker` is the bench's dockerd directory: processes and mounts are dockerd's when they name it."""
    for pid in containerd_pids(marker) - before.processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    after = snapshot(marker)
    for mount in docker_mounts(before.mounts, after.mounts, marker):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    for name in docker_links(before.links, after.links, network_ids):
        subprocess.run(["ip", "link", "delete", name], capture_output=True, check=False)
    for table in iptables_tables_to_delete(before.nft_tables, after.nft_tables):
        subprocess.run(["nft", "delete", "table", *table.split()], capture_output=True, check=False)
    for family in families_to_restore(before, after):
        subprocess.run([f"{IPTABLES_FAMILIES[family]}-restore"], input=saved_iptables[family], text=True,
                       capture_output=True, check=False)
    for name, value in before.sysctls.items():
        if _read_sysctl(name) != value:
            Path("/proc/sys", name).write_text(value)
    for path in after.files - before.files:
        with contextlib.suppress(OSError):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)


@contextlib.contextmanager
def integration_lock() -> Iterator[None]:
    """The lock the integration tests hold: dockerd may run only while nobody else's tests do."""
    with open(LOCK_PATH, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {LOCK_PATH} (integration tests running)", file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class Dockerd:
    """A running dockerd of the bench's: its socket, its pid and the environment that points the CLI at it."""

    socket: Path
    pid: int
    env: dict[str, str]


def docker_cli() -> str:
    """Debian's docker.io CLI (20.10, as the daemon) when installed, else whichever `docker` is on PATH."""
    return "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else (shutil.which("docker") or "docker")


def _wait_answering(cli: str, env: dict[str, str], proc: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dockerd exited {proc.returncode}: {log.read_text()[-2000:]}")
        if subprocess.run([cli, "version"], env=env, capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"dockerd did not answer in {seconds:.0f} s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running_dockerd(base: Path, report: list[str]) -> Iterator[Dockerd]:
    """Hold the integration lock, start dockerd under `base`, yield it; stop it, restore the host, verify it
    (`report` gets one line per thing still different, or "host restored"), release the lock."""
    if not shutil.which("dockerd"):
        raise RuntimeError("dockerd is not installed (make bench-peers installs Debian's docker.io)")
    base.mkdir(parents=True, exist_ok=True)
    exec_root = base / "exec"  # short: containerd's socket path must fit in a sun_path
    marker = str(base)
    with integration_lock():
        locked_at = time.monotonic()
        if _output("pgrep", "-x", "dockerd").split():
            raise RuntimeError("a dockerd is already running: stop it first (bench-peers starts its own)")
        if os.path.exists(SYSTEM_CONTAINERD):
            raise RuntimeError(f"{SYSTEM_CONTAINERD} exists: dockerd would use that containerd, not one of its own")
        before = snapshot(marker)
        saved = {f: _output(f"{cmd}-save") for f, cmd in IPTABLES_FAMILIES.items()}
        config = base / "daemon.json"
        config.write_text(json.dumps({}))
        socket = base / "docker.sock"
        log = base / "dockerd.log"
        cli = docker_cli()
        env = dict(os.environ, DOCKER_HOST=f"unix://{socket}", DOCKER_CONFIG=str(base / "cli-config"),
                   DOCKER_BUILDKIT="0")
        with open(log, "ab") as out:
            proc = subprocess.Popen(dockerd_command(base / "data", exec_root, socket, base / "dockerd.pid", config),
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        network_ids: set[str] = set()
        try:
            _wait_answering(cli, env, proc, log)
            yield Dockerd(socket, proc.pid, env)
        finally:
            network_ids = set(subprocess.run([cli, "network", "ls", "-q", "--no-trunc"], env=env, capture_output=True,
                                             text=True, check=False).stdout.split())
            _stop(proc)
            restore(before, saved, marker, network_ids)
            left = differences(before, snapshot(marker))
            report.append(f"dockerd period of {time.monotonic() - locked_at:.0f} s under the lock; host after it: "
                          + ("as before (iptables, nft, sysctls, links, mounts, processes, files)" if not left
                             else "; ".join(left)))
            print(report[-1], file=sys.stderr, flush=True)
