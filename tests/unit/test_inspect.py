"""`inspect` JSON shape (Docker's keys and types) and the --format template subset."""

from pathlib import Path

import pytest

from pyctr.output.template import TemplateError, inspect_lines
from pyctr.runtime import inspect as ins

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
