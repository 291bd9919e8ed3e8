"""Where pyctr keeps its state and what the configuration file may say.

The root directory (PYCTR_ROOT / --root) holds everything persistent; the
TOML file (PYCTR_CONFIG / --config) holds settings. Both are read once per
command. Validation is strict and names the file and key, because a typo in
`insecure_registries` silently sending credentials over HTTPS-less links, or a
bridge subnet colliding with Docker's, is worse than refusing to start.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pyctr.errors import ConfigError

DEFAULT_ROOT = "/var/lib/pyctr"
DEFAULT_CONFIG = "/etc/pyctr/config.toml"
DEFAULT_BRIDGE = "pyctr0"
# Not Docker's 172.17.0.0/16, podman's 10.88.0.0/16 nor podman's extra 10.89.x.
DEFAULT_SUBNET = "10.77.0.0/16"
DOCKER_HUB = "docker.io"

_BRIDGE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


@dataclass(frozen=True)
class NetworkConfig:
    """The default bridge network's settings."""

    bridge: str = DEFAULT_BRIDGE
    subnet: str = DEFAULT_SUBNET
    dns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    """Everything a command needs to know about this installation."""

    root: Path = Path(DEFAULT_ROOT)
    config_file: Path | None = None
    registry_mirrors: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    network: NetworkConfig = field(default_factory=NetworkConfig)
    debug: bool = False

    @property
    def paths(self) -> Paths:
        return Paths(self.root)


@dataclass(frozen=True)
class Paths:
    """The layout of the root directory: one home per kind of state."""

    root: Path

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def containers(self) -> Path:
        return self.root / "containers"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def build_cache(self) -> Path:
        return self.root / "buildcache"

    @property
    def network(self) -> Path:
        return self.root / "network"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def build_steps(self) -> Path:
        """One empty file per build RUN step that holds a cgroup: what `system check` removes after a killed build."""
        return self.root / "build-steps"


def load_config(
    root: str | None = None, config_file: str | None = None, debug: bool = False
) -> Config:
    """Build the Config from the CLI options, then the environment, then defaults."""
    root = root or os.environ.get("PYCTR_ROOT") or DEFAULT_ROOT
    explicit = config_file or os.environ.get("PYCTR_CONFIG")
    path = Path(explicit or DEFAULT_CONFIG)
    data: dict = {}
    if path.exists():
        data = _read_toml(path)
    elif explicit:
        raise ConfigError(f"config file {path}: no such file")
    return _from_mapping(data, path, Path(root), debug)


def _read_toml(path: Path) -> dict:
    import tomllib

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: invalid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror}") from None


def _from_mapping(data: dict, path: Path, root: Path, debug: bool) -> Config:
    known = {"registry_mirrors", "insecure_registries", "network"}
    for key in data:
        if key not in known:
            raise ConfigError(f"config file {path}: unknown key '{key}'")
    mirrors = _string_list(data, "registry_mirrors", path)
    for m in mirrors:
        if not re.match(r"^https?://[^/\s]+/?$", m):
            raise ConfigError(
                f"config file {path}: key 'registry_mirrors': '{m}' is not an http(s)://host[:port] URL"
            )
    insecure = _string_list(data, "insecure_registries", path)
    for host in insecure:
        if "/" in host or not host:
            raise ConfigError(
                f"config file {path}: key 'insecure_registries': '{host}' must be host[:port]"
            )
    net = _network(data.get("network", {}), path)
    return Config(
        root=root,
        config_file=path,
        registry_mirrors=tuple(m.rstrip("/") for m in mirrors),
        insecure_registries=tuple(insecure),
        network=net,
        debug=debug,
    )


def _string_list(data: dict, key: str, path: Path) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"config file {path}: key '{key}' must be a list of strings")
    return value


def _network(value: object, path: Path) -> NetworkConfig:
    if not isinstance(value, dict):
        raise ConfigError(f"config file {path}: key 'network' must be a table")
    for key in value:
        if key not in {"bridge", "subnet", "dns"}:
            raise ConfigError(f"config file {path}: unknown key 'network.{key}'")
    bridge = value.get("bridge", DEFAULT_BRIDGE)
    if not isinstance(bridge, str) or not _BRIDGE_NAME.match(bridge):
        raise ConfigError(
            f"config file {path}: key 'network.bridge': must be 1-15 letters, digits, '_.-'"
        )
    subnet = value.get("subnet", DEFAULT_SUBNET)
    try:
        net = ipaddress.ip_network(subnet, strict=True)
    except (ValueError, TypeError):
        raise ConfigError(
            f"config file {path}: key 'network.subnet': '{subnet}' is not an IPv4 network"
        ) from None
    if net.version != 4 or net.prefixlen > 30:
        raise ConfigError(
            f"config file {path}: key 'network.subnet': need an IPv4 network of /30 or larger"
        )
    dns = _string_list(value, "dns", path) if "dns" in value else []
    for server in dns:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise ConfigError(
                f"config file {path}: key 'network.dns': '{server}' is not an IP address"
            ) from None
    return NetworkConfig(bridge=bridge, subnet=str(net), dns=tuple(dns))
