"""The h-misc run/create flags, decided purely: --log-driver/--log-opt (and the json-file rotation the monitor
does, and `logs` across the rotated files), --platform, --mac-address, --dns-search/--dns-option, --link, -a,
--detach-keys, --sig-proxy, -P with --expose, and the embedded DNS server's PTR answers and link aliases."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pyctr.errors import PyctrError, UsageError
from pyctr.runtime import logs as logfile
from pyctr.runtime.lifecycle import misc_flags as mf
from pyctr.runtime.monitor import RotatingLog, encode_entries, open_log
from pyctr.runtime.network import dns_server, hostfiles, usernet
from pyctr.runtime.spec import RunOptions
from tests.unit.test_run_options import parse

CID = "0123456789ab" + "c" * 52


# ------------------------------------------------------------------------------------------- flags parsing

def test_flags_reach_run_options() -> None:
    o = parse("-a", "STDOUT", "--log-driver", "local", "--log-opt", "max-size=1k", "--log-opt", "max-file=2",
              "--platform", "linux/amd64", "--mac-address", "02:42:ac:11:00:99", "--dns-search", "example.com",
              "--dns-option", "ndots:2", "--dns-opt", "timeout:1", "--link", "db:database", "busybox")
    assert o.attach == ["STDOUT"] and o.log_driver == "local" and o.log_opts == ["max-size=1k", "max-file=2"]
    assert o.platform == "linux/amd64" and o.mac_address == "02:42:ac:11:00:99"
    assert o.dns_search == ["example.com"] and o.dns_options == ["ndots:2", "timeout:1"]
    assert o.links == ["db:database"] and o.sig_proxy is True and o.detach_keys is None


def test_run_only_flags() -> None:
    o = parse("--sig-proxy=false", "--detach-keys", "ctrl-x", "busybox")
    assert o.sig_proxy is False and o.detach_keys == "ctrl-x"


# ------------------------------------------------------------------------------------------- MAC, DNS, links

@pytest.mark.parametrize(("text", "mac"), [
    ("92:D0:C6:0A:29:33", "92:d0:c6:0a:29:33"), ("92-d0-c6-0a-29-33", "92:d0:c6:0a:29:33"),
    ("92d0.c60a.2933", "92:d0:c6:0a:29:33"), ("", "")])
def test_mac_forms_go_accepts(text, mac) -> None:
    assert mf.normalized_mac(text) == mac


@pytest.mark.parametrize("text", ["92:d0:c6:0a:29", "92:d0:c6:0a:29:3g", "92:d0-c6:0a:29:33", "zz"])
def test_bad_mac_is_docker_cli_error(text) -> None:
    with pytest.raises(UsageError, match=f"^{text} is not a valid mac address$"):
        mf.normalized_mac(text)


def test_multicast_mac_is_refused_before_the_start() -> None:
    with pytest.raises(PyctrError, match="multicast"):
        mf.validate_misc_flags(RunOptions(image="busybox", mac_address="01:00:5e:00:00:01"))
    with pytest.raises(PyctrError, match="^conflicting options: mac-address and the network mode$"):
        mf.validate_misc_flags(RunOptions(image="busybox", mac_address="02:00:00:00:00:01", network="host"))


def test_dns_search_validation_is_docker_clis() -> None:
    assert mf.normalized_search(["example.com.", "a-b.c", "."]) == ["example.com", "a-b.c", "."]
    for bad in ("123", "-bad.com", "a..b", "x" * 256):
        with pytest.raises(UsageError, match=r'invalid argument ".*" for "--dns-search" flag: .* is not a valid'):
            mf.normalized_search([bad])


def test_resolv_conf_gets_search_and_options() -> None:
    host = "nameserver 10.0.0.1\nsearch host.lan\noptions edns0\n"
    text = hostfiles.resolv_conf(host, [], None, ["example.com"], ["ndots:2"])
    assert text == "search example.com\nnameserver 10.0.0.1\noptions ndots:2\n"
    embedded = hostfiles.embedded_resolv_conf(host, ["example.com"], ["timeout:1"])
    assert embedded == "search example.com\nnameserver 127.0.0.11\noptions timeout:1 ndots:0\n"
    assert "search" not in hostfiles.resolv_conf(host, [], None, ["."], [])


def test_links_parse_as_docker_cli() -> None:
    assert mf.parse_link("db") == ("db", "db")
    assert mf.parse_link("db:database") == ("db", "database")
    assert mf.parse_link("/db:/web/database") == ("db", "database")
    with pytest.raises(UsageError, match='invalid argument "a:b:c" for "--link" flag: bad format for links: a:b:c'):
        mf.parse_link("a:b:c")
    with pytest.raises(PyctrError, match="host type networking can't be used with links"):
        mf.validate_misc_flags(RunOptions(image="busybox", links=["db"], network="host"))


def test_link_env_is_dockers() -> None:
    env = mf.link_env("my-db", "web", "172.17.0.2", ["6379/tcp", "53/udp"], ["PATH=/bin", "HOME=/root", "A=1"])
    assert env == [
        "MY_DB_PORT=udp://172.17.0.2:53",
        "MY_DB_PORT_53_UDP=udp://172.17.0.2:53", "MY_DB_PORT_53_UDP_ADDR=172.17.0.2",
        "MY_DB_PORT_53_UDP_PORT=53", "MY_DB_PORT_53_UDP_PROTO=udp",
        "MY_DB_PORT_6379_TCP=tcp://172.17.0.2:6379", "MY_DB_PORT_6379_TCP_ADDR=172.17.0.2",
        "MY_DB_PORT_6379_TCP_PORT=6379", "MY_DB_PORT_6379_TCP_PROTO=tcp",
        "MY_DB_NAME=/web/my-db", "MY_DB_ENV_A=1"]
    assert mf.link_hosts_line("172.17.0.2", "database", "0123456789ab", "db") == "172.17.0.2\tdatabase 0123456789ab db"
    assert mf.link_hosts_line("172.17.0.2", "db", "0123456789ab", "db") == "172.17.0.2\tdb 0123456789ab"


def test_link_env_goes_before_the_image_and_user_env(tmp_path) -> None:
    from pyctr.runtime.lifecycle.links import LinkedTarget, with_link_env
    from pyctr.runtime.spec import make_spec

    spec = make_spec({"config": {"Env": ["DB_NAME=mine"], "Cmd": ["sh"]}}, RunOptions(image="busybox"), CID, "web",
                     tmp_path / CID, [tmp_path / "l"], host_env={})
    linked = with_link_env(spec, [LinkedTarget("db", ["DB_PORT=tcp://x:1", "DB_NAME=/web/db"], "")])
    assert linked.process.env[:3] == [spec.process.env[0], spec.process.env[1], "DB_PORT=tcp://x:1"]
    assert "DB_NAME=mine" in linked.process.env and "DB_NAME=/web/db" not in linked.process.env


def test_hosts_file_puts_link_lines_before_the_own_address() -> None:
    text = hostfiles.hosts_file("abc", "172.17.0.3", ["h:1.2.3.4"], ["172.17.0.2\tdb 0123 db"])
    assert text.splitlines()[-3:] == ["1.2.3.4\th", "172.17.0.2\tdb 0123 db", "172.17.0.3\tabc"]


# ------------------------------------------------------------------------------------------- logging

def test_log_config_defaults_and_inspect_shape() -> None:
    assert mf.log_config("", []).to_dict() == {"Type": "json-file", "Config": {}}
    json_file = mf.log_config("json-file", ["max-size=10k", "max-file=3"])
    assert (json_file.max_size, json_file.max_file) == (10_000, 3)
    assert json_file.to_dict() == {"Type": "json-file", "Config": {"max-size": "10k", "max-file": "3"}}
    local = mf.log_config("local", [])
    assert (local.max_size, local.max_file, local.writes) == (20 * 1024 * 1024, 5, True)
    assert not mf.log_config("none", []).writes
    assert mf.monitor_log_argument(mf.log_config("", [])) == "1"
    assert mf.monitor_log_argument(json_file) == "1:10000:3"
    assert mf.monitor_log_argument(mf.log_config("none", [])) == "0"


@pytest.mark.parametrize(("driver", "opts", "message"), [
    ("none", ["max-size=1k"], "^invalid logging opts for driver none$"),
    ("syslogx", [], "^logger: no log driver named 'syslogx' is registered$"),
    ("json-file", ["foo=1"], "^unknown log opt 'foo' for json-file log driver$"),
    ("local", ["tag=x"], "^unknown log opt 'tag' for local log driver$"),
    ("json-file", ["max-size=abc"], "^failed to initialize logging driver: invalid size: 'abc'$"),
    ("json-file", ["max-size=0"], "max-size must be a positive number"),
    ("json-file", ["max-file=0"], "max-file cannot be less than 1"),
    ("json-file", ["max-file=x"], 'strconv.Atoi: parsing "x": invalid syntax'),
    ("json-file", ["compress=true"], "compress cannot be true when max-file is less than 2 or max-size is not set"),
    ("json-file", ["compress=yes", "max-size=1k", "max-file=2"], 'strconv.ParseBool: parsing "yes"'),
    ("json-file", ["max-buffer-size=4m"], "only supported with 'mode=non-blocking'"),
    ("json-file", ["mode=fast"], "logging mode not supported: fast"),
])
def test_log_config_errors_are_dockers(driver, opts, message) -> None:
    with pytest.raises(PyctrError, match=message):
        mf.log_config(driver, opts)


def test_stored_log_config_of_an_old_container_is_json_file() -> None:
    assert mf.host_log_config({}).type == "json-file"
    assert mf.host_log_config({"LogConfig": {"Type": "none", "Config": {}}}).type == "none"
    with pytest.raises(PyctrError, match="^configured logging driver does not support reading$"):
        mf.check_logs_readable({"LogConfig": {"Type": "none", "Config": {}}})


def _entries(*texts: str) -> bytes:
    return b"".join(encode_entries([t.encode() + b"\n"], "stdout") for t in texts)


def test_rotation_keeps_max_file_files_of_about_max_size(tmp_path) -> None:
    path = tmp_path / "c-json.log"
    log = RotatingLog(str(path), max_size=200, max_file=3)
    for i in range(40):
        log.write(_entries(f"line {i:02d}"))
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    one_entry = len(_entries("line 00"))
    for p in tmp_path.iterdir():
        assert p.stat().st_size < 200 + one_entry  # rotated once it reached max-size (Docker: before a write)
    texts = [e.text for p in logfile.rotated_paths(path) + [path] for e in logfile.read_entries(p)]
    assert texts == [f"line {i:02d}\n" for i in range(40 - len(texts), 40)]  # the newest, in order, none lost


@pytest.mark.parametrize("max_file", [2, 4, 1_000_000])
def test_rotation_keeps_exactly_max_file_files_and_loses_no_recent_entry(tmp_path, max_file) -> None:
    path = tmp_path / "c-json.log"
    log = RotatingLog(str(path), max_size=60, max_file=max_file)
    for i in range(12):
        log.write(_entries(f"r{i:02d}"))
    log.close()
    kept = min(max_file, 12)
    assert len(list(tmp_path.iterdir())) == kept
    texts = [e.text for p in logfile.rotated_paths(path) + [path] for e in logfile.read_entries(p)]
    assert texts == [f"r{i:02d}\n" for i in range(12 - kept, 12)]


def test_max_file_one_empties_the_file(tmp_path) -> None:
    path = tmp_path / "c-json.log"
    log = open_log(str(path), "1:100:1")
    for i in range(10):
        log.write(_entries(f"n{i}"))
    log.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c-json.log"] and path.stat().st_size < 100 + 60
    assert open_log(str(path), "0") is None


def _rotated_log(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "c-json.log"
    log = RotatingLog(str(path), max_size=150, max_file=4)
    for i in range(count):
        log.write(_entries(f"e{i}"))
    log.close()
    return path


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_logs_read_across_the_rotated_files_in_order_and_tail_spans_them(tmp_path) -> None:
    path = _rotated_log(tmp_path, 12)
    assert len(logfile.rotated_paths(path)) >= 2
    out = _Out()
    logfile.stream_logs(path, out, out)
    assert out.text == "".join(f"e{i}\n" for i in range(12))
    for tail in (1, 3, 5, 12, 50):
        out = _Out()
        logfile.stream_logs(path, out, out, tail=tail)
        assert out.text == "".join(f"e{i}\n" for i in range(max(0, 12 - tail), 12)), tail
    entries, _ = logfile.stored_entries(path, 4)
    assert [e.text for e in entries] == ["e8\n", "e9\n", "e10\n", "e11\n"]


@pytest.mark.parametrize(("pause", "interval", "max_file"), [(0.02, 0.005, 3), (0.0, 0.1, 30)])
def test_follow_goes_on_in_the_new_file_after_a_rotation(tmp_path, pause, interval, max_file) -> None:
    """Slow writes (a rotation now and then) and a burst that rotates several files by between two looks."""
    path = tmp_path / "c-json.log"
    log = RotatingLog(str(path), max_size=150, max_file=max_file)
    log.write(_entries("first"))
    done = threading.Event()
    started = threading.Event()

    def writer() -> None:
        started.wait()
        time.sleep(interval / 2)
        for i in range(40):
            time.sleep(pause)
            log.write(_entries(f"w{i}"))
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()

    def running() -> bool:
        started.set()
        return not done.is_set()

    seen = b"".join(logfile.follow_chunks(path, 0, running, interval=interval))
    thread.join()
    log.close()
    texts = [e.text for e in logfile.decode_entries(seen)]
    assert texts == ["first\n"] + [f"w{i}\n" for i in range(40)]
    assert len(logfile.rotated_paths(path)) >= 2  # it did rotate meanwhile


# ------------------------------------------------------------------------------------------- -a, platform

def test_attach_streams_as_docker_cli() -> None:
    assert mf.attached_streams(RunOptions(image="b")) == (False, True, True)
    assert mf.attached_streams(RunOptions(image="b", attach=["stderr"])) == (False, False, True)
    assert mf.attached_streams(RunOptions(image="b", attach=["STDIN", "stdout"])) == (True, True, False)
    with pytest.raises(UsageError, match='for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR'):
        mf.parse_attach(["stdio"])
    with pytest.raises(UsageError, match="^Conflicting options: -a and -d$"):
        mf.validate_misc_flags(RunOptions(image="b", attach=["stdout"], detach=True))
    with pytest.raises(UsageError, match="Unknown character"):
        mf.validate_misc_flags(RunOptions(image="b", detach_keys="ctrl-"))


def test_platform_syntax_and_matching() -> None:
    mf.check_platform("linux/amd64")
    mf.check_platform("arm64")
    for bad, message in (("foo", "unknown operating system or architecture"),
                         ("linux/am d64", "is an invalid component"),
                         ("a/b/c/d", "cannot parse platform specifier")):
        with pytest.raises(PyctrError, match=message):
            mf.check_platform(bad)
    amd64 = {"os": "linux", "architecture": "amd64"}
    assert mf.platform_mismatch("linux/amd64", amd64) is None
    assert mf.platform_mismatch("linux/arm64", amd64) == "wanted linux/arm64/v8, actual: linux/amd64"
    assert mf.platform_mismatch("linux/arm64", {"os": "linux", "architecture": "arm64", "variant": "v8"}) is None


def test_platform_never_pulls_with_pull_never() -> None:
    image = SimpleNamespace(config={"os": "linux", "architecture": "amd64"})
    options = RunOptions(image="busybox", platform="linux/s390x", pull="never")
    with pytest.raises(PyctrError, match="does not match the specified platform: wanted linux/s390x"):
        mf.image_for_platform(None, options, image)
    assert mf.image_for_platform(None, RunOptions(image="busybox"), image) is image


# ------------------------------------------------------------------------------------------- documents

def test_inspect_fields_of_the_flags(tmp_path, monkeypatch) -> None:
    from tests.unit.test_inspect import _created_document

    doc = _created_document(tmp_path, monkeypatch, log_driver="json-file", log_opts=["max-size=1m"],
                            dns_search=["example.com"], dns_options=["ndots:3"], links=["db:database"],
                            mac_address="92:d0:c6:0a:29:33", expose=["7000-7001"], publish_all=True)
    host = doc["HostConfig"]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    assert host["DnsSearch"] == ["example.com"] and host["DnsOptions"] == ["ndots:3"]
    assert host["Links"] == ["/db:/web/database"] and doc["Config"]["MacAddress"] == "92:d0:c6:0a:29:33"
    published = {f"{p['ContainerPort']}/{p['Protocol']}" for p in doc["Ports"]}
    assert {"7000/tcp", "7001/tcp"} <= published  # -P publishes the --expose'd ports too
    assert doc["Spec"]["network"]["mac_address"] == "92:d0:c6:0a:29:33"
    assert doc["Spec"]["network"]["links"] == ["db:database"]


def test_api_create_maps_the_host_config_keys() -> None:
    from pyctr.api.documents import create_options

    options = create_options({"Image": "busybox", "MacAddress": "02:42:ac:11:00:09", "HostConfig": {
        "LogConfig": {"Type": "json-file", "Config": {"max-file": "2", "max-size": "1k"}},
        "DnsSearch": ["a.example"], "DnsOptions": ["ndots:1"], "Links": ["/db:/web/db"]}}, "web")
    assert options.log_driver == "json-file" and sorted(options.log_opts) == ["max-file=2", "max-size=1k"]
    assert options.mac_address == "02:42:ac:11:00:09" and options.links == ["/db:/web/db"]
    assert options.dns_search == ["a.example"] and options.dns_options == ["ndots:1"]


# ------------------------------------------------------------------------------------------- embedded DNS

def _table() -> dict:
    net = usernet.NetworkRecord(id="d" * 64, name="appnet", created="2026-01-01T00:00:00Z", subnet="10.1.0.0/24",
                                gateway="10.1.0.1", bridge="br-dddddddddddd")
    return usernet.dns_table({net.id: net}, {net.id: [
        {"id": "1" * 64, "name": "/web", "aliases": [], "ip": "10.1.0.2", "links": ["db:database"]},
        {"id": "2" * 64, "name": "db", "aliases": ["store"], "ip": "10.1.0.3"}]})


def test_ptr_answers_name_dot_network_for_addresses_on_the_askers_networks(tmp_path) -> None:
    import json

    path = tmp_path / "dns.json"
    path.write_text(json.dumps(_table()))
    records = dns_server.Records(str(path))
    names, _ = records.view("1" * 64)
    reverse = records.reverse_view("1" * 64)
    assert reverse["3.0.1.10.in-addr.arpa"] == "db.appnet"
    query = dns_server.parse_query(dns_server.build_query(5, "3.0.1.10.in-addr.arpa", dns_server.TYPE_PTR))
    assert dns_server.decide(query, names, True, reverse) == ("ptr", ["db.appnet"], 0)
    reply = dns_server.build_ptr_response(query, "db.appnet")
    assert reply.endswith(dns_server.encode_name("db.appnet")) and reply[7] == 1  # one answer
    unknown = dns_server.parse_query(dns_server.build_query(6, "9.9.9.9.in-addr.arpa", dns_server.TYPE_PTR))
    assert dns_server.decide(unknown, names, True, reverse)[0] == "forward"
    assert records.reverse_view("9" * 64) == {}  # a container on no network sees no address


def test_link_alias_on_a_user_network_resolves_for_the_linking_container_only(tmp_path) -> None:
    import json

    path = tmp_path / "dns.json"
    path.write_text(json.dumps(_table()))
    records = dns_server.Records(str(path))
    assert records.view("1" * 64)[0]["database"] == ["10.1.0.3"]
    assert "database" not in records.view("2" * 64)[0]
