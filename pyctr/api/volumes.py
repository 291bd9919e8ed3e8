"""Volume endpoints (docker volume ..., -v named:/path, compose, docker-py): parse (netvol.py), call
pyctr.runtime.volumes, serialise. 404 an unknown volume, 409 one in use, 400 a bad name or option."""

from __future__ import annotations

from pyctr.api import documents, netvol
from pyctr.api.http import HttpError, Request
from pyctr.api.routes import route
from pyctr.api.service import config
from pyctr.errors import NotFoundError


def _store():
    from pyctr.runtime.volumes import VolumeStore

    return VolumeStore(config().paths)


@route("GET", "/volumes")
def list_volumes(request: Request) -> None:
    from pyctr.runtime.volumes import volume_matches

    filters = netvol.volume_list_filters(documents.parse_filters(request.arg("filters")))
    store = _store()
    refs = store.refs()
    chosen = [v for v in store.list() if volume_matches(v, len(refs.get(v.name, [])), filters)]
    request.send_json(netvol.volume_list(chosen))


@route("POST", "/volumes/create")
def create(request: Request) -> None:
    wanted = netvol.volume_create(request.json(default={}))
    volume = _store().create(wanted.name, wanted.driver, wanted.labels or None, wanted.options or None)
    request.send_json(netvol.volume_document(volume), status=201)


@route("GET", "/volumes/{name}")
def inspect(request: Request) -> None:
    name = request.params["name"]
    try:
        volume = _store().get(name)
    except NotFoundError:
        raise HttpError(404, f"get {name}: no such volume") from None
    request.send_json(netvol.volume_document(volume))


@route("DELETE", "/volumes/{name}")
def remove(request: Request) -> None:
    name = request.params["name"]
    try:
        _store().remove(name, force=request.flag("force"))
    except NotFoundError:
        raise HttpError(404, f"get {name}: no such volume") from None
    request.send_empty()


@route("POST", "/volumes/prune")
def prune(request: Request) -> None:
    with_labels, without_labels = netvol.prune_label_filters(documents.parse_filters(request.arg("filters")))
    removed, reclaimed = _store().prune(with_labels, without_labels)
    request.send_json({"VolumesDeleted": removed, "SpaceReclaimed": reclaimed})
