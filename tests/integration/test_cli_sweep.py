"""A sweep of bad input over every CLI command: each failure is docker-cli's few lines, no traceback, its exit code.

Users meet pyctr's errors first through typos: an unknown flag, a missing argument, `-m 12q`, an image name in
capitals, a container that does not exist. Each must be answered by a first line naming the problem (then only
docker-cli's `See 'docker run --help'.` and, for argument counts, its usage block) and Docker 20.10's exit code
(docker-cli's source: a bad flag is cli.StatusError 125 in every command (cli/cobra.go FlagErrorFunc); run and
create give 125 for their own failures, 126/127 when the command cannot start; every other error of every
command exits 1 (cmd/docker/docker.go), argument counts (cli/required.go) and unknown commands included), and
nothing may be done first (no pull, no container left behind).

All invocations fail before doing work, so they run concurrently in one module fixture and the parametrized tests
only check their results: the sweep stays fast although it starts ~150 CLI processes.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyctr.cli import COMMANDS
from tests.integration.conftest import PyctrRunner

# Lines Docker itself prints on stderr before the error (progress, not failure).
INFORMATIONAL_PREFIXES = ("Unable to find image ", "Using default tag: ")
WORKERS = 6
NO_SUCH_FLAG = "--no-such-flag-xyz"

# Commands with no required argument: an unknown flag is their only bad invocation here.
NO_REQUIRED_ARGS = {"ps", "images", "image", "system", "info", "doctor", "version", "stats", "load", "login",
                    "logout", "build", "volume", "network", "container", "events"}


@dataclass(frozen=True)
class Case:
    """One bad invocation: argv after `pyctr`, the exit code Docker gives, and a phrase the error must contain."""

    id: str
    args: tuple[str, ...]
    code: int = 125
    says: str | None = None
    stdin: str | None = None
    then: str = "See 'pyctr "  # how docker-cli's second line starts, if there is one


def _flag_cases() -> list[Case]:
    """For every command in the CLI table: an unknown flag, and a missing argument where one is required."""
    cases = []
    for name in COMMANDS:
        cases.append(Case(f"{name}-unknown-flag", (name, NO_SUCH_FLAG), says=NO_SUCH_FLAG))
        if name not in NO_REQUIRED_ARGS:
            cases.append(Case(f"{name}-missing-argument", (name,), code=1, says=f'"pyctr {name}" requires'))
    return cases


BUSYBOX = "busybox"  # resolves to the fixture registry through the config's registry mirror
# `run` cases that are not about networking use no bridge: the test bridge is shared with other roots.
RUN = ("run", "--rm", "--network", "none")

VALUE_CASES = [
    # run/create: flag values Docker's CLI refuses before contacting the daemon (so: before any pull).
    Case("run-memory-unit", (*RUN, "-m", "12q", "nosuch-image-for-sweep"), says="12q"),
    Case("run-memory-negative", (*RUN, "-m", "-5", BUSYBOX, "true"), says="-5"),
    Case("run-memory-swap-below-memory", (*RUN, "-m", "64m", "--memory-swap", "32m", BUSYBOX, "true"),
         says="swap"),
    Case("run-publish-word", (*RUN, "-p", "abc", BUSYBOX, "true"), says="abc"),
    Case("run-publish-port-range", (*RUN, "-p", "99999:80", BUSYBOX, "true"), says="99999"),
    Case("run-publish-proto", (*RUN, "-p", "80/xyz", BUSYBOX, "true"), says="xyz"),
    Case("run-cpus-negative", (*RUN, "--cpus", "-1", "nosuch-image-for-sweep"), says="Range of CPUs"),
    Case("run-cpus-word", (*RUN, "--cpus", "many", BUSYBOX, "true"), says="many"),
    Case("run-cpu-shares-word", (*RUN, "-c", "x", BUSYBOX, "true"), says="x"),
    Case("run-pids-limit-word", (*RUN, "--pids-limit", "lots", BUSYBOX, "true"), says="lots"),
    Case("run-stop-timeout-word", (*RUN, "--stop-timeout", "x", BUSYBOX, "true"), says="x"),
    Case("run-image-upper", (*RUN, "UPPER"), says="invalid reference format"),
    Case("run-image-bad-digest", (*RUN, "busybox@sha256:abc"), says="invalid reference format"),
    Case("run-image-empty-tag", (*RUN, "busybox:"), says="invalid reference format"),
    Case("run-cap-unknown", (*RUN, "--cap-add", "NO_SUCH_CAP", BUSYBOX, "true"), says="NO_SUCH_CAP"),
    Case("run-security-opt-unknown", (*RUN, "--security-opt", "bogus", BUSYBOX, "true"), says="bogus"),
    Case("run-volume-relative-target", (*RUN, "-v", "/tmp:relative", BUSYBOX, "true"), says="relative"),
    Case("run-volume-empty", (*RUN, "-v", "", BUSYBOX, "true")),
    Case("run-workdir-relative", (*RUN, "-w", "relative", BUSYBOX, "true"), says="relative"),
    Case("run-env-file-missing", (*RUN, "--env-file", "/nonexistent/env", BUSYBOX, "true"),
         says="/nonexistent/env"),
    Case("run-name-invalid", (*RUN, "--name", "bad name!", BUSYBOX, "true"), says="name"),
    Case("run-network-unknown", ("run", "--rm", "--network", "nosuchnet", BUSYBOX, "true"), says="nosuchnet"),
    Case("run-add-host-malformed", (*RUN, "--add-host", "nocolon", BUSYBOX, "true"), says="nocolon"),
    Case("run-stop-signal-unknown", (*RUN, "--stop-signal", "SIGBOGUS", BUSYBOX, "true"), says="BOGUS"),
    # docker/cli maps only "not found" (127) and "permission denied" (126) runtime errors; the rest is 125.
    Case("run-user-unknown", (*RUN, "-u", "nosuchuser", BUSYBOX, "true"), says="nosuchuser"),
    Case("run-command-not-found", (*RUN, BUSYBOX, "nosuchcmd"), code=127, says="nosuchcmd"),
    Case("run-command-is-directory", (*RUN, BUSYBOX, "/etc"), code=126, says="/etc"),
    Case("run-command-not-executable", (*RUN, BUSYBOX, "/etc/passwd"), code=126, says="/etc/passwd"),
    Case("run-tty-without-terminal", (*RUN, "-it", BUSYBOX, "true"), code=1, says="not a TTY"),
    Case("run-volume-empty-source", (*RUN, "-v", ":/x", BUSYBOX, "true"), says=":/x"),
    Case("run-dns-not-an-ip", (*RUN, "--dns", "999.1.1.1", BUSYBOX, "true"), says="999.1.1.1"),
    Case("run-label-empty-name", (*RUN, "-l", "=x", BUSYBOX, "true"), says="=x"),
    Case("create-memory-unit", ("create", "-m", "12q", BUSYBOX), says="12q"),
    # containers that do not exist
    *[Case(f"{cmd}-unknown-container", (cmd, "nosuch"), code=1, says="nosuch")
      for cmd in ("stop", "restart", "kill", "rm", "logs", "wait", "port", "top")],
    Case("start-unknown-container", ("start", "nosuch"), code=1, says="nosuch",
         then="Error: failed to start containers: nosuch"),
    Case("inspect-unknown", ("inspect", "nosuch"), code=1, says="nosuch"),
    Case("exec-unknown-container", ("exec", "nosuch", "true"), code=1, says="nosuch"),
    Case("stats-format-unclosed", ("stats", "--no-stream", "--format", "{{.Name"), code=1, says="template"),
    Case("stats-unknown-container", ("stats", "--no-stream", "nosuch"), code=1, says="nosuch"),
    Case("cp-unknown-container", ("cp", "nosuch:/etc/passwd", "/tmp/pyctr-sweep-never"), code=1, says="nosuch"),
    Case("cp-no-container-side", ("cp", "/tmp/a", "/tmp/b"), code=1, says="container"),
    Case("kill-bad-signal", ("kill", "-s", "SIGBOGUS", "nosuch"), code=1, says="BOGUS"),
    Case("stop-time-word", ("stop", "-t", "soon", "nosuch"), says="soon"),  # an int flag: pflag refuses it
    Case("logs-tail-word", ("logs", "--tail", "some", "nosuch"), code=1),
    # formats and filters
    Case("ps-format-unclosed", ("ps", "-a", "--format", "{{.ID"), code=1, says="template"),
    Case("ps-filter-unknown", ("ps", "--filter", "nosuchkey=1"), code=1, says="nosuchkey"),
    Case("ps-filter-malformed", ("ps", "--filter", "novalue"), code=1, says="novalue"),
    Case("images-format-unclosed", ("images", "--format", "{{.Repository"), code=1, says="template"),
    Case("images-filter-unknown", ("images", "--filter", "nosuchkey=1"), code=1, says="nosuchkey"),
    Case("inspect-format-unclosed", ("inspect", "-f", "{{.Id", BUSYBOX), code=64, says="template"),
    Case("inspect-type-unknown", ("inspect", "--type", "volume", BUSYBOX), says="volume"),  # no volumes: bad flag
    # images
    Case("pull-upper", ("pull", "UPPER"), code=1, says="invalid reference format"),
    Case("pull-64-hex", ("pull", "a" * 64), code=1, says="64-byte hexadecimal"),
    Case("pull-bad-platform", ("pull", "--platform", "a/b/c/d", BUSYBOX), code=1, says="a/b/c/d"),
    Case("push-upper", ("push", "UPPER"), code=1, says="invalid reference format"),
    Case("tag-unknown-source", ("tag", "nosuch", "target"), code=1, says="nosuch"),
    Case("tag-bad-target", ("tag", BUSYBOX, "UPPER:x"), code=1, says="invalid reference format"),
    Case("rmi-unknown", ("rmi", "nosuch"), code=1, says="nosuch"),
    Case("history-unknown", ("history", "nosuch"), code=1, says="nosuch"),
    Case("save-unknown", ("save", "-o", "/tmp/pyctr-sweep-never.tar", "nosuch"), code=1, says="nosuch"),
    Case("save-to-missing-dir", ("save", "-o", "/nonexistent/dir/out.tar", BUSYBOX), code=1, says="/nonexistent"),
    Case("load-garbage-stdin", ("load",), code=1, stdin="this is not a tar archive\n"),
    Case("load-missing-file", ("load", "-i", "/nonexistent/image.tar"), code=1, says="/nonexistent/image.tar"),
    Case("build-missing-context", ("build", "/nonexistent/context"), code=1, says="/nonexistent/context"),
    Case("build-missing-dockerfile", ("build", "-f", "/nonexistent/Dockerfile", "/tmp"), code=1, says="Dockerfile"),
    Case("build-bad-tag", ("build", "-t", "UPPER", "/tmp"), code=1, says="invalid reference format"),
    # unknown commands and subcommands
    Case("unknown-command", ("nosuchcommand",), code=1, says="nosuchcommand"),
    Case("image-unknown-subcommand", ("image", "nosuchsub"), code=1, says="nosuchsub"),
    Case("system-unknown-subcommand", ("system", "nosuchsub"), code=1, says="nosuchsub"),
    Case("network-unknown-subcommand", ("network", "nosuchsub"), code=1, says="nosuchsub"),
    Case("network-rm-missing", ("network", "rm", "nosuchnet"), code=1, says="Error: No such network: nosuchnet"),
    Case("network-create-missing-name", ("network", "create"), code=1, says='"pyctr network create" requires'),
    Case("network-create-bad-driver", ("network", "create", "-d", "foo", "x"), code=1, says='plugin "foo" not found'),
    Case("network-create-bad-subnet", ("network", "create", "--subnet", "nonsense", "x"), code=1,
         says="invalid CIDR address: nonsense"),
]

ALL_CASES = _flag_cases() + VALUE_CASES

PARAMS = [pytest.param(c, id=c.id) for c in ALL_CASES]


@pytest.fixture(scope="module")
def sweep_runner(pyctr_env, tmp_path_factory) -> PyctrRunner:
    """A root of its own with busybox pulled, so cases naming it reach flag validation, not a pull."""
    root = tmp_path_factory.mktemp("sweep") / "root"
    root.mkdir(mode=0o700)
    runner = PyctrRunner({**pyctr_env, "PYCTR_ROOT": str(root)})
    runner("pull", "-q", BUSYBOX, check=True, timeout=120)
    return runner


@pytest.fixture(scope="module")
def sweep_results(sweep_runner) -> dict[str, subprocess.CompletedProcess]:
    """Run every case concurrently once; tests look their result up by id."""
    def run(case: Case) -> subprocess.CompletedProcess:
        return sweep_runner(*case.args, input=case.stdin, timeout=60)

    with ThreadPoolExecutor(WORKERS) as pool:
        results = dict(zip([c.id for c in ALL_CASES], pool.map(run, ALL_CASES), strict=True))
    return results


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(INFORMATIONAL_PREFIXES)]


def assert_docker_failure(case: Case, proc: subprocess.CompletedProcess) -> None:
    where = f"pyctr {' '.join(case.args)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, where
    assert "internal error" not in proc.stderr, f"an unhandled exception reached the user: {where}"
    lines = error_lines(proc.stderr)
    assert lines, f"expected an error: {where}"
    assert proc.returncode == case.code, f"exit {proc.returncode}, expected {case.code}: {where}"
    if case.says is not None:
        assert case.says.lower() in lines[0].lower(), f"the error should mention {case.says!r}: {where}"
    if len(lines) > 1:  # docker-cli's own second line; an argument count's usage block may follow it
        assert lines[1].startswith(case.then), f"the second line is not docker-cli's: {where}"
        assert len(lines) == 2 or "requires" in lines[0], f"more lines than docker-cli prints: {where}"


def test_every_command_is_swept() -> None:
    """A command added to the CLI table without a case here would escape the sweep."""
    swept = {c.args[0] for c in ALL_CASES}
    assert set(COMMANDS) <= swept, sorted(set(COMMANDS) - swept)


@pytest.mark.parametrize("case", PARAMS)
def test_bad_invocation_fails_as_docker_cli(case: Case, sweep_results) -> None:
    assert_docker_failure(case, sweep_results[case.id])


def test_nothing_was_left_behind(sweep_results, sweep_runner) -> None:
    """Every case failed before doing work: no container was created, and only busybox is stored."""
    assert not sweep_runner("ps", "-aq", check=True).stdout.strip()
    images = sweep_runner("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout.split()
    assert images == ["busybox:latest"], images
    assert not Path("/tmp/pyctr-sweep-never").exists() and not Path("/tmp/pyctr-sweep-never.tar").exists()


# ------------------------------------------------------------------ bad --root

@pytest.fixture
def readonly_dir(tmp_path) -> Path:
    """A read-only tmpfs (root ignores file modes, not a read-only mount): unmounted after the test."""
    path = tmp_path / "ro"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "pyctr-sweep", str(path)], check=True)
    yield path
    subprocess.run(["umount", str(path)], check=True)


ROOT_COMMANDS = [("ps", "-a"), ("images",), ("pull", BUSYBOX), ("run", "--rm", BUSYBOX, "true"),
                 ("create", BUSYBOX), ("rm", "nosuch"), ("image", "prune", "-f"), ("system", "df")]


def _root_cases(bad_root: Path) -> list[Case]:
    """Listing commands may show nothing for an unusable root; commands that must write fail in one line."""
    return [Case(f"root-{'-'.join(args)}", ("--root", str(bad_root), *args), code=_root_failure_code(args[0]))
            for args in ROOT_COMMANDS]


def _root_failure_code(command: str) -> int:
    """Docker with an unusable data root: run/create 125, every other command 1 (its daemon cannot serve)."""
    return 125 if command in ("run", "create") else 1


def _check_bad_root(sweep_runner: PyctrRunner, bad_root: Path) -> None:
    for case in _root_cases(bad_root):
        proc = sweep_runner(*case.args, timeout=60)
        if proc.returncode == 0:
            assert case.args[2] in ("ps", "images", "system"), f"{case.args} succeeded on root {bad_root}"
            assert not proc.stderr.strip(), proc.stderr
            continue
        assert_docker_failure(case, proc)


@pytest.mark.parametrize("kind", ["file", "under-file", "read-only-mount"])
def test_unusable_root_fails_in_one_line(kind: str, sweep_runner, tmp_path, request) -> None:
    if kind == "file":
        bad_root = tmp_path / "a-file"
        bad_root.write_text("not a directory\n")
    elif kind == "under-file":
        (tmp_path / "a-file").write_text("not a directory\n")
        bad_root = tmp_path / "a-file" / "root"
    else:
        bad_root = request.getfixturevalue("readonly_dir") / "root"
    _check_bad_root(sweep_runner, bad_root)


def test_new_root_is_private(sweep_runner, tmp_path) -> None:
    """A root pyctr creates is 0700 (CVE-2021-41091: a traversable data dir exposed container files to users)."""
    root = tmp_path / "new" / "root"
    sweep_runner("--root", str(root), "pull", "-q", BUSYBOX, check=True, timeout=120)
    mode = os.stat(root).st_mode & 0o777
    assert mode == 0o700, oct(mode)
