"""The CLI skeleton: help lists every command, errors become one line and exit 125."""

import subprocess
import sys

import pytest

from pyctr.cli import COMMANDS, main

EXPECTED = (
    "run create start stop kill rm ps logs exec inspect top stats cp wait pull push images rmi tag "
    "save load login logout build history system info doctor version"
).split()


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "pyctr", *args], capture_output=True,
                          text=True, env=env)


def test_help_lists_every_docker_command():
    out = run_cli("--help").stdout
    for name in EXPECTED:
        assert f"  {name} " in out, name


@pytest.mark.parametrize("name", [n for n in COMMANDS if not n.startswith("_")])
def test_every_command_in_the_table_loads_and_prints_its_help(name):
    """A table entry naming a missing module or attribute fails only when that command is used: use each one."""
    r = run_cli(name, "--help")
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout.startswith(f"Usage: pyctr {name}"), r.stdout


def test_unknown_flag_is_docker_clis_two_lines_and_125():
    """docker-cli v20.10 cli/cobra.go FlagErrorFunc: `unknown flag: --bogus`, `See 'docker version --help'.`,
    cli.StatusError 125."""
    r = run_cli("version", "--bogus")
    assert r.returncode == 125
    assert r.stderr == "unknown flag: --bogus\nSee 'pyctr version --help'.\n"


def test_unknown_command_is_1():
    """cmd/docker/docker.go: `docker: 'frobnicate' is not a docker command.` / `See 'docker --help'`, exit 1."""
    r = run_cli("frobnicate")
    assert r.returncode == 1
    assert r.stderr == "pyctr: 'frobnicate' is not a pyctr command.\nSee 'pyctr --help'\n"


def test_version_prints_version():
    from pyctr import __version__

    r = run_cli("version")
    assert r.returncode == 0
    assert __version__ in r.stdout


def test_bad_config_names_file_and_key(tmp_path):
    import os

    cfg = tmp_path / "c.toml"
    cfg.write_text('registry_mirrors = "not-a-list"\n')
    env = dict(os.environ, PYCTR_CONFIG=str(cfg), PYCTR_ROOT=str(tmp_path / "root"))
    r = run_cli("info", env=env)
    assert r.returncode == 125
    assert str(cfg) in r.stderr and "registry_mirrors" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_internal_error_has_no_traceback(monkeypatch, capsys):
    import pyctr.cli as cli_mod

    def boom(**kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(cli_mod.cli, "main", boom)
    with pytest.raises(SystemExit) as e:
        main(["version"])
    assert e.value.code == 125
    err = capsys.readouterr().err
    assert "kaboom" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["ls", "list", "prune", *(n for n in ("attach", "commit", "cp", "create", "diff",
                                  "exec", "export", "inspect", "kill", "logs", "pause", "port", "rename", "restart",
                                  "rm", "run", "start", "stats", "stop", "top", "unpause", "update", "wait"))])
def test_container_group_has_docker_clis_subcommands(name, tmp_path):
    """`docker container X` is `docker X` (ls and list are ps), each with the top-level command's options."""
    r = run_cli("--root", str(tmp_path), "container", name, "--help")
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout.startswith(f"Usage: pyctr container {name}"), r.stdout


def test_container_ls_is_ps_and_container_inspect_only_looks_for_containers(tmp_path):
    assert run_cli("--root", str(tmp_path), "container", "ls", "-a").stdout.startswith("CONTAINER ID   IMAGE")
    r = run_cli("--root", str(tmp_path), "container", "inspect", "nosuch")
    assert (r.returncode, r.stderr) == (1, "Error: No such container: nosuch\n")
    r = run_cli("--root", str(tmp_path), "container", "bogus")
    assert r.returncode == 1 and "'container bogus' is not a pyctr command" in r.stderr
