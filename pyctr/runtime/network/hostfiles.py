"""The container's /etc/hosts and /etc/resolv.conf contents, pure.

Docker writes these files per container (bind-mounted over the image's) so
name resolution inside works without the image cooperating; the exact lines
matter because tools and tests grep them.
"""

from __future__ import annotations

import ipaddress

from pyctr.errors import UsageError

DEFAULT_HOSTS_LINES = (
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
)
FALLBACK_DNS = ("8.8.8.8", "8.8.4.4")
SYSTEMD_RESOLVED_STUB = "127.0.0.53"
SYSTEMD_RESOLVED_CONF = "/run/systemd/resolve/resolv.conf"


def parse_add_host(entry: str) -> tuple[str, str]:
    """`--add-host name:ip` -> (name, ip); the IP may be IPv6 (split at the first colon)."""
    name, sep, ip = entry.partition(":")
    if not sep or not name or not ip:
        raise UsageError(f"bad format for add-host: {entry!r}")
    candidate = ip[1:-1] if ip.startswith("[") and ip.endswith("]") else ip
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        raise UsageError(f"invalid IP address in add-host: {ip!r}") from None
    return name, candidate


def hosts_file(hostname: str, ip: str | None, extra_hosts: list[str] | tuple[str, ...] = (),
               extra_lines: list[str] | tuple[str, ...] = ()) -> str:
    """Docker's /etc/hosts: the fixed lines, `--add-host` entries, `extra_lines` (legacy --link entries),
    then `<ip>\t<hostname>`."""
    lines = list(DEFAULT_HOSTS_LINES)
    for entry in extra_hosts:
        name, address = parse_add_host(entry)
        lines.append(f"{address}\t{name}")
    lines += list(extra_lines)
    if ip:
        lines.append(f"{ip}\t{hostname}")
    return "\n".join(lines) + "\n"


def resolv_conf(
    host_text: str,
    dns_servers: list[str] | tuple[str, ...] = (),
    systemd_resolved_text: str | None = None,
    dns_search: list[str] | tuple[str, ...] = (),
    dns_options: list[str] | tuple[str, ...] = (),
) -> str:
    """The container's resolv.conf from the host's, following Docker's rules.

    If the host only points at systemd-resolved's stub (127.0.0.53, unreachable
    from another network namespace) the caller passes the real upstream file as
    `systemd_resolved_text`. Loopback nameservers are dropped for the same
    reason; with none left Docker falls back to Google's public resolvers.
    With `--dns`/`--dns-search`/`--dns-option` Docker writes a fresh file:
    search, nameservers, options, each overridden or taken from the host.
    """
    text = host_text
    if systemd_resolved_text is not None and _nameservers(host_text) == [SYSTEMD_RESOLVED_STUB]:
        text = systemd_resolved_text
    filtered = [line for line in text.splitlines() if not _is_loopback_nameserver_line(line)]
    if not (dns_servers or dns_search or dns_options):
        lines = _strip_trailing_blank(filtered)
        if not _nameservers("\n".join(lines)):
            lines += [f"nameserver {s}" for s in FALLBACK_DNS]
        return "\n".join(lines) + "\n"
    servers = list(dns_servers) or _nameservers("\n".join(filtered)) or list(FALLBACK_DNS)
    search = list(dns_search) or _last_directive(filtered, "search")
    options = list(dns_options) or _last_directive(filtered, "options")
    lines = []
    if search and search != ["."]:
        lines.append("search " + " ".join(search))
    lines += [f"nameserver {s}" for s in servers]
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


EMBEDDED_DNS = "127.0.0.11"


def embedded_resolv_conf(host_text: str, dns_search: list[str] | tuple[str, ...] = (),
                         dns_options: list[str] | tuple[str, ...] = ()) -> str:
    """A container on a user-defined network asks pyctr's embedded server (Docker's rule): the host's search
    domains and options kept, `nameserver 127.0.0.11`, and `ndots:0` unless an ndots option is set already."""
    lines = host_text.splitlines()
    search = list(dns_search) or _last_directive(lines, "search")
    options = list(dns_options) or _last_directive(lines, "options")
    if not any(o.startswith("ndots:") for o in options):
        options.append("ndots:0")
    out = []
    if search and search != ["."]:
        out.append("search " + " ".join(search))
    out.append(f"nameserver {EMBEDDED_DNS}")
    out.append("options " + " ".join(options))
    return "\n".join(out) + "\n"


def _is_loopback_nameserver_line(line: str) -> bool:
    words = line.split()
    return len(words) >= 2 and words[0] == "nameserver" and _is_loopback(words[1])


def _last_directive(lines: list[str], keyword: str) -> list[str]:
    values: list[str] = []
    for line in lines:
        words = line.split()
        if words and words[0] == keyword:
            values = words[1:]
    return values


def read_host_resolv_conf(path: str = "/etc/resolv.conf") -> tuple[str, str | None]:
    """The host's resolv.conf text and, when it only names the systemd stub, the upstream one."""
    host_text = _read_or_empty(path)
    upstream = None
    if _nameservers(host_text) == [SYSTEMD_RESOLVED_STUB]:
        upstream = _read_or_empty(SYSTEMD_RESOLVED_CONF) or None
    return host_text, upstream


def _read_or_empty(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _nameservers(text: str) -> list[str]:
    servers = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            servers.append(words[1])
    return servers


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def _strip_trailing_blank(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines.pop()
    return lines
