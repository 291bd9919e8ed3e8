"""What `ps` lists: a PsItem per container record, and (for `ps -s`) the sizes dockerd reports.

Reading records into items lives here, not in the click command, so the command only parses, calls and prints.
Imports stay inside the functions: `pyctr ps` must not pay for the image store unless `-s` asks for sizes.
"""

from __future__ import annotations


def ps_items(records) -> list:
    """One PsItem per container record: what `ps` filters and prints, read from its config and state."""
    from pyctr.output.timefmt import parse_rfc3339
    from pyctr.platform_info import host_platform
    from pyctr.runtime.inspect import network_name
    from pyctr.runtime.ps import PsItem

    os_name, arch, variant = host_platform()  # containers run the host's platform
    platform = {"architecture": arch, "os": os_name, "variant": variant}
    items = []
    for r in records:
        cfg = r.config
        ports = r.state.network.get("Ports") if r.state.network else None
        items.append(PsItem(
            id=r.id, name=r.name, image=cfg.get("Config", {}).get("Image", cfg.get("Image", "")),
            argv=[cfg.get("Path", "")] + list(cfg.get("Args", [])), created=parse_rfc3339(r.created),
            status=r.state.status, exit_code=r.state.exit_code, started=parse_rfc3339(r.state.started_at),
            finished=parse_rfc3339(r.state.finished_at), ports=ports if ports is not None else cfg.get("Ports", []),
            labels=cfg.get("Config", {}).get("Labels") or {},
            network=network_name(cfg.get("HostConfig", {})), platform=platform, image_id=cfg.get("Image", ""),
            mounts=cfg.get("MountPoints") or [],
            health=(r.state.health or {}).get("Status", ""),
        ))
    return items


def with_sizes(paths, items: list) -> list:
    """dockerd's SizeRw (the container's upper dir, as overlay2 measures it) and SizeRootFs (plus its image)."""
    from dataclasses import replace

    from pyctr.errors import PyctrError
    from pyctr.image.store import ImageStore, directory_size
    from pyctr.runtime.state import ContainerStore

    store, images = ContainerStore(paths), ImageStore(paths)
    sized = []
    for item in items:
        rw = directory_size(store.directory(item.id) / "rootfs" / "upper")
        try:
            image_size = images.get_image(item.image_id).size if item.image_id else 0
        except PyctrError:
            image_size = 0
        sized.append(replace(item, size_rw=rw, size_root_fs=rw + image_size))
    return sized
