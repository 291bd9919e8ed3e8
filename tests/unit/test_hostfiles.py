"""The container's /etc/hosts and /etc/resolv.conf, line for line as Docker writes them."""

from __future__ import annotations

import pytest

from pyctr.errors import UsageError
from pyctr.runtime.network.hostfiles import hosts_file, parse_add_host, resolv_conf

DOCKER_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def test_hosts_file_bridge_container() -> None:
    assert hosts_file("0123456789ab", "10.77.0.2") == DOCKER_HEADER + "10.77.0.2\t0123456789ab\n"


def test_hosts_file_without_address_has_no_host_line() -> None:
    assert hosts_file("0123456789ab", None) == DOCKER_HEADER


def test_hosts_file_add_host_entries_come_before_own_line() -> None:
    text = hosts_file("web", "10.77.0.5", ["db:10.77.0.9", "v6:::1", "br:[fe80::1]"])
    assert text == DOCKER_HEADER + "10.77.0.9\tdb\n::1\tv6\nfe80::1\tbr\n10.77.0.5\tweb\n"


@pytest.mark.parametrize("entry", ["nocolon", ":1.2.3.4", "name:", "name:not-an-ip"])
def test_bad_add_host_is_a_usage_error(entry: str) -> None:
    with pytest.raises(UsageError):
        parse_add_host(entry)


def test_resolv_conf_keeps_host_file_without_loopback_servers() -> None:
    host = "# generated\nsearch example.lan\nnameserver 127.0.0.1\nnameserver 192.168.1.1\noptions ndots:2\n"
    assert resolv_conf(host) == "# generated\nsearch example.lan\nnameserver 192.168.1.1\noptions ndots:2\n"


def test_resolv_conf_falls_back_to_public_resolvers() -> None:
    host = "search lan\nnameserver 127.0.0.1\nnameserver ::1\n"
    assert resolv_conf(host) == "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    assert resolv_conf("") == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"


def test_resolv_conf_systemd_resolved_stub_uses_upstream_file() -> None:
    stub = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp\n"
    upstream = "nameserver 10.1.1.1\nnameserver 10.1.1.2\nsearch corp\n"
    assert resolv_conf(stub, systemd_resolved_text=upstream) == upstream
    # Without the upstream file the stub is loopback: dropped, fallback used.
    assert resolv_conf(stub) == "options edns0 trust-ad\nsearch corp\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"


def test_resolv_conf_stub_plus_real_server_keeps_host_file() -> None:
    host = "nameserver 127.0.0.53\nnameserver 10.1.1.1\n"
    assert resolv_conf(host, systemd_resolved_text="nameserver 9.9.9.9\n") == "nameserver 10.1.1.1\n"


def test_resolv_conf_dns_flag_overrides_servers_keeps_search_and_options() -> None:
    host = "search corp lan\nnameserver 10.1.1.1\noptions ndots:3\n"
    assert resolv_conf(host, ["1.1.1.1", "9.9.9.9"]) == (
        "search corp lan\nnameserver 1.1.1.1\nnameserver 9.9.9.9\noptions ndots:3\n"
    )


def test_resolv_conf_dns_search_and_options_override() -> None:
    host = "search corp\nnameserver 10.1.1.1\noptions ndots:3\n"
    text = resolv_conf(host, dns_search=["example.com"], dns_options=["timeout:1"])
    assert text == "search example.com\nnameserver 10.1.1.1\noptions timeout:1\n"
