"""Legacy `--link NAME[:ALIAS]` on the default bridge (moby daemon/links): checked at create, resolved at
each start (the target's address may change), giving the container `ALIAS_*` variables and an /etc/hosts
line. On a user-defined network a link is only a DNS alias (the embedded DNS server answers it).

The decisions (variables, hosts line, wording) are misc_flags.py's pure functions; this module reads the
container store.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pyctr.errors import NotFoundError, PyctrError, UsageError

if TYPE_CHECKING:
    from pyctr.runtime.spec import ContainerSpec, RunOptions
    from pyctr.runtime.state import ContainerStore


@dataclass(frozen=True)
class LinkedTarget:
    """A running container a link points at, as the linking container sees it."""

    alias: str
    env: list[str]
    hosts_line: str


def uses_legacy_links(network_mode: str) -> bool:
    return network_mode in ("bridge", "default")


def check_links_at_create(store: ContainerStore, options: RunOptions) -> None:
    """dockerd's registerLinks: each target must exist and not be on the host's network (default bridge only)."""
    if not options.links or not uses_legacy_links(options.network):
        return
    from pyctr.runtime.lifecycle.misc_flags import parse_link

    for link in options.links:
        name, _ = parse_link(link)
        try:
            target = store.get(name)
        except NotFoundError as e:
            raise UsageError(f"could not get container for {name}: {e.message}") from None
        if (target.config.get("HostConfig") or {}).get("NetworkMode") == "host":
            raise PyctrError("conflicting options: host type networking can't be used with links. This would "
                             "result in undefined behavior")


def resolve_legacy_links(store: ContainerStore, spec: ContainerSpec) -> list[LinkedTarget]:
    """At start: each target, running, with its address now (dockerd's setupLinkedContainers and its words)."""
    from pyctr.runtime.lifecycle.misc_flags import link_env, link_hosts_line, parse_link

    if not spec.network.links or not uses_legacy_links(spec.network.mode):
        return []
    targets = []
    for link in spec.network.links:
        name, alias = parse_link(link)
        full_alias = f"/{spec.name.lstrip('/')}/{alias}"
        try:
            record = store.get(name)
        except NotFoundError:
            raise PyctrError(f"Cannot link to a non running container: /{name.lstrip('/')} AS {full_alias}") \
                from None
        target_name = str(record.config.get("Name") or name).lstrip("/")
        ip = (record.state.network or {}).get("IPAddress") if record.state.running else None
        if not ip:
            raise PyctrError(f"Cannot link to a non running container: /{target_name} AS {full_alias}")
        docker_config = record.config.get("Config") or {}
        exposed = list(docker_config.get("ExposedPorts") or {})
        env = link_env(alias, spec.name, ip, exposed, list(docker_config.get("Env") or []))
        hostname = str(docker_config.get("Hostname") or record.id[:12])
        targets.append(LinkedTarget(alias, env, link_hosts_line(ip, alias, hostname, target_name)))
    return targets


def with_link_env(spec: ContainerSpec, targets: list[LinkedTarget]) -> ContainerSpec:
    """The spec whose process has the links' variables where Docker puts them: after PATH, HOSTNAME (and TERM),
    before the image's and the user's variables, which win over them."""
    if not targets:
        return spec
    env = list(spec.process.env)
    base = 3 if len(env) > 2 and env[2].startswith("TERM=") and spec.process.terminal else 2
    rest_keys = {item.split("=", 1)[0] for item in env[base:]}
    linked = [item for t in targets for item in t.env if item.split("=", 1)[0] not in rest_keys]
    return replace(spec, process=replace(spec.process, env=env[:base] + linked + env[base:]))
