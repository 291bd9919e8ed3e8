"""`inspect` JSON shape (Docker's keys and types) and the --format template subset."""

import re
from pathlib import Path

import pytest

from pyctr.output.template import TemplateError, inspect_lines
from pyctr.runtime import inspect as ins
from tests.helpers import DOCKER_HOST_CONFIG

CID = "ab" * 32
CONFIG = {
    "Id": CID, "Name": "web", "Created": "2024-01-01T00:00:00.000000001Z", "Path": "sh", "Args": ["-c", "true"],
    "Image": "sha256:" + "c" * 64, "LowerDirs": ["/l2", "/l1"],
    "Ports": [{"HostIp": "0.0.0.0", "HostPort": 8000, "ContainerPort": 80, "Protocol": "tcp"}],
    "Config": {"Hostname": CID[:12], "Env": ["A=1"], "Cmd": ["sh"], "Image": "busybox", "Labels": {"k": "v"},
               "ExposedPorts": {"80/tcp": {}}},
    "HostConfig": {"NetworkMode": "bridge", "Binds": ["/src:/dst:ro", "vol:/data"], "AutoRemove": False},
}
RUNNING = {"Status": "running", "Pid": 42, "ExitCode": 0, "StartedAt": "2024-01-01T00:00:01Z",
           "Network": {"IPAddress": "10.77.0.2", "IPPrefixLen": 16, "Gateway": "10.77.0.1",
                       "MacAddress": "02:42:0a:4d:00:02"}}


def test_top_level_keys_and_types():
    obj = ins.container_inspect(CONFIG, RUNNING, Path("/r/containers") / CID)
    for key in ("Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath", "HostsPath",
                "LogPath", "Name", "RestartCount", "Driver", "Platform", "HostConfig", "GraphDriver", "Mounts",
                "Config", "NetworkSettings"):
        assert key in obj, key
    assert obj["Name"] == "/web" and obj["Id"] == CID and obj["Args"] == ["-c", "true"]
    assert obj["LogPath"] == f"/r/containers/{CID}/{CID}-json.log"
    assert obj["GraphDriver"]["Data"]["LowerDir"] == "/l2:/l1"


def test_state_booleans_follow_status():
    st = ins.state_object(RUNNING)
    assert st == {"Status": "running", "Running": True, "Paused": False, "Restarting": False, "OOMKilled": False,
                  "Dead": False, "Pid": 42, "ExitCode": 0, "Error": "", "StartedAt": "2024-01-01T00:00:01Z",
                  "FinishedAt": "0001-01-01T00:00:00Z"}
    assert ins.state_object({"Status": "exited", "ExitCode": 3})["Running"] is False


def test_network_settings_when_running_and_stopped():
    net = ins.container_inspect(CONFIG, RUNNING, Path("/x"))["NetworkSettings"]
    assert net["IPAddress"] == "10.77.0.2" and net["Networks"]["bridge"]["Gateway"] == "10.77.0.1"
    assert net["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8000"}]}
    stopped = ins.container_inspect(CONFIG, {"Status": "exited"}, Path("/x"))["NetworkSettings"]
    assert stopped["IPAddress"] == "" and stopped["Ports"] == {}


def test_mounts_from_binds():
    mounts = ins.container_inspect(CONFIG, RUNNING, Path("/x"))["Mounts"]
    assert mounts[0] == {"Type": "bind", "Source": "/src", "Destination": "/dst", "Mode": "ro", "RW": False,
                         "Propagation": "rprivate"}
    assert mounts[1]["Type"] == "volume" and mounts[1]["Name"] == "vol" and mounts[1]["RW"] is True


OBJ = {"Id": "abc", "State": {"Status": "running", "Running": True, "Pid": 5, "Error": ""},
       "Config": {"Env": ["A=1", "B=2"], "Labels": {"x": "y"}, "Cmd": None}}


@pytest.mark.parametrize("template,out", [
    ("{{.State.Status}}", "running"),
    ("{{.Id}}", "abc"),
    ("{{ .State.Pid }}", "5"),
    ("{{.State.Running}}", "true"),
    ("{{json .State}}", '{"Status":"running","Running":true,"Pid":5,"Error":""}'),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Config.Labels}}", "map[x:y]"),
    ('{{index .Config.Labels "x"}}', "y"),
    ("{{.Config.Cmd}}", "<no value>"),
    ("id={{.Id}} pid={{.State.Pid}}", "id=abc pid=5"),
    ("{{upper .State.Status}}", "RUNNING"),
    ("{{len .Config.Env}}", "2"),
    ('{{join .Config.Env ","}}', "A=1,B=2"),
    ("{{range .Config.Env}}{{println .}}{{end}}", "A=1\nB=2\n"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}}", "x=y"),
    ('{{if eq .State.Status "running"}}up{{else}}down{{end}}', "up"),
    ("{{with .State}}{{.Pid}}{{end}}", "5"),
])
def test_format(template, out):
    text, errors = inspect_lines(template, [OBJ])
    assert (text, errors) == (out + "\n", [])


def test_missing_keys_are_errors_as_in_dockers_map_fallback():
    """docker inspect re-runs a failing template on the JSON map with missingkey=error."""
    text, errors = inspect_lines("{{.Nope}}", [OBJ, OBJ])
    assert text == "\n"  # nothing rendered: one empty line (TemplateInspector.Flush)
    assert errors == ['template parsing error: template: :1:2: executing "" at <.Nope>: map has no entry for key '
                      '"Nope"'] * 2
    _, errors = inspect_lines("{{.State.Status.X}}", [OBJ])
    assert errors == ['template parsing error: template: :1:2: executing "" at <.State.Status.X>: '
                      "can't evaluate field X in type string"]


@pytest.mark.parametrize("bad,message", [
    ("{{frob .Id}}", 'template parsing error: template: :1: function "frob" not defined'),
    ("{{.Id", "template parsing error: template: :1: unclosed action"),
    ("{{if .Id}}x", "template parsing error: template: :1: unexpected EOF"),
    ("{{end}}", "template parsing error: template: :1: unexpected {{end}}"),
])
def test_format_parse_errors(bad, message):
    with pytest.raises(TemplateError) as e:
        inspect_lines(bad, [OBJ])
    assert str(e.value) == message


# -- Docker 20.10's documents (API 1.41), as `docker inspect` printed them for `docker run busybox` ----------

# Its Config (busybox's image Env, no HOSTNAME: the daemon adds that to the process, not to Config.Env).
DOCKER_CONFIG_KEYS = ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty",
                      "OpenStdin", "StdinOnce", "Env", "Cmd", "Image", "Volumes", "WorkingDir", "Entrypoint",
                      "OnBuild", "Labels"]
BUSYBOX_CONFIG = {"config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                             "Cmd": ["sh"]}}


def _created_document(tmp_path, monkeypatch, **options):
    from pyctr.runtime import container
    from pyctr.runtime.lifecycle import config_document
    from pyctr.runtime.spec import RunOptions, make_spec

    monkeypatch.setattr(config_document, "_cgroup_version", lambda: 2)
    run = RunOptions(image="busybox", **options)
    spec = make_spec(BUSYBOX_CONFIG, run, CID, "web", tmp_path / "containers" / CID, [tmp_path / "l1"],
                     volumes_root=tmp_path / "volumes", host_env={})
    return container.config_document(spec, run, "sha256:" + "c" * 64, BUSYBOX_CONFIG, [])


def test_host_config_of_a_plain_run_is_dockers(tmp_path, monkeypatch):
    from pyctr.commands.container import run as run_command

    network_default = next(p.default for p in run_command.params if p.name == "network")  # a plain `run`
    doc = _created_document(tmp_path, monkeypatch, command=["sleep", "9"], detach=True, network=network_default)
    host_config = ins.container_inspect(doc, {"Status": "created"}, tmp_path)["HostConfig"]
    assert list(host_config) == list(DOCKER_HOST_CONFIG)
    differing = {k: (host_config[k], v) for k, v in DOCKER_HOST_CONFIG.items()
                 if k != "MaskedPaths" and host_config[k] != v}
    assert differing == {}
    assert set(DOCKER_HOST_CONFIG["MaskedPaths"]) <= set(host_config["MaskedPaths"])


def test_config_env_has_no_injected_hostname(tmp_path, monkeypatch):
    doc = _created_document(tmp_path, monkeypatch, tty=True, env=["A=1"])
    config = ins.container_inspect(doc, {"Status": "created"}, tmp_path)["Config"]
    assert config["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1"]
    assert config["Hostname"] == CID[:12] and config["Labels"] == {}
    assert list(config) == DOCKER_CONFIG_KEYS
    assert "HOSTNAME=" + CID[:12] in doc["Spec"]["process"]["env"]  # the process still gets it, as in Docker


def test_anonymous_volume_is_a_volume_with_a_hex_name(tmp_path, monkeypatch):
    doc = _created_document(tmp_path, monkeypatch, volumes=["/data", "cache:/cache", "/srv:/srv:ro"])
    obj = ins.container_inspect(doc, {"Status": "created"}, tmp_path)
    anonymous, named, bind = obj["Mounts"]
    assert re.fullmatch(r"[0-9a-f]{64}", anonymous["Name"])
    assert anonymous == {"Type": "volume", "Name": anonymous["Name"],
                         "Source": f"{tmp_path}/volumes/{anonymous['Name']}/_data", "Destination": "/data",
                         "Driver": "local", "Mode": "", "RW": True, "Propagation": ""}
    assert named == {"Type": "volume", "Name": "cache", "Source": f"{tmp_path}/volumes/cache/_data",
                     "Destination": "/cache", "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}
    assert bind == {"Type": "bind", "Source": "/srv", "Destination": "/srv", "Mode": "ro", "RW": False,
                    "Propagation": "rprivate"}
    assert obj["HostConfig"]["Binds"] == ["cache:/cache", "/srv:/srv:ro"]  # Docker's CLI: `/data` is no bind
    assert obj["Config"]["Volumes"] == {"/data": {}}


def test_config_omitempty_keys_appear_only_when_set():
    shown = ins.config_object({"ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGUSR1", "Labels": {}})
    assert list(shown)[6] == "ExposedPorts" and shown["StopSignal"] == "SIGUSR1" and shown["Labels"] == {}
    assert "StopTimeout" not in shown and "Healthcheck" not in shown
    assert "ExposedPorts" not in ins.config_object({"ExposedPorts": None})


def test_old_records_get_dockers_defaults():
    host_config = ins.container_inspect(CONFIG, RUNNING, Path("/x"))["HostConfig"]
    assert host_config["ShmSize"] == 67108864 and host_config["Binds"] == ["/src:/dst:ro", "vol:/data"]
    assert "Init" not in host_config and "Tmpfs" not in host_config


def test_network_name_of_default_mode_is_bridge():
    assert ins.network_name({"NetworkMode": "default"}) == "bridge"
    assert ins.network_name({"NetworkMode": "none"}) == "none" and ins.network_name({}) == "bridge"
