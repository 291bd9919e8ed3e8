"""The h-misc flags of run/create, decided purely: --log-driver/--log-opt, --platform, --mac-address,
--dns-search, --dns-option, --link, -a, --detach-keys, --sig-proxy.

`validate_misc_flags` refuses what Docker refuses, in docker-cli's words (its flag parsers and `parse`) or
dockerd's (log driver and options), before anything is pulled or created; `apply_misc_flags` writes the values
where Docker's inspect shows them (HostConfig.LogConfig/DnsSearch/DnsOptions/Links, Config.MacAddress and
Attach*). The doing is elsewhere: the monitor rotates the log (runtime/monitor.py), create writes resolv.conf,
the network code sets the MAC and the link entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyctr.errors import PyctrError, UsageError

if TYPE_CHECKING:
    from pyctr.runtime.spec import RunOptions

ATTACH_STREAMS = ("stdin", "stdout", "stderr")
LOG_DRIVERS = ("json-file", "local", "none")
# dockerd's validators: json-file's ValidateLogOpt and local's; `mode`/`max-buffer-size` are every driver's.
LOG_OPTS = {
    "json-file": ("max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag"),
    "local": ("max-file", "max-size", "compress"),
}
BUILT_IN_LOG_OPTS = ("mode", "max-buffer-size")
# moby daemon/logger/local: what a `local` log keeps unless told otherwise (20 MB per file, 5 files).
LOCAL_DEFAULT_MAX_SIZE = 20 * 1024 * 1024
LOCAL_DEFAULT_MAX_FILE = 5
LOGS_NOT_SUPPORTED = "configured logging driver does not support reading"

_ALPHA = re.compile(r"[a-zA-Z]")
# docker-cli opts.domainRegexp (its `(:?` groups are Go's typo for `(?:`, kept: they match the same text).
_DOMAIN = re.compile(r"^((?:[a-zA-Z0-9]|(?:[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))"
                     r"(?:\.(?:[a-zA-Z0-9]|(?:[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])))*)\.?\s*$")
_MAC_COLON = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")
_MAC_DOTTED = re.compile(r"^[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}$")


def _flag_error(value: str, flag: str, reason: str) -> UsageError:
    """pflag's wording of a value its validator refused."""
    return UsageError(f'invalid argument "{value}" for "{flag}" flag: {reason}')


# ------------------------------------------------------------------------------------------------ networking

def normalized_mac(text: str) -> str:
    """--mac-address as Go's net.ParseMAC reads a 6-byte address (aa:bb:.., aa-bb-.., aabb.ccdd.eeff), in the
    kernel's lower-case colon form; "" when unset. docker-cli's words when it does not parse."""
    value = text.strip()
    if not value:
        return ""
    if _MAC_COLON.match(value):
        return value.replace("-", ":").lower()
    if _MAC_DOTTED.match(value):
        digits = value.replace(".", "").lower()
        return ":".join(digits[i:i + 2] for i in range(0, 12, 2))
    raise UsageError(f"{text} is not a valid mac address")


def check_mac_usable(mac: str) -> None:
    """A multicast address (low bit of the first byte) cannot be an interface's: the kernel refuses it at
    start with EADDRNOTAVAIL; said at create in one line instead of a failed start."""
    if mac and int(mac[:2], 16) & 1:
        raise PyctrError(f"{mac} is a multicast address: cannot assign it to the container's interface")


def normalized_search(domains: list[str]) -> list[str]:
    """--dns-search values as docker-cli's ValidateDNSSearch keeps them ("." = no search line)."""
    result = []
    for raw in domains:
        value = raw.strip(" ")
        if value == ".":
            result.append(value)
            continue
        match = _DOMAIN.match(value) if _ALPHA.search(value) else None
        if match is None or len(match.group(1)) >= 255:
            raise _flag_error(raw, "--dns-search", f"{value} is not a valid domain")
        result.append(match.group(1))
    return result


def parse_link(text: str) -> tuple[str, str]:
    """docker-cli's ParseLink: NAME[:ALIAS] -> (name, alias); `/name:/c/alias` (a stored link) too."""
    if text == "":
        raise _flag_error(text, "--link", "empty string specified for links")
    parts = text.split(":", 2)
    if len(parts) > 2:
        raise _flag_error(text, "--link", f"bad format for links: {text}")
    if len(parts) == 1:
        return text, text
    if parts[0].startswith("/"):
        return parts[0][1:], parts[1].rsplit("/", 1)[-1]
    return parts[0], parts[1]


def normalized_links(links: list[str]) -> list[str]:
    return [":".join(parse_link(link)) for link in links]


def link_env_prefix(alias: str) -> str:
    """Docker's link variables' prefix: the alias upper-cased, `-` as `_` (moby links.Link.ToEnv)."""
    return alias.upper().replace("-", "_")


def link_env(alias: str, child_name: str, ip: str, exposed: list[str], target_env: list[str]) -> list[str]:
    """The variables Docker 20.10 gives a container for `--link target:alias` (moby daemon/links, ToEnv):
    ALIAS_PORT (the lowest exposed port), for each port ALIAS_PORT_<p>_<PROTO>[_ADDR|_PORT|_PROTO], ALIAS_NAME
    and the target's own variables as ALIAS_ENV_<K> (but HOME and PATH). (Docker's extra _START/_END variables
    for runs of consecutive ports are not given.)"""
    prefix = link_env_prefix(alias)
    env = []
    ports = sorted(exposed, key=_port_sort_key)
    if ports:
        port, proto = _split_port(ports[0])
        env.append(f"{prefix}_PORT={proto}://{ip}:{port}")
    for item in ports:
        port, proto = _split_port(item)
        key = f"{prefix}_PORT_{port}_{proto.upper()}"
        env += [f"{key}={proto}://{ip}:{port}", f"{key}_ADDR={ip}", f"{key}_PORT={port}", f"{key}_PROTO={proto}"]
    env.append(f"{prefix}_NAME=/{child_name.lstrip('/')}/{alias}")
    for item in target_env:
        key, sep, value = item.partition("=")
        if sep and key not in ("HOME", "PATH"):
            env.append(f"{prefix}_ENV_{key}={value}")
    return env


def _split_port(item: str) -> tuple[str, str]:
    port, _, proto = item.partition("/")
    return port, proto or "tcp"


def _port_sort_key(item: str) -> tuple[int, str]:
    port, proto = _split_port(item)
    return (int(port) if port.isdigit() else 0, proto)


def link_hosts_line(ip: str, alias: str, target_id: str, target_name: str) -> str:
    """The /etc/hosts line Docker writes for a link: `IP\\talias id12 name` (alias first; no duplicates)."""
    names = []
    for name in (alias, target_id[:12], target_name.lstrip("/")):
        if name not in names:
            names.append(name)
    return f"{ip}\t{' '.join(names)}"


# ------------------------------------------------------------------------------------------------ logging

@dataclass(frozen=True)
class LogConfig:
    """HostConfig.LogConfig and what the writer does with it (max_size -1 = no rotation)."""

    type: str
    config: dict
    max_size: int = -1
    max_file: int = 1

    @property
    def writes(self) -> bool:
        return self.type != "none"

    def to_dict(self) -> dict:
        return {"Type": self.type, "Config": dict(self.config)}


def log_config(driver: str, opts: list[str]) -> LogConfig:
    """--log-driver/--log-opt as docker-cli parses them and dockerd checks them (create) and opens the logger
    (start, said here at create): driver, known keys, max-size > 0, max-file >= 1."""
    config = {}
    for item in opts:
        key, _, value = item.partition("=")
        config[key] = value
    driver = driver or "json-file"
    if driver == "none":
        if opts:
            raise UsageError("invalid logging opts for driver none")
        return LogConfig("none", {})
    if driver not in LOG_DRIVERS:
        raise PyctrError(f"logger: no log driver named '{driver}' is registered")
    for key in config:
        if key not in LOG_OPTS[driver] and key not in BUILT_IN_LOG_OPTS:
            raise PyctrError(f"unknown log opt '{key}' for {driver} log driver")
    if config.get("mode", "blocking") not in ("blocking", "non-blocking", ""):
        raise PyctrError(f"logger: logging mode not supported: {config['mode']}")
    if "max-buffer-size" in config and config.get("mode") != "non-blocking":
        raise PyctrError("logger: max-buffer-size option is only supported with 'mode=non-blocking'")
    default_size, default_files = (LOCAL_DEFAULT_MAX_SIZE, LOCAL_DEFAULT_MAX_FILE) if driver == "local" else (-1, 1)
    max_size = _max_size(config["max-size"]) if "max-size" in config else default_size
    max_file = _max_file(config["max-file"]) if "max-file" in config else default_files
    if "compress" in config:  # accepted as Docker's; the rotated files are kept uncompressed (logs reads the same)
        compress = _parse_bool(config["compress"])
        if compress and (max_file == 1 or max_size == -1):
            raise _logger_error("compress cannot be true when max-file is less than 2 or max-size is not set")
    return LogConfig(driver, config, max_size, max_file)


def _parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise _logger_error(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def _logger_error(reason: str) -> PyctrError:
    return PyctrError(f"failed to initialize logging driver: {reason}")


def _max_size(text: str) -> int:
    """go-units FromHumanSize (decimal units: 10k = 10000, as Docker's json-file reads max-size)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)[bB]?\s*", text)
    if not match:
        raise _logger_error(f"invalid size: '{text}'")
    size = int(float(match.group(1)) * 1000 ** " kmgtp".index(match.group(2).lower() or " "))
    if size <= 0:
        raise _logger_error("max-size must be a positive number")
    return size


def _max_file(text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise _logger_error(f'strconv.Atoi: parsing "{text}": invalid syntax')
    if int(text) < 1:
        raise _logger_error("max-file cannot be less than 1")
    return int(text)


def host_log_config(host_config: dict) -> LogConfig:
    """The LogConfig a stored container was created with (json-file for one made before the flag existed)."""
    stored = host_config.get("LogConfig") or {}
    if stored.get("Type") == "none":
        return LogConfig("none", {})
    opts = [f"{k}={v}" for k, v in (stored.get("Config") or {}).items()]
    try:
        return log_config(stored.get("Type") or "json-file", opts)
    except PyctrError:
        return LogConfig("json-file", {})


def check_logs_readable(host_config: dict) -> None:
    """`logs` of a container whose log driver keeps nothing: dockerd's ErrReadLogsNotSupported."""
    if not host_log_config(host_config).writes:
        raise PyctrError(LOGS_NOT_SUPPORTED)


def monitor_log_argument(config: LogConfig) -> str:
    """The monitor's LOG argument: 0 (no log), 1 (append, no rotation) or 1:MAX_SIZE:MAX_FILE."""
    if not config.writes:
        return "0"
    return "1" if config.max_size < 0 else f"1:{config.max_size}:{config.max_file}"


# ------------------------------------------------------------------------------------------------ run's attach

def parse_attach(values: list[str]) -> list[str]:
    """-a as docker-cli's validateAttach: stdin|stdout|stderr in any case, kept lower-case."""
    result = []
    for value in values:
        if value.lower() not in ATTACH_STREAMS:
            raise _flag_error(value, "-a, --attach", "valid streams are STDIN, STDOUT and STDERR")
        result.append(value.lower())
    return result


def attached_streams(options: RunOptions) -> tuple[bool, bool, bool]:
    """(stdin, stdout, stderr) Config.Attach*: -i attaches stdin; without -a, stdout and stderr (docker-cli)."""
    wanted = set(parse_attach(options.attach))
    if options.detach:
        return False, False, False
    stdin = "stdin" in wanted or options.interactive
    if not wanted:
        return stdin, True, True
    return stdin, "stdout" in wanted, "stderr" in wanted


# ------------------------------------------------------------------------------------------------ platform

_PLATFORM_COMPONENT = re.compile(r"^[A-Za-z0-9_-]+$")
KNOWN_OS = ("aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux", "nacl",
            "netbsd", "openbsd", "plan9", "solaris", "windows", "zos")
KNOWN_ARCH = ("386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le", "loong64", "mips",
              "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "riscv", "riscv64", "s390", "s390x",
              "sparc", "sparc64", "wasm", "aarch64", "x86_64", "x86-64", "i386", "armhf", "armel")


def check_platform(text: str) -> None:
    """--platform's syntax, in containerd's platforms.Parse words (dockerd's answer to a bad one); whether the
    image and the host have it is decided when the image is chosen (`platform_mismatch`)."""
    if not text:
        return
    for part in text.split("/"):
        if not _PLATFORM_COMPONENT.match(part):
            raise PyctrError(f'"{part}" is an invalid component of "{text}": platform specifier component must '
                             f'match "^[A-Za-z0-9_-]+$": invalid argument')
    parts = text.lower().split("/")
    if len(parts) == 1 and parts[0] not in KNOWN_OS + KNOWN_ARCH:
        raise PyctrError(f'"{text}": unknown operating system or architecture: invalid argument')
    if len(parts) > 3:
        raise PyctrError(f'"{text}": cannot parse platform specifier: invalid argument')


def wanted_platform(text: str):
    """The Platform --platform names (an OS alone means the host's architecture on it)."""
    from pyctr.image.manifest import Platform, normalize_platform, parse_platform
    from pyctr.platform_info import host_platform

    if text.lower() in KNOWN_OS:
        return normalize_platform(Platform(text.lower(), *host_platform()[1:]))
    return parse_platform(text.lower())


def platform_mismatch(wanted: str, image_config: dict) -> str | None:
    """Docker 20.10's words when a stored image is not of the wanted platform, else None."""
    if not wanted:
        return None
    from pyctr.image.manifest import Platform, normalize_platform

    want = wanted_platform(wanted)
    have = normalize_platform(Platform(image_config.get("os") or "linux", image_config.get("architecture") or "",
                                       image_config.get("variant") or ""))
    if want.os == have.os and want.architecture == have.architecture and (
            not want.variant or not have.variant or want.variant == have.variant):
        return None
    return f"wanted {platform_text(want)}, actual: {platform_text(have)}"


def platform_text(platform) -> str:
    return "/".join(p for p in (platform.os, platform.architecture, platform.variant) if p)


def image_for_platform(config, options: RunOptions, image, out=None):
    """`image` when --platform is unset or matches it; else the wanted platform's image pulled (Docker 20.10:
    a stored image of another platform counts as missing), refused with `--pull never`. An image the host
    cannot run is refused at create (Docker would fail to exec it: `exec format error`)."""
    wanted = options.platform
    if not wanted:
        return image
    if platform_mismatch(wanted, _image_config(image)) is None:
        return _check_runnable(image)
    from pyctr.errors import NotFoundError
    from pyctr.image.reference import parse_reference

    if options.pull == "never":
        raise NotFoundError(f"image with reference {options.image} was found but does not match the specified "
                            f"platform: {platform_mismatch(wanted, _image_config(image))}")
    import io
    import sys

    from pyctr.image.pull import pull

    stream = io.StringIO() if options.quiet else (out or sys.stderr)
    if options.pull != "always":
        print(f"Unable to find image '{parse_reference(options.image).familiar}' locally", file=stream, flush=True)
    pulled = pull(config, options.image, platform=platform_text(wanted_platform(wanted)), quiet=options.quiet,
                  out=stream)
    return _check_runnable(pulled)


def _image_config(image) -> dict:
    return image.config if isinstance(image.config, dict) else {}


def _check_runnable(image):
    """The host runs linux images of its own architecture only (no binfmt emulation here)."""
    from pyctr.image.manifest import Platform, normalize_platform
    from pyctr.platform_info import host_platform

    config = _image_config(image)
    host = normalize_platform(Platform(*host_platform()))
    if not config.get("architecture"):
        return image
    mismatch = platform_mismatch(platform_text(host), config)
    if mismatch is not None:
        raise PyctrError(f"image's platform ({mismatch.split('actual: ')[1]}) does not match the host's "
                         f"({platform_text(host)}): exec format error")
    return image


# ------------------------------------------------------------------------------------------------ together

def validate_misc_flags(options: RunOptions) -> None:
    """Every h-misc flag, refused as Docker refuses it, before any pull."""
    if options.attach and options.detach:
        raise UsageError("Conflicting options: -a and -d")
    parse_attach(options.attach)
    check_mac_usable(normalized_mac(options.mac_address))
    if options.mac_address and options.network == "host":  # runconfig.ErrConflictNetworkAndMac
        raise PyctrError("conflicting options: mac-address and the network mode")
    normalized_search(options.dns_search)
    normalized_links(options.links)
    if options.links and options.network == "host":  # dockerd's runconfig.ErrConflictHostNetworkAndLinks
        raise PyctrError("conflicting options: host type networking can't be used with links. This would result "
                         "in undefined behavior")
    log_config(options.log_driver, options.log_opts)
    if options.detach_keys is not None:
        from pyctr.runtime.attach import parse_detach_keys

        parse_detach_keys(options.detach_keys)
    check_platform(options.platform)


def apply_misc_flags(document: dict, options: RunOptions) -> dict:
    """HostConfig/Config keys of the h-misc flags, where Docker's inspect shows them."""
    host, config = document["HostConfig"], document["Config"]
    host["LogConfig"] = log_config(options.log_driver, options.log_opts).to_dict()
    host["DnsSearch"] = normalized_search(options.dns_search)
    host["DnsOptions"] = list(options.dns_options)
    name = document.get("Name", "").lstrip("/")
    host["Links"] = [f"/{target}:/{name}/{alias}" for target, alias in map(parse_link, options.links)] or None
    if options.mac_address:
        config["MacAddress"] = options.mac_address
    if options.attach:
        config["AttachStdin"], config["AttachStdout"], config["AttachStderr"] = attached_streams(options)
    return document
