"""pyctr-runtime's command line as containerd (go-runc), podman (conmon) and CRI write it, parsed the way runc's
urfave/cli does; the pure pieces of the verbs (exec's process, update's resources, list's columns, log lines)."""

from __future__ import annotations

import json

import pytest

from pyctr.oci.cli import DEFAULT_ROOT, CliError, parse, parse_signal
from pyctr.oci.commands import align_columns, exec_process_document, update_document
from pyctr.oci.main import format_log_line
from pyctr.oci.state import StateError, check_id


def test_containerd_create_line():
    inv = parse(["--root", "/run/containerd/runc/default", "--log", "/run/x/log.json", "--log-format", "json",
                 "create", "--bundle", "/run/b", "--pid-file", "/run/b/init.pid", "--console-socket", "/tmp/c.sock",
                 "abc"])
    assert inv.command == "create" and inv.args == ["abc"]
    assert inv.globals["root"] == "/run/containerd/runc/default" and inv.globals["log_format"] == "json"
    assert (inv.options["bundle"], inv.options["pid_file"], inv.options["console_socket"]) == \
        ("/run/b", "/run/b/init.pid", "/tmp/c.sock")


def test_defaults_single_dash_equals_and_booleans():
    inv = parse(["-root=/r", "--systemd-cgroup=false", "delete", "-f", "x"])
    assert inv.globals["root"] == "/r" and inv.globals["systemd_cgroup"] is False and inv.options["force"] is True
    assert parse(["state", "x"]).globals["root"] == DEFAULT_ROOT
    assert parse(["--debug", "state", "x"]).globals["debug"] is True


def test_flags_after_the_id_still_count_for_delete_and_create():
    assert parse(["delete", "x", "--force"]).options["force"] is True
    assert parse(["create", "x", "--bundle", "/b"]).options["bundle"] == "/b"


def test_exec_and_kill_stop_at_the_first_argument():
    inv = parse(["exec", "-e", "A=1", "--env", "B=2", "-t", "--user", "1:2", "c", "sh", "-c", "ls -l"])
    assert inv.args == ["c", "sh", "-c", "ls -l"] and inv.options["env"] == ("A=1", "B=2")
    assert inv.options["tty"] is True and inv.options["user"] == "1:2"
    assert parse(["exec", "--process", "/p.json", "c"]).args == ["c"]
    assert parse(["kill", "--all", "c", "KILL"]).args == ["c", "KILL"]


@pytest.mark.parametrize(("argv", "message"), [
    (["start"], '"start" requires exactly 1 argument(s)'),
    (["state", "a", "b"], '"state" requires exactly 1 argument(s)'),
    (["kill", "a", "b", "c"], '"kill" requires a maximum of 2 argument(s)'),
    (["exec", "c"], '"exec" requires a minimum of 2 argument(s)'),
    (["create", "--bogus", "x"], "flag provided but not defined: -bogus"),
    (["create", "--bundle"], "flag needs an argument: -bundle"),
    (["frobnicate"], "No help topic for 'frobnicate'"),
    (["--debug=maybe", "list"], 'invalid boolean value "maybe" for -debug'),
])
def test_bad_lines_say_what_runc_says(argv, message):
    with pytest.raises(CliError, match=None) as caught:
        parse(argv)
    assert message in str(caught.value)


@pytest.mark.parametrize(("text", "number"), [("KILL", 9), ("SIGKILL", 9), ("sigterm", 15), ("9", 9), ("15", 15),
                                              ("SIGUSR1", 10), ("RTMIN+2", 36), ("SIGRTMAX-1", 63), ("WINCH", 28)])
def test_signals_by_name_and_number(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["NOPE", "0", "65", "SIG", "-1"])
def test_unknown_signals(text):
    with pytest.raises(CliError):
        parse_signal(text)


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a b", "ä"])
def test_container_ids(bad):
    assert check_id("k8s_pod-1.2+x") == "k8s_pod-1.2+x"
    with pytest.raises(StateError):
        check_id(bad)


def test_exec_process_from_flags_inherits_the_containers_process():
    container = {"env": ["PATH=/bin", "A=0"], "cwd": "/srv", "user": {"uid": 5, "gid": 6},
                 "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]}, "noNewPrivileges": True}
    doc = exec_process_document({"env": ("A=1",), "cap": ("CAP_CHOWN",), "tty": True}, ["sh"], None, container)
    assert doc["args"] == ["sh"] and doc["env"] == ["PATH=/bin", "A=0", "A=1"] and doc["cwd"] == "/srv"
    assert doc["user"] == {"uid": 5, "gid": 6} and doc["terminal"] is True and doc["noNewPrivileges"] is True
    assert doc["capabilities"]["effective"] == ["CAP_KILL", "CAP_CHOWN"]
    assert doc["capabilities"]["ambient"] == ["CAP_CHOWN"]
    override = exec_process_document({"user": "0:0", "cwd": "/tmp", "additional_gids": ("7",)}, ["id"], None,
                                     container)
    assert override["user"] == {"uid": 0, "gid": 0, "additionalGids": [7]} and override["cwd"] == "/tmp"
    from_file = {"args": ["x"], "cwd": "/"}
    assert exec_process_document({"env": ("A=1",)}, [], from_file, container) is from_file
    with pytest.raises(CliError, match="parsing bob as uid:gid failed"):
        exec_process_document({"user": "bob"}, ["id"], None, container)


def test_update_document_from_flags_and_file(tmp_path):
    doc = update_document({"memory": "64m", "memory_swap": "-1", "pids_limit": "10", "cpuset_cpus": "0-1",
                           "cpu_share": "512"})
    assert doc == {"memory": {"limit": 64 << 20, "swap": -1}, "pids": {"limit": 10},
                   "cpu": {"cpus": "0-1", "shares": 512}}
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"pids": {"limit": 3}}))
    assert update_document({"resources": str(path)}) == {"pids": {"limit": 3}}
    assert update_document({"resources": "-"}, '{"memory": {"limit": 1}}') == {"memory": {"limit": 1}}
    with pytest.raises(CliError, match="decoding resources"):
        update_document({"resources": "-"}, "not json")
    with pytest.raises(CliError, match="invalid value for memory: lots"):
        update_document({"memory": "lots"})


def test_list_columns_as_runcs_tabwriter():
    text = align_columns([["ID", "PID", "STATUS"], ["a-long-container-id", "1", "running"]])
    assert text == "ID                    PID         STATUS\na-long-container-id   1           running\n"


def test_log_lines_text_and_json():
    line = format_log_line("error", 'container "x" does not exist', "json", "2026-01-02T03:04:05.5Z")
    assert line == '{"level":"error","msg":"container \\"x\\" does not exist","time":"2026-01-02T03:04:05.5Z"}\n'
    assert format_log_line("warning", "w", "text", "T") == 'time="T" level=warning msg="w"\n'


@pytest.mark.parametrize("verb", [["state", "x"], ["kill", "x", "KILL"], ["delete", "--force", "x"], ["start", "x"],
                                  ["list"]])
def test_the_verbs_callers_repeat_load_nothing_heavy(tmp_path, verb):
    """containerd and podman call state/kill/delete/start for every container: those verbs must not pay for
    dataclasses, click, the container launch or pyctr.runtime (a fresh `python -I -S`, as the launcher starts)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    probe = ("import sys\nsys.path.insert(0, sys.argv[1])\nfrom pyctr.oci.main import run\n"
             "code = run(sys.argv[2:])\nloaded = sorted(sys.modules)\nimport json\nprint(json.dumps([code, loaded]))")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(repo), "--root", str(tmp_path), *verb],
                          capture_output=True, text=True, timeout=60)
    code, loaded = json.loads(done.stdout.splitlines()[-1])
    assert code == (0 if verb[0] in ("list", "delete") else 1)
    heavy = {"dataclasses", "click", "pyctr.oci.bundle", "pyctr.oci.launch", "pyctr.runtime", "subprocess",
             "pyctr.output", "json", "re", "pathlib", "typing", "contextlib", "enum", "signal", "socket"}
    assert not heavy & set(loaded), heavy & set(loaded)


def test_create_loads_no_module_it_can_do_without(tmp_path):
    """What `create` imports (the plan, the launch, what C preloads before pivot_root, the cgroup step and a
    seccomp program already compiled) stays clear of the stdlib's slow imports: a cold start per container is
    what callers wait on."""
    import subprocess
    import sys
    from pathlib import Path

    from pyctr.oci.defaults import example_spec

    repo = Path(__file__).resolve().parents[2]
    config = example_spec(False)
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    config["process"]["terminal"] = False  # a pty (socket, termios) is preloaded only for a terminal
    (tmp_path / "config.json").write_text(json.dumps(config))
    probe = ("import sys, os\nsys.path.insert(0, sys.argv[1])\nfrom pyctr.oci.main import _enable_site\n"
             "_enable_site()\nfrom pyctr.oci import commands, launch\n"
             "from pyctr.runtime import capabilities, execshim, syscalls\n"
             "config, plan = commands.load_plan(sys.argv[2])\nlaunch.preload_child_modules(plan)\n"
             "capabilities.preload()\nlaunch.cgroup_dirs(plan, 'probe')\n"
             "caps = frozenset(plan.process.capabilities['effective'])\n"
             "name = launch.seccomp_cache_name(plan.seccomp, caps, os.uname().machine, os.uname().release)\n"
             "open(os.path.join(sys.argv[2], name), 'wb').write(b'compiled')\n"
             "assert launch.seccomp_program(plan, sys.argv[2]) == b'compiled'\n"
             "loaded = sorted(sys.modules)\nimport json\nprint(json.dumps(loaded))")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(repo), str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert {"pyctr.runtime.rootfs", "pyctr.runtime.process.sequence", "prctl"} <= loaded  # the probe did its job
    heavy = {"dataclasses", "typing", "re", "pathlib", "json", "contextlib", "subprocess", "socket", "enum",
             "pyctr.runtime.spec", "pyctr.runtime.users", "pyctr.runtime.cgroups", "pyctr.runtime.seccomp", "click"}
    assert not heavy & loaded, heavy & loaded
