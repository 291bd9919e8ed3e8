"""`ps` strings exactly as Docker prints them."""

import json

import pytest

from pyctr.errors import UsageError
from pyctr.output import table
from pyctr.output.template import TemplateError
from pyctr.runtime import ps
from pyctr.units import human_duration

NOW = 1_700_000_000.0


@pytest.mark.parametrize("seconds,text", [
    (0.2, "Less than a second"), (1, "1 second"), (5, "5 seconds"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (59 * 60, "59 minutes"), (3600, "About an hour"),
    (2 * 3600, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (13 * 86400, "13 days"),
    (14 * 86400, "2 weeks"), (60 * 86400, "2 months"), (800 * 86400, "2 years"),
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


@pytest.mark.parametrize("status,code,started,finished,text", [
    ("running", 0, NOW - 31, 0, "Up 31 seconds"),
    ("running", 0, NOW - 0.1, 0, "Up Less than a second"),
    ("paused", 0, NOW - 5, 0, "Up 5 seconds (Paused)"),
    ("exited", 0, NOW - 300, NOW - 120, "Exited (0) 2 minutes ago"),
    ("exited", 137, NOW - 300, NOW - 3, "Exited (137) 3 seconds ago"),
    ("created", 0, 0, 0, "Created"),
    ("dead", 0, 0, 0, "Dead"),
])
def test_status_text(status, code, started, finished, text):
    assert ps.status_text(status, code, started, finished, NOW) == text


def test_command_is_quoted_and_truncated_to_20():
    assert ps.command_text(["sh"]) == '"sh"'
    # dockerd quotes an argument holding a space (daemon/list.go); docker-cli then truncates and quotes it all
    assert ps.command_text(["sh", "-c", "sleep 1000; echo done"]) == '"sh -c \'sleep 1000; …"'
    assert len(json.loads(ps.command_text(["x" * 50]))) == 20
    assert ps.command_text(["sh", "-c", "echo \"hi\""], trunc=False) == '"sh -c \'echo \\"hi\\"\'"'


def test_ports():
    ports = [{"HostIp": "0.0.0.0", "HostPort": 8000, "ContainerPort": 8000, "Protocol": "tcp"},
             {"HostIp": "127.0.0.1", "HostPort": 53, "ContainerPort": 53, "Protocol": "udp"}]
    # docker-cli 20.10.24 DisplayablePorts sorts by private port first, then by host address
    assert ps.ports_text(ports) == "127.0.0.1:53->53/udp, 0.0.0.0:8000->8000/tcp"


def test_ports_with_ipv6_twins_as_docker_20_10():
    """`docker run -p 8000:80` on an IPv6 host (userland proxy on), `docker ps --format '{{.Ports}}'`."""
    ports = [{"HostIp": "0.0.0.0", "HostPort": 8000, "ContainerPort": 80, "Protocol": "tcp"},
             {"HostIp": "::", "HostPort": 8000, "ContainerPort": 80, "Protocol": "tcp"}]
    assert ps.ports_text(ports) == "0.0.0.0:8000->80/tcp, :::8000->80/tcp"
    assert ps.ports_text(list(reversed(ports))) == "0.0.0.0:8000->80/tcp, :::8000->80/tcp"
    same = [{"HostIp": ip, "HostPort": port, "ContainerPort": port, "Protocol": "tcp"}
            for ip in ("::", "0.0.0.0") for port in (8000, 8001)]
    # `-p 8000-8001:8000-8001`: grouped into ranges per address
    assert ps.ports_text(same) == "0.0.0.0:8000-8001->8000-8001/tcp, :::8000-8001->8000-8001/tcp"


def item(**kw):
    base = dict(id="a" * 64, name="focused_benz", image="busybox", argv=["sleep", "100"], created=NOW - 5,
                status="running", started=NOW - 5)
    base.update(kw)
    return ps.PsItem(**base)


def test_table_matches_dockers_layout():
    ports = [{"HostIp": "0.0.0.0", "HostPort": 8000, "ContainerPort": 8000, "Protocol": "tcp"}]
    rows = [ps.ps_row(item(ports=ports), NOW)]
    table = ps.format_table(rows).splitlines()
    assert table[0] == ("CONTAINER ID   IMAGE     COMMAND       CREATED         STATUS         "
                        "PORTS                    NAMES")
    assert table[1] == ("aaaaaaaaaaaa   busybox   \"sleep 100\"   5 seconds ago   Up 5 seconds   "
                        "0.0.0.0:8000->8000/tcp   focused_benz")


def test_size_column_as_docker_prints_it():
    """`docker ps -s` (20.10): SIZE last, "<rw> (virtual <rw + image>)" with 3 significant digits."""
    rows = [ps.ps_row(item(size_rw=0, size_root_fs=1984343), NOW),
            ps.ps_row(item(id="b" * 64, name="b", size_rw=12, size_root_fs=1984355), NOW)]
    table = ps.format_table(rows, with_size=True).splitlines()
    assert table[0].endswith("NAMES          SIZE")
    assert table[1].endswith("focused_benz   0B (virtual 1.98MB)")
    assert table[2].endswith("b              12B (virtual 1.98MB)")
    assert ps.size_text(0, 0) == "0B"


def test_empty_table_is_the_header():
    assert ps.format_table([]) == ("CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES")


def test_exited_container_shows_no_ports_and_json_row():
    ports = [{"HostIp": "0.0.0.0", "HostPort": 8000, "ContainerPort": 8000, "Protocol": "tcp"}]
    row = ps.ps_row(item(status="exited", exit_code=1, finished=NOW - 2, ports=ports), NOW)
    assert row["Ports"] == "" and row["Status"] == "Exited (1) 2 seconds ago" and row["State"] == "exited"
    line = json.loads(table.write("json", [ps.ps_context(item(), row)], ps.HEADERS))
    assert set(line) == {"Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts", "Names",
                         "Networks", "Platform", "Ports", "RunningFor", "Size", "State", "Status"}
    assert line["CreatedAt"] == "2023-11-14 22:13:15 +0000 UTC"


def test_no_trunc_shows_full_id():
    assert ps.ps_row(item(), NOW, trunc=False)["ID"] == "a" * 64


def test_selection_and_filters():
    items = [item(id="1" * 64, name="run1", created=NOW - 1),
             item(id="2" * 64, name="gone", status="exited", created=NOW - 2),
             item(id="3" * 64, name="new", status="created", created=NOW - 3)]
    assert [i.name for i in ps.select_items(items, show_all=False, filters={})] == ["run1"]
    assert [i.name for i in ps.select_items(items, show_all=True, filters={})] == ["run1", "gone", "new"]
    f = ps.parse_filters(["status=exited"])
    assert [i.name for i in ps.select_items(items, show_all=False, filters=f)] == ["gone"]
    f = ps.parse_filters(["status=exited", "status=created"])
    assert [i.name for i in ps.select_items(items, show_all=False, filters=f)] == ["gone", "new"]
    f = ps.parse_filters(["name=^ne"])
    assert [i.name for i in ps.select_items(items, show_all=True, filters=f)] == ["new"]
    f = ps.parse_filters(["id=222"])
    assert [i.name for i in ps.select_items(items, show_all=True, filters=f)] == ["gone"]
    assert [i.name for i in ps.select_items(items, show_all=False, filters={}, latest=True)] == ["run1"]
    assert [i.name for i in ps.select_items(items, show_all=False, filters={}, last=2)] == ["run1", "gone"]


@pytest.mark.parametrize("bad", ["status", "status=sleeping", "color=red"])
def test_bad_filters(bad):
    with pytest.raises(UsageError):
        ps.parse_filters([bad])


def ps_out(fmt, items):
    return table.write(fmt, [ps.ps_context(i, ps.ps_row(i, NOW)) for i in items], ps.HEADERS)


def test_custom_table_and_template_formats():
    assert ps_out("{{.Names}}: {{.Status}}", [item()]) == "focused_benz: Up 5 seconds\n"
    assert ps_out("table {{.ID}}\\t{{.Names}}", [item()]).splitlines() == [
        "CONTAINER ID   NAMES", "aaaaaaaaaaaa   focused_benz"]
    assert ps_out('{{.Label "com.example"}}|{{.Label "nope"}}', [item(labels={"com.example": "v"})]) == "v|\n"
    assert ps_out("{{upper .Names}} {{title .State}}", [item()]) == "FOCUSED_BENZ Running\n"


# docker-cli 28 (commit 67c0be4, "docker ps: allow formatting as JSON"): Platform prints as os/arch[/variant]
# and marshals as the OCI platform object; the JSON is json.Marshal's, so "->" in Ports is \u003e.
def test_platform_and_json_as_docker_cli_prints_them():
    ports = [{"HostIp": "0.0.0.0", "HostPort": 55000, "ContainerPort": 8080, "Protocol": "tcp"}]
    arm = item(platform={"architecture": "arm64", "os": "linux", "variant": "v8"}, ports=ports,
               labels={"maintainer": "NGINX <docker-maint@nginx.com>"})
    assert ps_out("table {{.Names}}\\t{{.Platform}}", [arm]).splitlines() == [
        "NAMES          PLATFORM", "focused_benz   linux/arm64/v8"]
    assert ps_out("{{json .Platform}}", [arm]) == '{"architecture":"arm64","os":"linux","variant":"v8"}\n'
    assert ps_out("{{.Platform.OS}} {{.Platform.Architecture}} {{.Platform.Variant}}", [arm]) == "linux arm64 v8\n"
    line = ps_out("json", [arm])
    assert '"Platform":{"architecture":"arm64","os":"linux","variant":"v8"}' in line
    assert '"Ports":"0.0.0.0:55000-\\u003e8080/tcp"' in line
    assert '"Labels":"maintainer=NGINX \\u003cdocker-maint@nginx.com\\u003e"' in line
    assert line == ps_out("{{json .}}", [arm])
    assert list(json.loads(line)) == sorted(json.loads(line))
    assert '"Platform":null' in ps_out("json", [item()])


def test_a_missing_field_is_dockers_error():
    with pytest.raises(TemplateError) as e:
        ps_out("{{.Nope}}", [item()])
    assert str(e.value) == ('template parsing error: template: :1:2: executing "" at <.Nope>: '
                            "can't evaluate field Nope in type *formatter.ContainerContext")
    assert e.value.exit_code == 1
    assert ps_out("table {{.ID}}", []) == "CONTAINER ID\n"  # no rows: the header only


def test_stats_row_units():
    s = ps.StatsSample("b" * 64, "web", cpu_ns_delta=250_000_000, interval=0.5, mem_usage=1536 * 1024,
                       mem_limit=64 * 1024 * 1024, net_rx=1234, net_tx=0, block_read=4096, block_write=0, pids=3)
    row = ps.stats_row(s)
    assert row["CPUPerc"] == "50.00%" and row["MemUsage"] == "1.5MiB / 64MiB" and row["MemPerc"] == "2.34%"
    assert row["NetIO"] == "1.23kB / 0B" and row["BlockIO"] == "4.1kB / 0B" and row["PIDs"] == "3"
    table = ps.format_stats_table([row]).splitlines()
    assert table[0].startswith("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT")


def test_format_selection_as_docker_cli_new_container_format():
    from pyctr.commands.container import ps_format

    assert ps_format(None, quiet=True, size=False) == "{{.ID}}"
    assert ps_format("table", quiet=False, size=True).endswith("{{.Names}}\\t{{.Size}}")
    # a custom format is used as given: -q and -s only change `table` and `raw`
    assert ps_format("table {{.Names}}", quiet=True, size=True) == "table {{.Names}}"
    raw = ps_out(ps_format("raw", quiet=False, size=False), [item(created=NOW - 5)])
    assert raw == ('container_id: aaaaaaaaaaaa\nimage: busybox\ncommand: "sleep 100"\n'
                   "created_at: 2023-11-14 22:13:15 +0000 UTC\nstate: running\nstatus: Up 5 seconds\n"
                   "names: focused_benz\nlabels:\nports:\n\n")
