"""CVE-2019-5736, the host interpreter behind /proc/self/exe: no container process may ever run (or hold) the host's
Python, through `run` or `exec`, whichever way the command names /proc/self/exe.

The attack image (built with `pyctr build` from busybox) holds a spy at the host interpreter's dynamic loader
path (tests/fixtures/exe_spy.c): were the host's Python ever started in the container, the kernel would load the
spy as its loader, in a process whose /proc/self/exe is the host binary, and it would print that binary's
device and inode. The image also has /bin/sh -> /proc/self/exe and a `#!/proc/self/exe` script. pyctr execs
every command through a sealed memfd copy of its exec shim (runtime/execshim.py): /proc/self/exe then names the
shim, which refuses to run as a command; the spy never speaks, and the host binary is unchanged.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyctr.runtime import execshim

REPO = Path(__file__).resolve().parents[2]
HOST_PYTHON = Path(os.path.realpath(REPO / ".venv" / "bin" / "python"))  # what runs pyctr's init and joiner
SPY_SOURCE = REPO / "tests" / "fixtures" / "exe_spy.c"
ATTACKS = (("/proc/self/exe",), ("sh",), ("/selfexe.sh",))  # directly, through a symlink, as a #! interpreter
REFUSAL = "pyctr-exec-shim: this is pyctr's exec shim"
WATCHER = """
end=$(( $(date +%s) + 120 ))
while [ ! -e /tmp/stop ] && [ "$(date +%s)" -lt "$end" ]; do
  for exe in /proc/[0-9]*/exe; do
    stat -L -c 'ID %d %i' "$exe" 2>/dev/null
    ( : >> "$exe" ) 2>/dev/null && echo "WROTE $exe"
  done
done | sort -u
echo WATCHED
"""


def host_identity() -> str:
    st = os.stat(HOST_PYTHON)
    return f"{st.st_dev} {st.st_ino}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def elf_interpreter(path: Path) -> str:
    """The PT_INTERP of a 64-bit little-endian ELF: the loader the kernel starts with it, found in the
    container's root when the binary is exec'd there."""
    data = path.read_bytes()
    phoff, phentsize, phnum = int.from_bytes(data[32:40], "little"), data[54] | data[55] << 8, \
        data[56] | data[57] << 8
    for i in range(phnum):
        entry = data[phoff + i * phentsize:phoff + (i + 1) * phentsize]
        if int.from_bytes(entry[0:4], "little") == 3:  # PT_INTERP
            offset, size = int.from_bytes(entry[8:16], "little"), int.from_bytes(entry[32:40], "little")
            return data[offset:offset + size].rstrip(b"\0").decode()
    raise AssertionError(f"{path} has no PT_INTERP: the spy cannot stand in for its loader")


@pytest.fixture(scope="module")
def attack_image(pyctr_env, tmp_path_factory) -> Iterator[str]:
    """busybox + the spy at the host interpreter's loader path + /bin/sh -> /proc/self/exe + a #! script."""
    from tests.integration.conftest import PyctrRunner

    pyctr = PyctrRunner(pyctr_env)
    context = tmp_path_factory.mktemp("exe-attack")
    subprocess.run(["gcc", "-static", "-nostdlib", "-ffreestanding", "-fno-builtin", "-fno-stack-protector",
                    "-fno-pie", "-no-pie", "-Os", "-o", str(context / "spy"), str(SPY_SOURCE)], check=True)
    (context / "selfexe.sh").write_text("#!/proc/self/exe\necho the script body ran\n")
    loader = elf_interpreter(HOST_PYTHON)
    (context / "Dockerfile").write_text(
        "FROM busybox\n"
        "COPY selfexe.sh /selfexe.sh\n"
        'RUN ["/bin/busybox", "sh", "-c", "chmod 755 /selfexe.sh && ln -sf /proc/self/exe /bin/sh"]\n'
        f"COPY spy {loader}\n")
    tag = f"pyctr-exe-attack-{uuid.uuid4().hex[:8]}"
    pyctr("build", "-q", "--network", "none", "-t", tag, str(context), check=True, timeout=240)
    yield tag
    pyctr("rmi", "-f", tag, timeout=60)


@pytest.fixture(scope="module")
def host_python_digest() -> Iterator[str]:
    """The host interpreter's sha256 before the module's attacks; checked unchanged after them."""
    before = sha256(HOST_PYTHON)
    yield before
    assert sha256(HOST_PYTHON) == before, "the host interpreter was modified"


@pytest.fixture
def running(pyctr, attack_image) -> Iterator[str]:
    name = f"pyctr-exe-{uuid.uuid4().hex[:10]}"
    started = pyctr("run", "-d", "--network", "none", "--name", name, attack_image, "sleep", "300", timeout=60)
    assert started.returncode == 0, started.stderr
    yield name
    pyctr("rm", "-f", name, timeout=60)


def assert_shim_refused(result: subprocess.CompletedProcess, digest: str) -> None:
    """/proc/self/exe named the shim (it refused), never the host interpreter (the spy stayed silent)."""
    assert host_identity() not in result.stdout + result.stderr, f"the host interpreter ran: {result.stdout}"
    assert "SPY" not in result.stdout, f"the image's loader ran as the host interpreter's: {result.stdout}"
    assert REFUSAL in result.stderr, (result.returncode, result.stdout, result.stderr)
    assert result.returncode == 126, (result.returncode, result.stderr)
    assert sha256(HOST_PYTHON) == digest


@pytest.mark.parametrize("command", ATTACKS, ids=("proc-self-exe", "symlink", "shebang"))
def test_run_never_starts_the_host_interpreter(pyctr, attack_image, host_python_digest, command):
    result = pyctr("run", "--rm", "--network", "none", attack_image, *command, timeout=60)
    assert_shim_refused(result, host_python_digest)


@pytest.mark.parametrize("command", ATTACKS, ids=("proc-self-exe", "symlink", "shebang"))
def test_exec_never_starts_the_host_interpreter(pyctr, running, host_python_digest, command):
    result = pyctr("exec", running, *command, timeout=60)
    assert_shim_refused(result, host_python_digest)


def test_a_watcher_never_sees_or_writes_the_host_interpreter(pyctr, attack_image, host_python_digest):
    """While execs of every attack run, a process in the container stats and tries to open for writing (append,
    nothing written) every /proc/<pid>/exe it sees: the joiner's, the shim's, the commands'. None may be the host
    interpreter, and none may open for writing."""
    name = f"pyctr-exe-{uuid.uuid4().hex[:10]}"
    started = pyctr("run", "-d", "--network", "none", "--name", name, attack_image,
                    "/bin/busybox", "sh", "-c", WATCHER, timeout=60)
    assert started.returncode == 0, started.stderr
    try:
        deadline, results = time.monotonic() + 6, []
        while time.monotonic() < deadline:
            for command in ATTACKS:
                results.append(pyctr("exec", name, *command, timeout=60))
        pyctr("exec", name, "touch", "/tmp/stop", check=True, timeout=60)
        assert pyctr("wait", name, timeout=60).stdout.strip() == "0"
        report = pyctr("logs", name, timeout=30).stdout
    finally:
        pyctr("rm", "-f", name, timeout=60)
    assert "WATCHED" in report and len(results) >= 6, report
    assert f"ID {host_identity()}" not in report, f"the host interpreter was visible in the container: {report}"
    assert "WROTE" not in report, f"a container process opened an exe for writing: {report}"
    for result in results:
        assert_shim_refused(result, host_python_digest)


def test_a_container_sees_its_own_binary_as_its_exe(pyctr, attack_image):
    """After the shim, the command's /proc/self/exe is the image's binary (the shim is gone from it)."""
    result = pyctr("run", "--rm", "--network", "none", attack_image, "/bin/busybox", "sh", "-c",
                   "stat -L -c '%d %i' /proc/self/exe /bin/busybox; readlink /proc/self/exe", timeout=60)
    assert result.returncode == 0, result.stderr
    own, busybox, link = result.stdout.splitlines()
    assert own == busybox and link == "/bin/busybox", result.stdout


def test_the_sealed_shim_cannot_be_written(tmp_path):
    """The memfd every container process starts from refuses writes, resizing and new seals, even reopened
    read-write through /proc (as a container could reach it through /proc/<pid>/exe)."""
    fd = execshim.load_sealed_copy(execshim.SHIM_PATH)
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        wanted = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
        assert seals & wanted == wanted
        reopened = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)
        try:
            with pytest.raises(PermissionError):
                os.pwrite(reopened, b"\0", 0)
            with pytest.raises(PermissionError):
                os.ftruncate(reopened, 0)
        finally:
            os.close(reopened)
        assert os.pread(fd, 4, 0) == b"\x7fELF"
    finally:
        os.close(fd)


def test_the_shim_runs_its_command_and_refuses_itself(tmp_path):
    """The shim on the host, from its memfd: it execs its command with the report pipe closed; /proc/self/exe
    and a #!/proc/self/exe script name the shim, which refuses; a missing command is reported as ENOENT."""
    script = tmp_path / "selfexe.sh"
    script.write_text("#!/proc/self/exe\n")
    script.chmod(0o755)
    true = shutil.which("true")
    cases = {
        (true, "true"): (0, b""),
        ("/proc/self/exe", "x"): (126, b""),
        (str(script), "selfexe"): (126, b""),
        (str(tmp_path / "missing"), "m"): (127, b'E{"errno":2}'),
    }
    for (path, *argv), (code, report) in cases.items():
        got_code, got_report, stderr = run_shim(path, argv)
        assert (got_code, got_report) == (code, report), (path, got_code, got_report, stderr)
        assert (REFUSAL.encode() in stderr) == (code == 126), stderr


def run_shim(path: str, argv: list[str]) -> tuple[int, bytes, bytes]:
    """Exec the shim from its sealed memfd in a child, as the init does (report pipe at fd 3)."""
    loaded = execshim.load_sealed_copy(execshim.SHIM_PATH)
    shim = fcntl.fcntl(loaded, fcntl.F_DUPFD_CLOEXEC, 10)  # above the fds the child sets up
    os.close(loaded)
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.dup2(err_w, 2)
            os.dup2(report_w, 3, inheritable=False)
            execshim.exec_command(shim, 3, path, argv, {"PATH": "/usr/bin:/bin"})
        finally:
            os._exit(99)
    os.close(shim)
    os.close(report_w)
    os.close(err_w)
    report, stderr = os.read(report_r, 4096), os.read(err_r, 4096)
    os.close(report_r)
    os.close(err_r)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), report, stderr


def test_arguments_too_long_are_the_commands_error_as_before(pyctr, tmp_path):
    """E2BIG comes from the shim's own exec (it gets the command's argv and environment): still the command's
    126 with the init's message, not an internal error."""
    env_file = tmp_path / "big.env"
    env_file.write_text("BIG=" + "x" * 200_000 + "\n")  # over MAX_ARG_STRLEN (128 KiB)
    result = pyctr("run", "--rm", "--network", "none", "--env-file", env_file, "busybox", "true", timeout=60)
    assert result.returncode == 126, (result.returncode, result.stderr)
    assert 'exec: "true": argument list too long' in result.stderr, result.stderr


def test_a_profile_without_execveat_fails_clearly_and_never_falls_back_to_a_path(pyctr, tmp_path):
    """The shim starts only by execveat of its fd: a seccomp profile that denies it (here with ENOSYS, on which
    glibc's fexecve would retry through /proc/self/fd/N, a path a container can forge) stops the start with a
    one-line error instead."""
    import json

    from pyctr.runtime.seccomp import default_profile

    profile = default_profile()
    for rule in profile["syscalls"]:
        rule["names"] = [name for name in rule["names"] if name != "execveat"]
    profile["defaultErrnoRet"] = 38  # ENOSYS
    path = tmp_path / "no-execveat.json"
    path.write_text(json.dumps(profile))
    result = pyctr("run", "--rm", "--network", "none", "--security-opt", f"seccomp={path}", "busybox", "true",
                   timeout=60)
    assert result.returncode == 125, (result.returncode, result.stderr)
    assert "cannot start pyctr's exec shim" in result.stderr and "execveat" in result.stderr, result.stderr
    # docker-cli's words for a runtime failure of `run`: "docker: Error response from daemon: ...", no help line
    assert result.stderr.strip().splitlines()[-1].startswith("pyctr: Error response from daemon: cannot start")
