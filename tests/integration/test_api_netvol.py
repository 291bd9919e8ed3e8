"""Networks, volumes and the newer container options through the Engine API, driven by the real docker CLI
(/usr/local/bin/docker, negotiating down to 1.41) against `pyctr system service` on a temporary socket:
network create/ls/inspect/connect/rm, two containers on a user network reaching each other by name and alias,
volume create/ls/rm, `-v named:/data` outliving its container, restart/health/mount/tmpfs/ulimit options,
pause/unpause/rename/update/diff/export, and dockerd's status codes for the refusals."""

from __future__ import annotations

import json
import tarfile
import uuid

from tests.integration.api_daemon import daemon  # noqa: F401 - the module's daemon fixture


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_network_create_ls_inspect_rm(daemon):  # noqa: F811
    net = _name("apinet")
    made = daemon.docker("network", "create", "--subnet", "10.81.1.0/24", "--gateway", "10.81.1.254",
                         "--label", "team=a", net, check=True).stdout.strip()
    assert len(made) == 64
    assert net in daemon.docker("network", "ls", "--format", "{{.Name}}", check=True).stdout.split()
    assert daemon.docker("network", "ls", "-q", "--filter", "label=team=a", check=True).stdout.split() == [made[:12]]
    shown = json.loads(daemon.docker("network", "inspect", net, check=True).stdout)[0]
    assert (shown["Id"], shown["Driver"], shown["Labels"]) == (made, "bridge", {"team": "a"})
    assert shown["IPAM"]["Config"] == [{"Subnet": "10.81.1.0/24", "Gateway": "10.81.1.254"}]
    assert net in daemon.pyctr("network", "ls", "--format", "{{.Name}}", check=True).stdout.split()  # one store
    again = daemon.docker("network", "create", net)
    assert again.returncode == 1 and "already exists" in again.stderr
    status, _, body = daemon.request("POST", "/networks/create", json.dumps({"Name": net}).encode(),
                                     {"Content-Type": "application/json"})
    assert status == 409 and "already exists" in json.loads(body)["message"]
    assert daemon.docker("network", "rm", net, check=True).stdout.strip() == net
    gone = daemon.docker("network", "inspect", net)
    assert gone.returncode == 1 and f"network {net} not found" in gone.stderr  # dockerd's words
    assert daemon.request("DELETE", f"/networks/{net}")[0] == 404
    assert daemon.request("DELETE", "/networks/bridge")[0] == 403


def test_containers_on_a_user_network_reach_each_other_by_name_and_alias(daemon):  # noqa: F811
    net, server, other = _name("appnet"), _name("srv"), _name("late")
    daemon.docker("network", "create", "--subnet", "10.81.2.0/24", net, check=True)
    try:
        daemon.docker("run", "-d", "--name", server, "--network", net, "--network-alias", "web", "busybox", "sh",
                      "-c", "mkdir -p /www && echo hello-from-srv > /www/index.html && exec httpd -f -p 80 -h /www",
                      check=True)
        fetched = daemon.docker("run", "--rm", "--network", net, "busybox", "sh", "-c",
                                f"nslookup web && wget -qO- http://web/ && wget -qO- http://{server}/",
                                timeout=60, check=True).stdout
        assert fetched.count("hello-from-srv") == 2 and "10.81.2." in fetched
        shown = json.loads(daemon.docker("inspect", server, check=True).stdout)[0]
        endpoint = shown["NetworkSettings"]["Networks"][net]
        assert "web" in endpoint["Aliases"] and endpoint["IPAddress"].startswith("10.81.2.")
        busy = daemon.docker("network", "rm", net)
        assert busy.returncode == 1 and "active endpoints" in busy.stderr
        assert daemon.request("DELETE", f"/networks/{net}")[0] == 403

        daemon.docker("run", "-d", "--name", other, "busybox", "sleep", "300", check=True)
        daemon.docker("network", "connect", "--alias", "second", net, other, check=True)
        found = daemon.docker("exec", server, "nslookup", "second", check=True).stdout
        assert "10.81.2." in found
        assert net in json.loads(daemon.docker("inspect", other, check=True).stdout)[0]["NetworkSettings"]["Networks"]
        daemon.docker("network", "disconnect", net, other, check=True)
        assert daemon.docker("exec", server, "nslookup", "second").returncode != 0
    finally:
        daemon.docker("rm", "-f", server, other)
    daemon.docker("network", "rm", net, check=True)


def test_named_volume_outlives_its_containers_and_is_refused_while_in_use(daemon):  # noqa: F811
    volume, user = _name("vol"), _name("user")
    assert daemon.docker("volume", "create", "--label", "k=v", volume, check=True).stdout.strip() == volume
    assert volume in daemon.docker("volume", "ls", "-q", check=True).stdout.split()
    assert daemon.docker("volume", "ls", "-q", "--filter", "label=k=v", check=True).stdout.split() == [volume]
    daemon.docker("run", "--rm", "-v", f"{volume}:/data", "busybox", "sh", "-c", "echo kept > /data/f", check=True)
    assert daemon.docker("run", "--rm", "-v", f"{volume}:/data:ro", "busybox", "cat", "/data/f",
                         check=True).stdout == "kept\n"
    shown = json.loads(daemon.docker("volume", "inspect", volume, check=True).stdout)[0]
    assert shown["Name"] == volume and shown["Labels"] == {"k": "v"}
    daemon.docker("create", "--name", user, "-v", f"{volume}:/data", "busybox", "true", check=True)
    busy = daemon.docker("volume", "rm", volume)
    assert busy.returncode == 1 and "volume is in use" in busy.stderr
    assert daemon.request("DELETE", f"/volumes/{volume}")[0] == 409
    daemon.docker("rm", user, check=True)
    assert daemon.docker("volume", "rm", volume, check=True).stdout.strip() == volume
    assert volume not in daemon.docker("volume", "ls", "-q", check=True).stdout.split()
    assert daemon.request("GET", f"/volumes/{volume}")[0] == 404
    anonymous = json.loads(daemon.request("POST", "/volumes/create", b"{}",
                                          {"Content-Type": "application/json"})[2])["Name"]
    pruned = daemon.docker("volume", "prune", "-f", check=True).stdout
    assert anonymous in pruned


def test_compose_style_options_reach_the_container(daemon):  # noqa: F811
    name = _name("opts")
    daemon.docker("run", "-d", "--name", name, "--restart", "on-failure:3", "--health-cmd", "true",
                  "--health-interval", "1s", "--mount", "type=tmpfs,target=/scratch,tmpfs-size=1m",
                  "--tmpfs", "/cache:size=2m", "--ulimit", "nofile=1024:2048", "--expose", "8080",
                  "busybox", "sleep", "300", check=True)
    try:
        shown = json.loads(daemon.docker("inspect", name, check=True).stdout)[0]
        assert shown["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        assert shown["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
        assert "8080/tcp" in shown["Config"]["ExposedPorts"]
        mounts = daemon.docker("exec", name, "cat", "/proc/mounts", check=True).stdout
        assert " /scratch tmpfs " in mounts and " /cache tmpfs " in mounts
        assert daemon.docker("exec", name, "sh", "-c", "ulimit -n", check=True).stdout.strip() == "1024"
    finally:
        daemon.docker("rm", "-f", name)


def test_pause_rename_update_diff_export(daemon, tmp_path):  # noqa: F811
    name, renamed = _name("life"), _name("renamed")
    daemon.docker("run", "-d", "--name", name, "busybox", "sh", "-c", "echo x > /made && sleep 300", check=True)
    try:
        daemon.docker("pause", name, check=True)
        assert daemon.docker("inspect", "-f", "{{.State.Status}}", name, check=True).stdout.strip() == "paused"
        again = daemon.docker("pause", name)
        assert again.returncode == 1 and "already paused" in again.stderr
        daemon.docker("unpause", name, check=True)
        assert daemon.docker("inspect", "-f", "{{.State.Status}}", name, check=True).stdout.strip() == "running"
        daemon.docker("rename", name, renamed, check=True)
        assert daemon.docker("inspect", "-f", "{{.Name}}", renamed, check=True).stdout.strip() == f"/{renamed}"
        daemon.docker("update", "--restart", "on-failure:2", renamed, check=True)
        policy = daemon.docker("inspect", "-f", "{{json .HostConfig.RestartPolicy}}", renamed, check=True).stdout
        assert json.loads(policy) == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert "A /made" in daemon.docker("diff", renamed, check=True).stdout.splitlines()
        archive = tmp_path / "export.tar"
        daemon.docker("export", "-o", str(archive), renamed, check=True)
        with tarfile.open(archive) as tar:
            names = set(tar.getnames())
        assert "made" in names and "bin/busybox" in names
    finally:
        daemon.docker("rm", "-f", name, renamed)


def test_network_prune_by_label_leaves_the_others(daemon):  # noqa: F811
    doomed, kept = _name("prune"), _name("keep")
    daemon.docker("network", "create", "--subnet", "10.81.4.0/24", "--label", "session=s1", doomed, check=True)
    daemon.docker("network", "create", "--subnet", "10.81.5.0/24", kept, check=True)
    try:
        out = daemon.docker("network", "prune", "-f", "--filter", "label=session=s1", check=True).stdout
        assert doomed in out and kept not in out
        names = daemon.docker("network", "ls", "--format", "{{.Name}}", check=True).stdout.split()
        assert doomed not in names and kept in names
        daemon.docker("network", "create", "--subnet", "10.81.6.0/24", "--label", "session=s2", doomed, check=True)
        assert daemon.pyctr("network", "prune", "-f", "--filter", "label!=session=s2", check=True).stdout == \
            f"Deleted Networks:\n{kept}\n\n"  # the CLI's prune shares the filters
    finally:
        daemon.docker("network", "rm", doomed, kept)
