"""`create`: store a new container (state "created") with its spec, Docker config and host files."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pyctr.errors import NotFoundError, PyctrError
from pyctr.runtime.lifecycle.config_document import config_document
from pyctr.runtime.lifecycle.kill import parse_signal
from pyctr.runtime.state import ContainerRecord, ContainerStore

if TYPE_CHECKING:
    from pyctr.config import Config
    from pyctr.runtime.spec import ContainerSpec, RunOptions


def resolve_image(config: Config, name: str, pull_missing: bool = True, out=None):
    """The image record for `name`, pulling it first when it is not stored (as `docker run` does)."""
    from pyctr.image.store import ImageStore

    store = ImageStore(config.paths)
    try:
        return store.resolve(name)
    except NotFoundError:
        if not pull_missing:
            raise
    from pyctr.image.pull import pull
    from pyctr.image.reference import parse_reference

    out = out or sys.stderr
    print(f"Unable to find image '{parse_reference(name).familiar}' locally", file=out, flush=True)
    return pull(config, name, out=out)


def create(config: Config, options: RunOptions, out=None) -> ContainerRecord:
    """Store a new container (state "created") for `options`: its spec, Docker config and host files."""
    from pyctr.runtime.spec import make_spec, parse_limits

    ports = _port_mappings(options)
    parse_limits(options)  # Docker's CLI refuses `-m 12q` / `--cpus -1` before any pull: check them first
    from pyctr.runtime.lifecycle.run_flags import after_create, image_for_run, validate_options

    validate_options(options)  # --restart, --health-*: refused before any pull, as Docker
    kernel = _kernel_choices(options, out)  # --device, --ipc, --sysctl, ...: refused before any pull too
    if options.stop_signal:
        parse_signal(options.stop_signal)  # Docker: "Invalid signal: X" at create, not at the first stop
    image = image_for_run(config, options, out=out)  # --pull, -q
    from pyctr.runtime.lifecycle.misc_flags import image_for_platform

    image = image_for_platform(config, options, image, out=out)  # --platform
    store = ContainerStore(config.paths)
    from pyctr.runtime.lifecycle.links import check_links_at_create

    check_links_at_create(store, options)  # --link on the default bridge: the targets exist
    from pyctr.runtime.network.usermanager import attach, resolve_for_create

    user_network = resolve_for_create(config, options.network, options.network_aliases, options.ip)
    if user_network is not None:
        options = replace(options, network=user_network.name)
    from pyctr.runtime.volumes import ContainerVolumes

    volumes = ContainerVolumes(config.paths, store, options)

    def build(container_id: str, name: str) -> dict:
        bundle = store.directory(container_id)
        spec = make_spec(image.config, options, container_id, name, bundle, image.layer_dirs,
                         image_id=image.id, volumes_root=config.paths.volumes, kernel=kernel,
                         **volumes.spec_arguments(image.config, options, container_id))
        volumes.prepare(spec)
        _write_host_files(bundle, spec)
        return config_document(spec, options, image.id, image.config, ports)

    record = volumes.create(lambda: store.create(build, options.name))
    if user_network is not None:
        try:
            attach(config, record.id, user_network, options.network_aliases, options.ip)
        except BaseException:
            with contextlib.suppress(PyctrError, OSError):
                store.remove_directory(record.id)
            raise
    after_create(record, options)  # --cidfile
    from pyctr import events

    events.record_container(config.root, record, "create")
    return record


def _kernel_choices(options: RunOptions, out=None):
    """The kernel flags decided against this host's cgroups; dockerd's warnings printed as docker-cli does."""
    from pyctr.runtime import kernel_flags
    from pyctr.runtime.spec import parse_limits

    version, support = kernel_flags.host_support()
    network = "host" if options.network == "host" else "private"
    kernel = kernel_flags.decide(options, network, version, parse_limits(options).memory, support)
    for warning in kernel.resources.warnings:  # dockerd's (the API returns them as Warnings)
        print(f"WARNING: {warning}", file=out or sys.stderr, flush=True)
    return kernel


def _port_mappings(options: RunOptions) -> list:
    """-p and -P, parsed before anything is created so a bad spec costs nothing."""
    if not options.publish and not options.publish_all:
        return []
    from pyctr.runtime.network.publish import parse_publish

    mappings = []
    for spec in options.publish:
        mappings += parse_publish(spec)  # parsed whatever the network: Docker's CLI refuses `-p abc` first
    if options.network in ("none", "host"):
        return []  # Docker: published ports are discarded with these network modes
    return mappings


def _write_host_files(bundle: Path, spec: ContainerSpec) -> None:
    """hostname, hosts and resolv.conf in the container dir; the runtime bind-mounts them over /etc."""
    from pyctr.runtime.network.hostfiles import hosts_file, read_host_resolv_conf, resolv_conf

    _write_text(bundle / "hostname", spec.hostname + "\n")
    if spec.network.mode == "host":
        _write_text(bundle / "hosts", _read_or("/etc/hosts", hosts_file(spec.hostname, None)))
        _write_text(bundle / "resolv.conf", _read_or("/etc/resolv.conf", ""))
        return
    _write_text(bundle / "hosts", hosts_file(spec.hostname, None, spec.network.extra_hosts))
    host_text, upstream = read_host_resolv_conf()
    if spec.network.mode not in ("bridge", "none"):  # a user-defined network: the embedded DNS server
        from pyctr.runtime.network.hostfiles import embedded_resolv_conf

        _write_text(bundle / "resolv.conf", embedded_resolv_conf(host_text, spec.network.dns_search,
                                                                 spec.network.dns_options))
        return
    _write_text(bundle / "resolv.conf", resolv_conf(host_text, spec.network.dns, upstream, spec.network.dns_search,
                                                    spec.network.dns_options))


def _read_or(path: str, default: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def _write_text(path: Path, text: str) -> None:
    from pyctr.fsutil import atomic_write_bytes

    atomic_write_bytes(path, text.encode(), mode=0o644, durable=False)
