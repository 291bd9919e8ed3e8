"""Every command's failures with Docker 20.10's exit code and words, as docker-cli's source prints them.

Recorded from docker/cli v20.10.24 and moby v20.10.27 (no Docker needed here):
- cmd/docker/docker.go: a cli.StatusError exits with its code; any other error is printed as is and exits 1.
  run/create return StatusError 125 (126/127 when the command cannot start); flags are 125 everywhere
  (cli/cobra.go FlagErrorFunc: `unknown flag: --bogus` + `See 'docker run --help'.`); argument counts are plain
  errors (cli/required.go `"docker rm" requires at least 1 argument.`), exit 1; an unknown command too.
- client/errors.go wrapResponseError: ContainerRemove, ContainerLogs, ContainerInspect, CopyFromContainer and
  ImageRemove/ImageInspect word a 404 themselves (`Error: No such container: x`,
  `Error: No such container:path: c:/nope`, as moby's integration/container/copy_test.go expects); every other
  call prints the daemon's text after `Error response from daemon: ` (client/request.go).
- container/rm.go: `rm -f` prints a not-found error but does not fail; container/start.go ends with
  `Error: failed to start containers: x`; inspect/inspector.go: `Error: No such object: x`, exit 1 (64 for a
  template that does not parse); an exec whose process cannot start: the daemon writes the OCI error into the
  attached stream (stdout) and the exec's code is 126.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.integration.helpers import lifecycle_runner

RUNNING = "codes-running"
STOPPED = "codes-stopped"


@dataclass(frozen=True)
class Expect:
    args: tuple[str, ...]
    code: int
    stderr: str | None = None  # exactly (with {stopped} for the stopped container's full id)
    stderr_starts: str | None = None
    stdout_has: str | None = None


NOT_FOUND_BY_CLIENT = "Error: No such container: nosuch\n"
NOT_FOUND_BY_DAEMON = "Error response from daemon: No such container: nosuch\n"

TABLE = {
    # containers that do not exist
    "rm": Expect(("rm", "nosuch"), 1, NOT_FOUND_BY_CLIENT),
    "rm-force": Expect(("rm", "-f", "nosuch"), 0, NOT_FOUND_BY_CLIENT),
    "stop": Expect(("stop", "nosuch"), 1, NOT_FOUND_BY_DAEMON),
    "kill": Expect(("kill", "nosuch"), 1, NOT_FOUND_BY_DAEMON),
    "restart": Expect(("restart", "nosuch"), 1, NOT_FOUND_BY_DAEMON),
    "wait": Expect(("wait", "nosuch"), 1, NOT_FOUND_BY_DAEMON),
    "top": Expect(("top", "nosuch"), 1, NOT_FOUND_BY_DAEMON),
    "exec": Expect(("exec", "nosuch", "true"), 1, NOT_FOUND_BY_DAEMON),
    "start": Expect(("start", "nosuch"), 1, NOT_FOUND_BY_DAEMON + "Error: failed to start containers: nosuch\n"),
    "logs": Expect(("logs", "nosuch"), 1, NOT_FOUND_BY_CLIENT),
    "port": Expect(("port", "nosuch"), 1, NOT_FOUND_BY_CLIENT),
    "inspect": Expect(("inspect", "nosuch"), 1, "Error: No such object: nosuch\n", stdout_has="[]"),
    "inspect-container": Expect(("inspect", "--type", "container", "nosuch"), 1, NOT_FOUND_BY_CLIENT),
    "cp": Expect(("cp", "nosuch:/x", "/tmp/pyctr-codes-never"), 1, "Error: No such container:path: nosuch:/x\n"),
    # containers in the wrong state, paths that do not exist
    "exec-stopped": Expect(("exec", STOPPED, "true"), 1,
                           "Error response from daemon: Container {stopped} is not running\n"),
    "top-stopped": Expect(("top", STOPPED), 1, stderr_starts="Error response from daemon: "),
    "kill-stopped": Expect(("kill", STOPPED), 1, stderr_starts="Error response from daemon: "),
    "cp-missing-path": Expect(("cp", f"{RUNNING}:/nope", "/tmp/pyctr-codes-never"), 1,
                              f"Error: No such container:path: {RUNNING}:/nope\n"),
    "exec-command-not-found": Expect(("exec", RUNNING, "nosuchcmd"), 126, "", stdout_has=(
        'OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuchcmd": '
        "executable file not found in $PATH: unknown")),
    # the command line itself
    "run-unknown-flag": Expect(("run", "--bogus", "busybox"), 125, "unknown flag: --bogus\nSee 'pyctr run --help'.\n"),
    "ps-unknown-shorthand": Expect(("ps", "-z"), 125, "unknown shorthand flag: 'z' in -z\nSee 'pyctr ps --help'.\n"),
    "run-flag-needs-value": Expect(("run", "--name"), 125, "flag needs an argument: --name\nSee 'pyctr run --help'.\n"),
    "rm-no-argument": Expect(("rm",), 1, stderr_starts='"pyctr rm" requires at least 1 argument.\n'
                             "See 'pyctr rm --help'.\n\nUsage:  pyctr rm [OPTIONS]"),
    "unknown-command": Expect(("nosuchcommand",), 1,
                              "pyctr: 'nosuchcommand' is not a pyctr command.\nSee 'pyctr --help'\n"),
    "ps-bad-filter": Expect(("ps", "--filter", "bogus=1"), 1, stderr_starts="Error"),
    "bad-bool": Expect(("ps", "--all=maybe"), 125,
                       "invalid argument \"maybe\" for \"-a, --all\" flag: strconv.ParseBool: parsing \"maybe\": "
                       "invalid syntax\nSee 'pyctr ps --help'.\n"),
    # run and create: 125 for their own failures, with docker-cli's `docker:` wrapping and help line
    "run-unknown-image": Expect(("run", "--rm", "--network", "none", "nosuch-image-for-codes"), 125,
                                stderr_starts="pyctr: "),
    "create-name-in-use": Expect(("create", "--name", RUNNING, "busybox"), 125,
                                 stderr_starts="pyctr: Error response from daemon: "),
    "run-command-not-found": Expect(("run", "--rm", "--network", "none", "busybox", "nosuchcmd"), 127,
                                    stderr_starts="pyctr: Error response from daemon: exec: \"nosuchcmd\""),
    # images
    "rmi": Expect(("rmi", "nosuch"), 1, stderr_starts="Error: No such image: nosuch"),
    "history": Expect(("history", "nosuch"), 1, stderr_starts="Error response from daemon: No such image: nosuch"),
    "tag": Expect(("tag", "nosuch", "target"), 1, stderr_starts="Error response from daemon: No such image: nosuch"),
    "save": Expect(("save", "-o", "/tmp/pyctr-codes-never.tar", "nosuch"), 1,
                   stderr_starts="Error response from daemon: "),
    "push": Expect(("push", "nosuch"), 1, stderr_starts="Error response from daemon: "),
    "load": Expect(("load", "-i", "/nonexistent/image.tar"), 1,
                   "open /nonexistent/image.tar: no such file or directory\n"),
}


@pytest.fixture(scope="module")
def codes(pyctr_config, tmp_path_factory):
    yield from lifecycle_runner(pyctr_config, tmp_path_factory, "codes")


@pytest.fixture(scope="module")
def containers(codes) -> dict[str, str]:
    codes("run", "-d", "--name", RUNNING, "--network", "none", "busybox", "sleep", "300", check=True)
    stopped = codes("create", "--name", STOPPED, "--network", "none", "busybox", "true", check=True).stdout.strip()
    yield {"stopped": stopped}
    codes("rm", "-f", RUNNING, STOPPED, timeout=60)


@pytest.mark.parametrize("name", list(TABLE))
def test_as_docker_cli(name: str, codes, containers) -> None:
    expect = TABLE[name]
    r = codes(*expect.args, timeout=60)
    where = f"pyctr {' '.join(expect.args)} -> {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
    assert r.returncode == expect.code, where
    stderr = "".join(line for line in r.stderr.splitlines(keepends=True)
                     if not line.startswith(("Unable to find image", "Using default tag")))
    if expect.stderr is not None:
        assert stderr == expect.stderr.format(**containers), where
    if expect.stderr_starts is not None:
        assert stderr.startswith(expect.stderr_starts), where
    if expect.stdout_has is not None:
        assert expect.stdout_has in r.stdout, where


def test_a_failing_run_step_fails_the_build_with_1(codes, tmp_path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN exit 3\n")
    r = codes("build", str(tmp_path), timeout=120)
    assert r.returncode == 1, r.stderr
    assert "returned a non-zero code: 3" in r.stderr, r.stderr


def test_dockers_false_form_of_every_run_flag(codes) -> None:
    """`docker run --rm -d=false --tty=false ...` runs attached, without a tty, and prints the command's output."""
    r = codes("run", "--rm=true", "-d=false", "--detach=false", "--tty=false", "-t=false", "--interactive=false",
              "-i=0", "--privileged=false", "--init=false", "--read-only=false", "-P=false",
              "--network", "none", "busybox", "sh", "-c", "test -t 1 || echo not a tty", timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "not a tty\n", "")


def test_ps_all_false_lists_only_running(codes, containers) -> None:
    running = set(codes("ps", "-q", "--all=false", "--no-trunc", check=True).stdout.split())
    everything = set(codes("ps", "-q", "--all=true", "--no-trunc", check=True).stdout.split())
    assert containers["stopped"] in everything - running
    assert len(running) == 1


def test_rm_force_false_refuses_a_running_container(codes, containers) -> None:
    r = codes("rm", "--force=false", RUNNING)
    assert r.returncode == 1 and r.stderr.startswith("Error response from daemon: "), r.stderr
    assert RUNNING in codes("ps", "--format", "{{.Names}}", check=True).stdout.split()


def test_build_flags_take_false(codes, tmp_path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\n")
    r = codes("build", "-q=false", "--no-cache=true", "-t", "codes-bool:1", str(tmp_path), timeout=120)
    assert r.returncode == 0, r.stderr
    codes("rmi", "codes-bool:1")
