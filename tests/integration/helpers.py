"""Helpers the integration test files share (one home, so no test file imports another).

Grouped by what they serve: roots and runners of their own, what a removed container may leave behind, the
warm server's processes, and hostile archives.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from pyctr import client
from tests.integration.conftest import PYCTR_BIN, REPO_ROOT, PyctrRunner, _env_for, make_root, write_config

PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")


# ------------------------------------------------------------------ roots and runners of their own

def leftovers(root) -> list[str]:
    """What a removed container can leave behind: its directory, a pyctr cgroup, a mount, a process."""
    found = [f"dir {p.name}" for p in (root / "containers").iterdir()] if (root / "containers").exists() else []
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f if str(root) in line.split()[4]]
    return found


def proc_gone(pid: int, timeout: float = 5.0) -> bool:
    """True once `pid` no longer runs (gone, or a zombie waiting for its parent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def lifecycle_runner(pyctr_config, tmp_path_factory, label: str):
    """A runner on a root of its own with busybox pulled from the session registry; checks nothing is left after."""
    if not PYCTR_BIN.exists():
        pytest.fail(f"{PYCTR_BIN} is missing: run `make install`", pytrace=False)
    runner = PyctrRunner(_env_for(make_root(tmp_path_factory.mktemp(label) / "root"), pyctr_config))
    runner("pull", "busybox", check=True, timeout=120)
    yield runner
    ids = runner("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        runner("rm", "-f", *ids, timeout=120)
    assert leftovers(runner.root) == []


def removed_after(runner):
    """The names a test appends are removed (forcefully) after it."""
    names: list[str] = []
    yield names
    if names:
        runner("rm", "-f", *names, timeout=60)


def own_runner(registry, base: Path, bridge: str, subnet: str) -> PyctrRunner:
    """A runner on a root of its own, with its own bridge and subnet (a bridge belongs to one root)."""
    base.mkdir(parents=True, exist_ok=True)
    config = write_config(base / "config.toml", registry.url, registry.host, bridge, subnet)
    return PyctrRunner(_env_for(make_root(base / "root"), config))


def config_of(runner: PyctrRunner):
    from pyctr.config import load_config

    return load_config(str(runner.root), runner.env["PYCTR_CONFIG"])


def remaining_problems(runner: PyctrRunner) -> list[str]:
    """What a dry-run check finds now (in-process: no CLI start-up per trial)."""
    from pyctr.image.check import check_store
    from pyctr.runtime.check import check_containers

    config = config_of(runner)
    return [o.line() for o in check_store(config.paths, repair=False) + check_containers(config, repair=False)]


def assert_check_clean(runner: PyctrRunner, context: str) -> str:
    """`pyctr system check` repairs and exits 0, and nothing is left to repair. Returns its report.

    A container's monitor may still be recording its exit (`_cleanup`, run through the warm server) when the
    test's kill returns: that is a teardown under way, not damage, so it is waited for first."""
    root = str(runner.root)
    # the `pyctr _cleanup` client a monitor runs (a running container's monitor names it too: not counted)
    wait_for(lambda: not [p for p in processes_mentioning(root) if "pyctr.client" in p and " _cleanup " in p
                          and "monitor-" not in p], timeout=15, what="the containers' monitors to record their exits")
    first = run_or_explain_hang(runner, ("system", "check"), timeout=60)
    assert first.returncode == 0, f"{context}: system check exited {first.returncode}\n{first.stdout}{first.stderr}"
    assert first.stderr == "", f"{context}: {first.stderr}"
    remaining = remaining_problems(runner)
    assert remaining == [], f"{context}: problems remain after repair:\n{first.stdout}---\n" + "\n".join(remaining)
    if first.stdout:
        print(f"{context}:\n{first.stdout}", end="")  # shown with -s: what the kill left and check repaired
    return first.stdout


def run_or_explain_hang(runner: PyctrRunner, args: tuple[str, ...], timeout: float) -> subprocess.CompletedProcess:
    """Run a command to its end; if it hangs, fail with what the machine looked like while it hung (its
    kernel stack, the flock holders, frozen cgroups, pyctr's processes): a hang on a CI machine must explain
    itself, as it cannot be looked at afterwards."""
    proc = subprocess.Popen([str(PYCTR_BIN), *args], env=runner.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        report = machine_snapshot([proc.pid, *_descendants(proc.pid)])
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"`pyctr {' '.join(args)}` hung for {timeout} s\nstdout: {out}\nstderr: {err}\n"
                             f"{report}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        with contextlib.suppress(OSError):
            kids = [int(c) for c in Path(f"/proc/{todo.pop()}/task").glob("*/children")
                    for c in c.read_text().split()]
            found += kids
            todo += kids
    return found


def _proc_line(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
        cgroup = Path(f"/proc/{pid}/cgroup").read_text().splitlines()[0]
    except OSError:
        return f"{pid}: gone"
    return f"{pid} ppid={stat[1]} state={stat[0]} wchan={wchan} {cgroup} :: {cmd}"


def machine_snapshot(focus: list[int] = ()) -> str:  # type: ignore[assignment]
    """A text picture for a failure message: the focus processes with their kernel stacks, pyctr's processes,
    flock holders, frozen pyctr cgroups, and the warm server's pids."""
    lines = ["-- focus processes"]
    for pid in focus:
        lines.append(_proc_line(pid))
        with contextlib.suppress(OSError):
            lines += ["    " + frame for frame in Path(f"/proc/{pid}/stack").read_text().splitlines()[:12]]
    lines.append("-- pyctr processes")
    for entry in sorted(filter(str.isdigit, os.listdir("/proc")), key=int):
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            if b"pyctr" in cmd or b"busybox" in cmd:
                lines.append(_proc_line(int(entry)))
    lines.append("-- flock holders (/proc/locks)")
    with contextlib.suppress(OSError):
        for row in Path("/proc/locks").read_text().splitlines()[:60]:
            fields = row.split()
            waiting = len(fields) > 1 and fields[1] == "->"  # a blocked waiter: one more column
            pid = fields[5 if waiting else 4] if len(fields) > 5 else None
            lines.append(row + (f"   <- {_proc_line(int(pid))}" if pid and pid.isdigit() else ""))
    lines.append("-- frozen pyctr cgroups")
    for state in Path("/sys/fs/cgroup").glob("freezer/pyctr/*/freezer.state"):
        with contextlib.suppress(OSError):
            if (value := state.read_text().strip()) != "THAWED":
                lines.append(f"{state.parent.name} {value} procs={state.with_name('cgroup.procs').read_text().split()}")
    lines.append(f"-- server pids {server_pids()} socket {os.path.exists(client.socket_path())}")
    return "\n".join(lines)


def mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(root))]


def processes_mentioning(*needles: str) -> list[str]:
    """Processes whose command line contains one of `needles` (monitors, cleanups, CLIs of a root)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            if any(n in cmdline for n in needles):
                found.append(f"{entry}: {cmdline.strip()}")
    return found


def cgroup_dirs(ids: set[str]) -> list[str]:
    """pyctr cgroup directories (any controller) named after one of `ids`."""
    found = []
    for base in Path("/sys/fs/cgroup").iterdir():
        parent = base / "pyctr"
        with contextlib.suppress(OSError):
            found += [str(p) for p in parent.iterdir() if p.name in ids]
    return found


def remove_all(runner: PyctrRunner) -> None:
    ids = runner("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        runner("rm", "-f", *ids, timeout=180)


# ------------------------------------------------------------------ what a container may leave behind

def veths_of(ids: list[str]) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True).stdout
    names = {"veth" + cid[:7] for cid in ids} | {"veth" + cid[7:14] for cid in ids}
    return [line for line in out.splitlines() if line.split(":")[1].strip().split("@")[0] in names]


def ipam_containers(root: Path) -> dict:
    path = root / "network" / "ipam.json"
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    return {name: net.get("containers", {}) for name, net in doc.get("networks", {}).items() if net.get("containers")}


# ------------------------------------------------------------------ the warm server

def server_pids() -> list[int]:
    """This installation's server: the holder of its listening socket whose parent is not one (the spare is)."""
    path = client.socket_path()  # bound as path.<pid>, then renamed: /proc/net/unix shows the bound name
    inodes = {line.split()[6] for line in Path("/proc/net/unix").read_text().splitlines()[1:]
              if line.split()[-1].startswith(path + ".")}
    holders = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = {os.readlink(f"/proc/{entry}/fd/{fd}") for fd in os.listdir(f"/proc/{entry}/fd")}
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if any(f"socket:[{inode}]" in fds for inode in inodes):
            holders[int(entry)] = ppid
    return [pid for pid, ppid in holders.items() if ppid not in holders]


def remove_parent_cgroups(name: str) -> None:
    """pyctr-runtime tests: the parent a cgroupsPath names (/<name>/<id>) is the caller's to remove (runc and
    pyctr-runtime remove the leaf only); empty directories only, in every hierarchy."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        parent = hierarchy / name
        if not parent.is_dir() or parent.is_symlink():
            continue
        for directory in [*sorted((d for d in parent.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)), parent]:
            with contextlib.suppress(OSError):
                directory.rmdir()


def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# ------------------------------------------------------------------ hostile archives

def tar_member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", linkname: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, io.BytesIO(data) if kind == tarfile.REGTYPE else None


def cve_2025_4517_members(outside: Path) -> list[tuple]:
    """The public PoC's shape: 16 symlinks to 247-char dirs, then a 254-char link back up; realpath gives up."""
    comp, steps = "d" * 247, "abcdefghijklmnop"
    members, path = [], ""
    for step in steps:
        members.append(tar_member(os.path.join(path, comp), tarfile.DIRTYPE))
        members.append(tar_member(os.path.join(path, step), tarfile.SYMTYPE, linkname=comp))
        path = os.path.join(path, comp)
    long_link = os.path.join(*steps, "l" * 254)
    members.append(tar_member(long_link, tarfile.SYMTYPE, linkname=os.path.join(*[".."] * len(steps))))
    # Lexically this climbs back to the top of the archive; the kernel climbs from there to `/`.
    escape = long_link + "/.." * (len(steps) + 1) + str(outside)
    members.append(tar_member("escape", tarfile.SYMTYPE, linkname=escape))
    members.append(tar_member("escape/pwned", data=b"written on the host\n"))
    return members


def host_files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def run_under_a_pty(env: dict[str, str], *args: str, timeout: float = 30) -> tuple[int, bytes]:
    """`pyctr ARGS` with a real terminal as its stdin/stdout/stderr, as a user's shell gives it:
    (exit code, everything it showed)."""
    from tests.integration.conftest import PYCTR_BIN

    return program_under_a_pty([str(PYCTR_BIN), *args], env, timeout=timeout)


def program_under_a_pty(argv: list[str], env: dict[str, str], typed: bytes = b"", prompt: bytes = b"# ",
                        timeout: float = 30) -> tuple[int, bytes]:
    """Any program with a real terminal (pyctr, the docker CLI, pyctr-runtime), typing `typed` once `prompt`
    shows: (exit code, everything it showed)."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(argv[0], argv, env)
    shown, sent, deadline = b"", not typed, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sent and prompt in shown:
                os.write(fd, typed)
                sent = True
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                shown += chunk
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown
