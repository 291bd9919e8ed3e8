"""Network endpoints (docker network ..., compose, testcontainers): parse (netvol.py), call
pyctr.runtime.network.usermanager, serialise. dockerd's statuses: 404 unknown, 409 a name taken, 403 the
removal of a pre-defined network or of one with containers on it."""

from __future__ import annotations

from pyctr.api import documents, netvol
from pyctr.api.http import HttpError, Request
from pyctr.api.routes import route
from pyctr.api.service import config
from pyctr.errors import NotFoundError


def _manager():
    from pyctr.runtime.network import usermanager

    return usermanager


def _document(ref: str) -> dict:
    from pyctr.runtime.network.usernet import find_document

    try:
        return find_document(_manager().network_documents(config()), ref)
    except NotFoundError:
        raise HttpError(404, f"network {ref} not found") from None


@route("GET", "/networks")
def list_networks(request: Request) -> None:
    from pyctr.runtime.network.usernet import matches

    filters = netvol.network_list_filters(documents.parse_filters(request.arg("filters")))
    found = [d for d in _manager().network_documents(config()) if matches(d, filters, bool(d["Containers"]))]
    request.send_json(found)


@route("GET", "/networks/{id}")
def inspect(request: Request) -> None:
    request.send_json(_document(request.params["id"]))


@route("POST", "/networks/create")
def create(request: Request) -> None:
    wanted = netvol.network_create(request.json(default={}))
    record = _manager().create_network(
        config(), wanted.name, driver=wanted.driver, subnets=wanted.subnets, gateways=wanted.gateways,
        ip_ranges=wanted.ip_ranges, internal=wanted.internal, labels=wanted.labels, options=wanted.options)
    request.send_json({"Id": record.id, "Warning": ""}, status=201)


@route("DELETE", "/networks/{id}")
def remove(request: Request) -> None:
    from pyctr.runtime.network.usernet import ActiveEndpoints, PredefinedNetwork

    ref = request.params["id"]
    try:
        _manager().remove_network(config(), ref)
    except (ActiveEndpoints, PredefinedNetwork) as e:
        raise HttpError(403, e.message) from None
    except NotFoundError:
        raise HttpError(404, f"network {ref} not found") from None
    request.send_empty()


@route("POST", "/networks/{id}/connect")
def connect(request: Request) -> None:
    wanted = netvol.network_connect(request.json(default={}))
    _manager().connect_container(config(), wanted.container, request.params["id"], wanted.aliases, wanted.ip)
    request.send_empty(200)


@route("POST", "/networks/{id}/disconnect")
def disconnect(request: Request) -> None:
    container, force = netvol.network_disconnect(request.json(default={}))
    _manager().disconnect_container(config(), container, request.params["id"], force)
    request.send_empty(200)


@route("POST", "/networks/prune")
def prune(request: Request) -> None:
    with_labels, without_labels = netvol.prune_label_filters(documents.parse_filters(request.arg("filters")))
    request.send_json({"NetworksDeleted": _manager().prune_networks(config(), with_labels, without_labels)})
