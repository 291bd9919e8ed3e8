"""Image and build endpoints: parse, call pyctr.image / pyctr.build, serialise (progress as Docker's JSON stream)."""

from __future__ import annotations

from pathlib import Path

from pyctr.api import documents
from pyctr.api.http import HttpError, Request
from pyctr.api.routes import route
from pyctr.api.service import config
from pyctr.api.streams import JsonLines, error_message
from pyctr.errors import PyctrError

MAX_BUILD_CONTEXT = 16 << 30


def _store():
    from pyctr.image.store import ImageStore

    return ImageStore(config().paths)


@route("GET", "/images/json")
def list_images(request: Request) -> None:
    from pyctr.image.listing import image_rows

    filters = documents.parse_filters(request.arg("filters"))
    reference = (filters.get("reference") or [None])[0] or request.arg("filter")
    seen, summaries = set(), []
    for row in image_rows(_store(), request.flag("all"), reference):
        image = row["image"]
        if image.id in seen:
            continue
        seen.add(image.id)
        if "dangling" in filters and (filters["dangling"][0] in ("true", "1")) == bool(image.repo_tags):
            continue
        summaries.append(documents.image_summary(image, None))
    request.send_json(summaries)


@route("GET", "/images/{name:path}/json")
def inspect(request: Request) -> None:
    request.send_json(_store().resolve(request.params["name"]).inspect())


@route("GET", "/images/{name:path}/history")
def history(request: Request) -> None:
    from pyctr.image.listing import history_image_ids

    image = _store().resolve(request.params["name"])
    rows = len([h for h in image.config.get("history") or [] if isinstance(h, dict)]) or len(image.layers)
    request.send_json(documents.history_entries(image, history_image_ids(image, rows)))


@route("POST", "/images/{name:path}/tag")
def tag(request: Request) -> None:
    from pyctr.image.reference import parse_reference

    store = _store()
    image = store.resolve(request.params["name"])
    repo = request.arg("repo")
    if not repo:
        raise HttpError(400, "repository name must have at least one component")
    target = f"{repo}:{request.arg('tag')}" if request.arg("tag") else repo
    store.tag(parse_reference(target), image.id)
    request.send_empty(201)


@route("DELETE", "/images/{name:path}")
def remove(request: Request) -> None:
    from pyctr.image.remove import remove_image
    from pyctr.runtime.usage import image_users

    lines = remove_image(_store(), request.params["name"], force=request.flag("force"),
                         prune=not request.flag("noprune"), in_use=image_users(config().paths))
    answer = []
    for line in lines:
        word, _, value = line.partition(": ")
        answer.append({"Untagged": value} if word == "Untagged" else {"Deleted": value})
    request.send_json(answer)


@route("POST", "/images/create")
def pull(request: Request) -> None:
    """Pull with Docker's JSON progress stream; a failure after the headers is an in-stream error."""
    from pyctr.image.pull import pull as pull_image
    from pyctr.image.reference import parse_reference

    image = request.arg("fromImage")
    if not image:
        raise HttpError(400, "fromSrc (import) is not supported; give fromImage")
    tag = request.arg("tag")
    name = image if not tag else (f"{image}@{tag}" if tag.startswith("sha256:") else f"{image}:{tag}")
    ref = parse_reference(name)
    stream = request.stream()
    out = JsonLines(stream.write_json)
    try:
        pull_image(config(), str(ref), platform=request.arg("platform") or None, out=out)
    except PyctrError as e:
        stream.write_json(error_message(e.message))
    stream.close()


@route("POST", "/images/{name:path}/push")
def push(request: Request) -> None:
    from pyctr.image.push import push as push_image

    name = request.params["name"]
    if request.arg("tag"):
        name = f"{name}:{request.arg('tag')}"
    stream = request.stream()
    out = JsonLines(stream.write_json)
    try:
        digest = push_image(config(), name, out=out)
        stream.write_json({"progressDetail": {}, "aux": {"Tag": request.arg("tag") or "latest", "Digest": digest}})
    except PyctrError as e:
        stream.write_json(error_message(e.message))
    stream.close()


@route("GET", "/images/search")
def search(request: Request) -> None:
    raise HttpError(501, "search is not supported by pyctr")


def build_options(request: Request, body):
    """The /build query parameters -> BuildOptions (the tar context is read from `body` by the builder)."""
    from pyctr.build.executor import BuildOptions
    from pyctr.image.reference import parse_reference

    tags = tuple(request.query.get("t", []))
    for tag in tags:
        parse_reference(tag)  # a bad tag is refused before the context is read
    build_args = {k: v for k, v in (request.json_arg("buildargs", {}) or {}).items() if v is not None}
    labels = request.json_arg("labels", {}) or {}
    dockerfile = request.arg("dockerfile")
    return BuildOptions(context_dir=Path("."), dockerfile=Path(dockerfile) if dockerfile else None, tags=tags,
                        build_args={str(k): str(v) for k, v in build_args.items()},
                        target=request.arg("target") or None,
                        no_cache=request.flag("nocache"), quiet=request.flag("q"),
                        network=request.arg("networkmode") or "default",
                        labels={str(k): str(v) for k, v in labels.items()}, context_stream=body)


@route("POST", "/build")
def build(request: Request) -> None:
    """The classic builder's stream: `stream` lines, `aux.ID`, or `errorDetail`; the context tar goes
    through the build package's fd-based extractor (hostile entries refused)."""
    from pyctr.build.executor import build as run_build

    if request.arg("remote"):
        raise HttpError(400, "remote build contexts are not supported by pyctr")
    options = build_options(request, request.body(limit=MAX_BUILD_CONTEXT))
    stream = request.stream()

    def say(line: str) -> None:
        stream.write_json({"stream": line + "\n"})

    try:
        image_id = run_build(config(), options, say, say)
        stream.write_json({"aux": {"ID": image_id}})
    except PyctrError as e:
        stream.write_json(error_message(e.message))
    except HttpError as e:
        stream.write_json(error_message(e.message))
    stream.close()


@route("POST", "/build/prune")
def build_prune(request: Request) -> None:
    request.send_json({"CachesDeleted": [], "SpaceReclaimed": 0})



# -- save, load, prune, commit -------------------------------------------------------------------------------

MAX_LOAD_BODY = 64 << 30


class LazyTarResponse:
    """A binary file whose first write starts the chunked response: whatever the producer refuses before
    writing (an image that does not exist) is still a status with Docker's `{"message": ...}`."""

    def __init__(self, request: Request, content_type: str = "application/x-tar") -> None:
        self._request = request
        self._content_type = content_type
        self._stream = None
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        if len(self._buffer) >= 1 << 16:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            if self._stream is None:
                self._stream = self._request.stream(self._content_type)
            self._stream.write(bytes(self._buffer))
            self._buffer.clear()

    def close(self) -> None:
        self.flush()
        if self._stream is None:
            self._stream = self._request.stream(self._content_type)
        self._stream.close()


def _save(request: Request, names: list[str]) -> None:
    """docker-archive of `names` (`docker save`), streamed as it is written."""
    from pyctr.image.archive import save_images

    if not names:
        raise HttpError(400, "no images named: give names=...")
    out = LazyTarResponse(request)
    save_images(_store(), names, out)
    out.close()


@route("GET", "/images/get")
def save_many(request: Request) -> None:
    _save(request, request.query.get("names", []))


@route("GET", "/images/{name:path}/get")
def save_one(request: Request) -> None:
    _save(request, [request.params["name"]])


@route("POST", "/images/load")
def load(request: Request) -> None:
    """A docker-archive body: staged with checked member names, layers through the fd-based unpacker (a
    hostile entry refuses the load); `Loaded image: ...` lines, or an in-stream error, as dockerd."""
    from pyctr.image.archive import load_archive

    body = request.body(limit=MAX_LOAD_BODY)
    stream = request.stream()
    try:
        for line in load_archive(_store(), body):
            stream.write_json({"stream": line + "\n"})
    except PyctrError as e:
        stream.write_json(error_message(e.message))
    stream.close()


def prune_all_unused(filters: dict[str, list[str]]) -> bool:
    """`dangling=false` (docker image prune -a) prunes every unused image, else only dangling ones; the
    filters pyctr does not keep (until, label) are refused rather than ignored."""
    unknown = set(filters) - {"dangling"}
    if unknown:
        raise HttpError(400, f"invalid filter '{sorted(unknown)[0]}' (pyctr prunes images by dangling only)")
    values = [v.lower() for v in filters.get("dangling", [])]
    if any(v not in ("true", "false", "1", "0") for v in values):
        raise HttpError(400, f"invalid filter 'dangling={values[0]}'")
    return bool(values) and all(v in ("false", "0") for v in values)


def prune_answer(lines: list[str], freed: int) -> dict:
    """prune_images' lines (`untagged: x`, `deleted: sha256:...`) as dockerd's ImagesPruneReport."""
    deleted = []
    for line in lines:
        word, _, value = line.partition(": ")
        deleted.append({"Untagged": value} if word == "untagged" else {"Deleted": value})
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": freed}


@route("POST", "/images/prune")
def prune(request: Request) -> None:
    from pyctr.image.remove import prune_images
    from pyctr.runtime.usage import image_users

    all_unused = prune_all_unused(documents.parse_filters(request.arg("filters")))
    lines, freed = prune_images(_store(), all_unused, in_use=image_users(config().paths))
    request.send_json(prune_answer(lines, freed))


def commit_config(container_config: dict, body: object) -> dict:
    """The new image's config: the container's, with what the request's Config body sets on top (dockerd
    merges: fields the body leaves empty keep the container's values)."""
    if body is None:
        return dict(container_config)
    if not isinstance(body, dict):
        raise HttpError(400, "the commit body must be a container Config object")
    return dict(container_config) | {k: v for k, v in body.items() if v not in (None, "", [], {})}


@route("POST", "/commit")
def commit(request: Request) -> None:
    from pyctr.build.changes import apply_changes
    from pyctr.image.reference import parse_reference
    from pyctr.runtime.snapshot import CommitOptions
    from pyctr.runtime.snapshot import commit as commit_container
    from pyctr.runtime.state import ContainerStore

    record = ContainerStore(config().paths).get(request.arg("container") or "")
    repo, tag = request.arg("repo") or "", request.arg("tag") or ""
    reference = None
    if repo:
        reference = parse_reference(f"{repo}:{tag}" if tag else repo)
    elif tag:
        raise HttpError(400, "a tag needs a repository (repo=...)")
    section = apply_changes(commit_config(record.config.get("Config") or {}, request.json(default=None)),
                            request.query.get("changes", []))
    image = commit_container(config(), record, section,
                             CommitOptions(reference=str(reference) if reference else None,
                                           author=request.arg("author") or "", message=request.arg("comment") or "",
                                           pause=request.flag("pause", True)))
    request.send_json({"Id": image.id}, status=201)
