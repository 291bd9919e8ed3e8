"""The Engine API's network and volume documents and the newer create options (compose files' restart policy,
healthcheck, mounts, tmpfs, volumes-from, user networks with aliases, ulimits, exposed ports): pure parts, plus
the volume endpoints driven through a fake request against a temporary PYCTR_ROOT (no root needed)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from pyctr.api import documents, handlers, netvol, service  # noqa: F401 - registers the routes
from pyctr.api.http import HttpError
from pyctr.api.routes import find_route, status_for
from pyctr.errors import NotFoundError, UsageError
from pyctr.runtime.mounts import MountError, parse_mount_flag


def test_network_create_body_maps_ipam_labels_and_options():
    wanted = netvol.network_create({
        "Name": "proj_default", "Driver": "bridge", "CheckDuplicate": True, "Internal": True,
        "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.254",
                                                  "IPRange": "10.9.0.128/25"}]},
        "Labels": {"com.docker.compose.project": "proj"}, "Options": {"com.docker.network.bridge.name": "brx"},
    })
    assert (wanted.name, wanted.driver, wanted.internal) == ("proj_default", "bridge", True)
    assert (wanted.subnets, wanted.gateways, wanted.ip_ranges) == (["10.9.0.0/24"], ["10.9.0.254"], ["10.9.0.128/25"])
    assert wanted.labels == {"com.docker.compose.project": "proj"}
    assert wanted.options == {"com.docker.network.bridge.name": "brx"}
    assert netvol.network_create({"Name": "n", "Driver": ""}).driver == "bridge"


@pytest.mark.parametrize("body", [
    {}, {"Name": ""}, {"Name": 3}, {"Name": "n", "EnableIPv6": True}, {"Name": "n", "IPAM": {"Driver": "dhcp"}},
    {"Name": "n", "Labels": {"a": 1}}, {"Name": "n", "IPAM": {"Config": {"Subnet": "x"}}}, [],
])
def test_network_create_body_refusals_are_bad_requests(body):
    with pytest.raises(UsageError) as refused:
        netvol.network_create(body)
    assert status_for(refused.value) == 400


def test_network_filters_connect_and_disconnect_bodies():
    assert netvol.network_list_filters({"name": ["a"], "type": ["custom"]}) == {"name": ["a"], "type": ["custom"]}
    for bad in ({"colour": ["red"]}, {"type": ["weird"]}):
        with pytest.raises(UsageError):
            netvol.network_list_filters(bad)
    connect = netvol.network_connect({"Container": "c1", "EndpointConfig": {
        "Aliases": ["web", "www"], "IPAMConfig": {"IPv4Address": "10.9.0.7"}}})
    assert (connect.container, connect.aliases, connect.ip) == ("c1", ["web", "www"], "10.9.0.7")
    assert netvol.network_connect({"Container": "c1"}).ip is None
    assert netvol.network_disconnect({"Container": "c1", "Force": True}) == ("c1", True)
    with pytest.raises(UsageError):
        netvol.network_connect({"EndpointConfig": {}})
    with pytest.raises(UsageError):
        netvol.network_connect({"Container": "c", "EndpointConfig": {"Aliases": "web"}})


def test_volume_bodies_filters_and_documents():
    wanted = netvol.volume_create({"Name": "data", "Driver": "local", "DriverOpts": {"type": "tmpfs"},
                                   "Labels": {"a": "b"}})
    assert wanted == netvol.VolumeCreate("data", "local", {"a": "b"}, {"type": "tmpfs"})
    assert netvol.volume_create({}).name is None  # anonymous: the store picks a random name
    with pytest.raises(UsageError):
        netvol.volume_create({"Name": 5})
    assert netvol.prune_label_filters({"label": ["a"], "label!": ["b"]}) == (["a"], ["b"])
    for bad, check in (({"until": ["1h"]}, netvol.prune_label_filters), ({"dangling": ["maybe"]},
                                                                           netvol.volume_list_filters)):
        with pytest.raises(UsageError):
            check(bad)


def test_changes_and_update_documents():
    assert netvol.changes_document([("C", "/etc"), ("A", "/etc/x"), ("D", "/tmp/y")]) == [
        {"Path": "/etc", "Kind": 0}, {"Path": "/etc/x", "Kind": 1}, {"Path": "/tmp/y", "Kind": 2}]
    assert netvol.update_arguments({"Memory": 64 << 20, "NanoCpus": 1_500_000_000, "CpuShares": 0,
                                    "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}}) == {
        "memory": str(64 << 20), "cpus": "1.5", "restart": "on-failure:2"}
    assert netvol.update_arguments({"RestartPolicy": {"Name": ""}}) == {}


# ------------------------------------------------------------------------------------------ container create

def create(**body: Any):
    return documents.create_options({"Image": "busybox", **body}, None)


def test_mounts_become_mount_flags_that_parse_back_with_every_option():
    options = create(HostConfig={"Mounts": [
        {"Type": "volume", "Source": "data", "Target": "/data", "VolumeOptions": {
            "NoCopy": True, "Labels": {"k": "v"}, "DriverConfig": {"Options": {"o": "addr=1,nolock"}}}},
        {"Type": "bind", "Source": "/srv", "Target": "/srv", "ReadOnly": True,
         "BindOptions": {"Propagation": "rslave"}},
        {"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1777}},
        {"Type": "volume", "Target": "/anon"},
    ]})
    volume, bind, tmpfs, anonymous = (parse_mount_flag(m) for m in options.mounts)
    assert (volume.source, volume.target, volume.nocopy) == ("data", "/data", True)
    assert volume.volume_labels == {"k": "v"} and volume.volume_options == {"o": "addr=1,nolock"}  # comma kept
    assert (bind.type, bind.readonly, bind.propagation) == ("bind", True, "rslave")
    assert (tmpfs.type, tmpfs.tmpfs_size, tmpfs.tmpfs_mode) == ("tmpfs", 1 << 20, 0o1777)
    assert (anonymous.type, anonymous.source, anonymous.target) == ("volume", "", "/anon")
    assert options.volumes == []


def test_tmpfs_volumes_from_and_image_volumes_are_not_doubled():
    options = create(Volumes={"/data": {}, "/cache": {}, "/run": {}},
                     HostConfig={"Tmpfs": {"/run": "rw,size=64m", "/tmp": ""}, "VolumesFrom": ["other:ro"],
                                 "Binds": ["named:/data"], "Mounts": [{"Type": "volume", "Target": "/cache"}]})
    assert options.tmpfs == ["/run:rw,size=64m", "/tmp"]
    assert options.volumes_from == ["other:ro"]
    assert options.volumes == ["named:/data"]  # /cache (a mount) and /run (a tmpfs) are not anonymous volumes


def test_restart_policy_healthcheck_ulimits_and_exposed_ports():
    from pyctr.runtime.lifecycle.run_flags import user_check, validate_options

    options = create(HostConfig={"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                                 "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]},
                     ExposedPorts={"80/tcp": {}, "53/udp": {}},
                     Healthcheck={"Test": ["CMD", "wget", "-q", "localhost"], "Interval": 2_000_000_000,
                                  "Retries": 3})
    assert options.restart == "on-failure:3" and options.ulimits == ["nofile=1024:2048"]
    assert sorted(options.expose) == ["53/udp", "80/tcp"]
    validate_options(options)
    check = user_check(options)
    assert check["Test"] == ["CMD", "wget", "-q", "localhost"]
    assert (check["Interval"], check["Retries"]) == (2_000_000_000, 3)
    assert create(HostConfig={"RestartPolicy": {"Name": "", "MaximumRetryCount": 0}}).restart == "no"
    shell = create(Healthcheck={"Test": ["CMD-SHELL", "curl -f localhost"]})
    assert user_check(shell)["Test"] == ["CMD-SHELL", "curl -f localhost"]
    assert user_check(create(Healthcheck={"Test": ["NONE"]})) == {"Test": ["NONE"]}
    inherit = create(Healthcheck={"Interval": 5_000_000_000})
    assert inherit.health_test is None and inherit.health_cmd is None and inherit.health_interval == 5_000_000_000
    with pytest.raises(UsageError):
        create(Healthcheck={"Test": ["EXEC", "x"]})


def test_a_bad_restart_policy_is_refused_as_the_flag_is():
    from pyctr.errors import PyctrError
    from pyctr.runtime.lifecycle.run_flags import validate_options

    with pytest.raises(PyctrError, match="maximum retry count cannot be used with restart policy 'always'"):
        validate_options(create(HostConfig={"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}))


def test_user_network_with_aliases_and_address():
    options = create(HostConfig={"NetworkMode": "proj_default"}, NetworkingConfig={"EndpointsConfig": {
        "proj_default": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.9.0.9"}}}})
    assert (options.network, options.network_aliases, options.ip) == ("proj_default", ["web"], "10.9.0.9")
    implied = create(NetworkingConfig={"EndpointsConfig": {"mynet": {"Aliases": ["db"]}}})
    assert (implied.network, implied.network_aliases) == ("mynet", ["db"])
    assert create(HostConfig={"NetworkMode": "bridge"}).network_aliases == []
    assert create().network == "default"
    with pytest.raises(UsageError, match="Container cannot be connected to network endpoints: a, b"):
        create(NetworkingConfig={"EndpointsConfig": {"a": {}, "b": {}}})


# ------------------------------------------------------------------------------------------ routes and handlers

def test_new_routes_resolve_to_their_handlers():
    assert find_route("POST", "/networks/create")[0].__module__ == "pyctr.api.networks"
    assert find_route("GET", "/networks/abc") == (find_route("GET", "/networks/x")[0], {"id": "abc"})
    assert find_route("POST", "/networks/n1/connect")[0].__name__ == "connect"
    assert find_route("POST", "/volumes/prune")[0].__module__ == "pyctr.api.volumes"
    assert find_route("DELETE", "/volumes/v1")[1] == {"name": "v1"}
    for verb in ("pause", "unpause", "rename", "update"):
        assert find_route("POST", f"/containers/c/{verb}")[0].__name__ == verb
    assert find_route("GET", "/containers/c/export")[0].__name__ == "export"
    assert status_for(MountError("invalid mount config")) == 400


@dataclass
class FakeRequest:
    """Just what the volume handlers use of pyctr.api.http.Request; the answer is kept."""

    params: dict = field(default_factory=dict)
    body: Any = None
    query: dict = field(default_factory=dict)
    status: int = 0
    answer: Any = None

    def json(self, default: Any = None) -> Any:
        return default if self.body is None else self.body

    def arg(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)

    def flag(self, name: str) -> bool:
        return self.query.get(name) in ("1", "true")

    def send_json(self, value: Any, status: int = 200) -> None:
        self.answer, self.status = json.loads(json.dumps(value)), status

    def send_empty(self, status: int = 204) -> None:
        self.status = status


@pytest.fixture
def daemon_root(tmp_path, monkeypatch):
    from pyctr.config import load_config

    monkeypatch.setattr(service, "_CONFIG", [load_config(root=str(tmp_path / "root"))])
    return tmp_path / "root"


def call(method: str, path: str, **request: Any) -> FakeRequest:
    handler, params = find_route(method, path)
    fake = FakeRequest(params=params, **request)
    handler(fake)
    return fake


def test_volume_endpoints_create_list_inspect_remove_prune(daemon_root):
    made = call("POST", "/volumes/create", body={"Name": "data", "Labels": {"app": "x"}})
    assert made.status == 201 and made.answer["Name"] == "data" and made.answer["Labels"] == {"app": "x"}
    assert made.answer["Mountpoint"].startswith(str(daemon_root)) and made.answer["Options"] == {}
    call("POST", "/volumes/create", body={"Name": "other"})
    listed = call("GET", "/volumes", query={"filters": json.dumps({"label": ["app=x"]})})
    assert listed.answer == {"Volumes": [call("GET", "/volumes/data").answer], "Warnings": None}
    with pytest.raises(HttpError) as missing:
        call("GET", "/volumes/nope")
    assert (missing.value.status, missing.value.message) == (404, "get nope: no such volume")
    with pytest.raises(UsageError):
        call("GET", "/volumes", query={"filters": json.dumps({"colour": ["red"]})})
    assert call("DELETE", "/volumes/nope", query={"force": "1"}).status == 204
    assert call("DELETE", "/volumes/data").status == 204
    pruned = call("POST", "/volumes/prune")
    assert pruned.answer == {"VolumesDeleted": ["other"], "SpaceReclaimed": 0}
    assert call("GET", "/volumes").answer == {"Volumes": [], "Warnings": None}


def test_volume_create_refuses_a_bad_name_as_a_bad_request(daemon_root):
    with pytest.raises(MountError) as refused:
        call("POST", "/volumes/create", body={"Name": "../escape"})
    assert status_for(refused.value) == 400
    assert not (daemon_root.parent / "escape").exists()


def test_create_on_a_missing_network_is_not_found(daemon_root):
    from pyctr.runtime.network.usermanager import resolve_for_create

    with pytest.raises(NotFoundError, match="^network nope not found$") as missing:
        resolve_for_create(service.config(), "nope", [], None)
    assert status_for(missing.value) == 404 and missing.value.exit_code == 125  # the CLI's code is unchanged


def test_network_prune_filters_by_labels():
    from pyctr.runtime.network.usernet import NetworkRecord, prune_wanted

    ryuk = NetworkRecord("i" * 64, "n", "", "10.0.0.0/24", "10.0.0.1", "br-x", labels={"session": "s1", "keep": ""})
    assert prune_wanted(ryuk, [], [])
    assert prune_wanted(ryuk, ["session=s1"], []) and not prune_wanted(ryuk, ["session=s2"], [])
    assert not prune_wanted(ryuk, ["session"], ["keep"]) and prune_wanted(ryuk, ["session"], ["other"])
    with pytest.raises(UsageError):
        netvol.prune_label_filters({"until": ["24h"]})
