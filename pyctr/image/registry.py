"""The registry HTTP API client: the only module that imports requests.

Distribution API v2 with Docker's auth flows: a 401 carries a
WWW-Authenticate challenge; Bearer means "get a token from this realm" (with
Basic credentials when logged in), Basic means "send credentials directly".
Transient failures (429, 5xx, resets) are retried with bounded backoff, and a
blob download that breaks midway resumes with Range instead of starting over,
because layers are tens of megabytes and connections do drop.
requests is imported lazily: it costs ~200 ms and most commands never talk to
a registry.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode, urljoin, urlsplit

from pyctr.errors import NotFoundError, RegistryError
from pyctr.image.manifest import ACCEPT
from pyctr.image.reference import DOCKER_HUB_API_HOST, Reference

RETRIES = 4
BACKOFF_SECONDS = 0.5
RETRY_STATUS = (429, 500, 502, 503, 504)
MAX_REDIRECTS = 5
DEFAULT_TOKEN_SECONDS = 60
CONNECT_TIMEOUT = 15
READ_TIMEOUT = 60
CHUNK = 1 << 20
MANIFEST_LIMIT = 4 << 20  # containerd's limit: a manifest is a few kB, a hostile one could be gigabytes
USER_AGENT = "pyctr/0.1 (docker-compatible)"
_PERSISTENT_FAILURES = ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
                        "No address associated", "Network is unreachable")


# ---------------------------------------------------------------- pure parts

@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str]


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse RFC 7235 challenges: `Bearer realm="x",service="y",scope="repository:a:pull,push"`.

    Quoted values may contain commas and escaped quotes, so a naive split(',') breaks scopes.
    """
    challenges: list[Challenge] = []
    i, n = 0, len(header)
    current: Challenge | None = None
    while i < n:
        while i < n and header[i] in " \t,":
            i += 1
        start = i
        while i < n and header[i] not in " \t,=":
            i += 1
        token = header[start:i]
        if not token:
            break
        j = i
        while j < n and header[j] in " \t":
            j += 1
        if j < n and header[j] == "=" and current is not None:
            value, i = _parse_value(header, j + 1)
            current.params[token.lower()] = value
        elif j < n and header[j] == "=":
            _, i = _parse_value(header, j + 1)  # a parameter before any scheme: ignore it
        else:
            current = Challenge(token.lower(), {})
            challenges.append(current)
            i = j
    return challenges


def _parse_value(header: str, i: int) -> tuple[str, int]:
    n = len(header)
    while i < n and header[i] in " \t":
        i += 1
    if i < n and header[i] == '"':
        i += 1
        out = []
        while i < n and header[i] != '"':
            if header[i] == "\\" and i + 1 < n:
                i += 1
            out.append(header[i])
            i += 1
        return "".join(out), i + 1
    start = i
    while i < n and header[i] not in ",":
        i += 1
    return header[start:i].strip(), i


@dataclass(frozen=True)
class Endpoint:
    """Where to send API calls for one registry (or a mirror standing in for Docker Hub)."""

    registry: str  # the name credentials are filed under, e.g. docker.io or 127.0.0.1:5000
    base_url: str  # scheme://host[:port]
    mirror: bool = False
    insecure: bool = False  # as Docker: HTTPS without verification first, then plain HTTP

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc


def is_insecure(host: str, insecure_registries: Iterable[str]) -> bool:
    """HTTP is allowed for configured hosts and, as Docker does, for loopback (127.0.0.0/8, ::1)."""
    if host in insecure_registries:
        return True
    bare = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    bare = bare.strip("[]")
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def endpoints_for(ref: Reference, registry_mirrors: Iterable[str],
                  insecure_registries: Iterable[str]) -> list[Endpoint]:
    """Mirrors first for Docker Hub images, then the registry itself."""
    out: list[Endpoint] = []
    if ref.is_docker_hub:
        for mirror in registry_mirrors:
            out.append(Endpoint(urlsplit(mirror).netloc, mirror.rstrip("/"), mirror=True))
        out.append(Endpoint(ref.registry, f"https://{DOCKER_HUB_API_HOST}"))
        return out
    insecure = is_insecure(ref.registry, insecure_registries)
    out.append(Endpoint(ref.registry, f"https://{ref.registry}", insecure=insecure))
    return out


def registry_error_message(status: int, body: bytes) -> str:
    """The registry's own error text (`code: message`), or the HTTP status."""
    try:
        errors = json.loads(body).get("errors") or []
        parts = [f"{str(e.get('code', '')).lower()}: {e.get('message', '')}".strip(": ") for e in errors]
        if parts:
            return "; ".join(parts)
    except (ValueError, AttributeError):
        pass
    return f"HTTP {status}"


class BlobSink(Protocol):
    """Where a downloaded blob goes; it knows how much it already has (for resume)."""

    offset: int

    def write(self, data: bytes) -> None: ...

    def reset(self) -> None: ...


# ---------------------------------------------------------------- tokens

@dataclass
class _Token:
    value: str
    expires_at: float


_TOKENS: dict[tuple, _Token] = {}
_TOKENS_LOCK = threading.Lock()


@dataclass
class RegistryClient:
    """One repository on one endpoint, with the credentials for its registry."""

    endpoint: Endpoint
    repository: str
    credentials: tuple[str, str] | None = None
    actions: tuple[str, ...] = ("pull",)
    _session: Any = None
    _base_url: str | None = None  # set to http:// when an insecure registry turned out not to speak TLS
    _auth_header: str | None = None
    _challenge: Challenge | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------ API calls

    def get_manifest(self, reference: str) -> tuple[bytes, str, str | None]:
        """(body, content type, Docker-Content-Digest header) of a manifest or index.

        A connection dropped while the body is read is retried like one dropped before the headers.
        """
        return self._retrying_body(f"manifest {reference}", lambda: self._get_manifest_once(reference))

    def _retrying_body(self, what: str, fetch: Callable[[], Any]) -> Any:
        """Run `fetch` (request + read of a small body) again when the connection breaks mid-body."""
        import urllib3

        attempt = 0
        while True:
            try:
                return fetch()
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError) as e:
                attempt += 1
                if attempt >= RETRIES:
                    raise RegistryError(f"reading {what} from {self.endpoint.host} failed "
                                        f"after {attempt} attempts: {_short(e)}") from None
                time.sleep(BACKOFF_SECONDS * (2 ** (attempt - 1)))

    def _get_manifest_once(self, reference: str) -> tuple[bytes, str, str | None]:
        resp = self._request("GET", f"/manifests/{reference}", headers={"Accept": ACCEPT}, stream=True)
        try:
            if resp.status_code == 404:
                raise NotFoundError(f"manifest for {self.repository}:{reference} not found: "
                                    f"{registry_error_message(404, resp.content)}")
            if resp.status_code in (401, 403):
                why = registry_error_message(resp.status_code, resp.content)
                raise RegistryError(f"pull access denied for {self.repository}, repository does not exist or "
                                    f"may require 'pyctr login': {why}")
            self._check(resp, f"fetching manifest {reference}")
            body = resp.raw.read(MANIFEST_LIMIT + 1, decode_content=True)
            if len(body) > MANIFEST_LIMIT:
                raise RegistryError(f"manifest {reference} is larger than {MANIFEST_LIMIT} bytes: refusing it")
            return body, resp.headers.get("Content-Type", ""), resp.headers.get("Docker-Content-Digest")
        finally:
            resp.close()

    def list_tags(self, limit: int = 10000) -> list[str]:
        """The repository's tags (GET /v2/<name>/tags/list, following Link pagination)."""
        tags: list[str] = []
        path = "/tags/list"
        while path and len(tags) < limit:
            resp = self._request("GET", path)
            try:
                self._check(resp, "listing tags")
                tags += [t for t in (resp.json().get("tags") or []) if isinstance(t, str)]
                link = resp.headers.get("Link", "")
            except ValueError:
                raise RegistryError("registry returned a tag list that is not JSON") from None
            finally:
                resp.close()
            path = ""
            if link.startswith("<") and ">" in link:
                path = urljoin(self.base_url + "/", link[1:link.index(">")])
        return tags

    def get_blob_bytes(self, digest: str, limit: int = 64 << 20) -> bytes:
        """A small blob (a config or manifest) in memory."""
        return self._retrying_body(f"blob {digest}", lambda: self._get_blob_bytes_once(digest, limit))

    def _get_blob_bytes_once(self, digest: str, limit: int) -> bytes:
        resp = self._request("GET", f"/blobs/{digest}", stream=True)
        try:
            self._check(resp, f"fetching blob {digest}")
            data = resp.raw.read(limit + 1, decode_content=True) if resp.raw else resp.content
            if len(data) > limit:
                raise RegistryError(f"blob {digest} is larger than {limit} bytes")
            return data
        finally:
            resp.close()

    def fetch_blob(self, digest: str, sink: BlobSink, size: int | None = None,
                   on_progress: Callable[[int], None] | None = None) -> None:
        """Stream a blob into `sink`, resuming with Range after a dropped connection."""
        import requests

        failures = 0
        while True:
            if size is not None and sink.offset >= size:
                return
            headers = {"Range": f"bytes={sink.offset}-"} if sink.offset else {}
            resp = self._request("GET", f"/blobs/{digest}", headers=headers, stream=True)
            try:
                self._accept_blob_response(resp, sink, digest)
                for chunk in _raw_chunks(resp):
                    sink.write(chunk)
                    if on_progress:
                        on_progress(sink.offset)
                return
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                    requests.exceptions.Timeout) as e:
                failures += 1
                if failures > RETRIES:
                    raise RegistryError(f"downloading {digest} failed after {failures} attempts: {e}") from None
                time.sleep(BACKOFF_SECONDS * (2 ** (failures - 1)))
            finally:
                resp.close()

    def _accept_blob_response(self, resp: Any, sink: BlobSink, digest: str) -> None:
        if resp.status_code == 206:
            start = _content_range_start(resp.headers.get("Content-Range", ""))
            if start != sink.offset:
                raise RegistryError(f"registry answered a range request for {digest} with the wrong range")
            return
        if resp.status_code == 200:
            if sink.offset:
                sink.reset()  # the server ignored Range: start over
            return
        self._check(resp, f"downloading blob {digest}")

    def blob_exists(self, digest: str) -> bool:
        resp = self._request("HEAD", f"/blobs/{digest}")
        resp.close()
        if resp.status_code == 404:
            return False
        self._check(resp, f"checking blob {digest}")
        return True

    def mount_blob(self, digest: str, from_repository: str) -> bool:
        """Cross-repository mount: True when the registry linked the blob without an upload."""
        query = urlencode({"mount": digest, "from": from_repository})
        resp = self._request("POST", f"/blobs/uploads/?{query}", body=lambda: b"")
        resp.close()
        return resp.status_code == 201

    def upload_blob(self, digest: str, size: int, path: str | os.PathLike) -> None:
        """Monolithic upload: POST for a session, then PUT the file's bytes with ?digest=."""
        resp = self._request("POST", "/blobs/uploads/", body=lambda: b"")
        try:
            self._check(resp, "starting blob upload", ok=(202,))
            location = resp.headers.get("Location")
        finally:
            resp.close()
        if not location:
            raise RegistryError("registry started an upload without a Location")
        url = urljoin(self.base_url + "/", location)
        sep = "&" if "?" in url else "?"
        with open(path, "rb") as f:
            def rewound() -> Any:
                f.seek(0)
                return f

            resp = self._request("PUT", f"{url}{sep}{urlencode({'digest': digest})}", body=rewound,
                                 headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        try:
            self._check(resp, f"uploading blob {digest}", ok=(201, 204))
        finally:
            resp.close()

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> str | None:
        resp = self._request("PUT", f"/manifests/{reference}", body=lambda: data,
                             headers={"Content-Type": media_type})
        try:
            self._check(resp, f"pushing manifest {reference}", ok=(200, 201, 202))
            return resp.headers.get("Docker-Content-Digest")
        finally:
            resp.close()

    def ping(self) -> None:
        """GET /v2/ with credentials: proves a login works (used by `pyctr login`)."""
        resp = self._request("GET", "/v2/", absolute=True)
        try:
            if resp.status_code == 401:
                raise RegistryError("unauthorized: incorrect username or password")
            self._check(resp, "contacting the registry")
        finally:
            resp.close()

    # ------------------------------------------------------------ transport

    def close(self) -> None:
        """Close the pooled connections now. Left to the garbage collector, a pooled socket of a long-lived
        process (the API daemon) is finalised in whichever child it forked next, closing that child's fd of
        the same number (runtime/process/inherited.py)."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def session(self) -> Any:
        if self._session is None:
            import requests
            import urllib3

            # Unverified TLS is only ever used for insecure_registries; the warning would only repeat the config.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            self._session = requests.Session()
            self._session.headers["User-Agent"] = USER_AGENT
            adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=8)
            self._session.mount("http://", adapter)
            self._session.mount("https://", adapter)
        return self._session

    @property
    def base_url(self) -> str:
        return self._base_url or self.endpoint.base_url

    def _url(self, path: str, absolute: bool = False) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if absolute:
            return self.base_url + path
        return f"{self.base_url}/v2/{self.repository}{path}"

    def _request(self, method: str, path: str, *, headers: dict | None = None, stream: bool = False,
                 body: Callable[[], Any] | None = None, absolute: bool = False) -> Any:
        """Send with auth, answering one 401 challenge and retrying transient failures."""
        import requests

        url = self._url(path, absolute)
        authenticated_now = False
        attempt = 0
        while True:
            try:
                resp = self._send(method, url, headers or {}, body, stream)
            except requests.exceptions.SSLError as e:
                if self.endpoint.insecure and url.startswith(f"https://{self.endpoint.host}"):
                    self._base_url = f"http://{self.endpoint.host}"
                    url = "http://" + url[len("https://"):]
                    continue
                raise RegistryError(
                    f"cannot talk HTTPS to {self.endpoint.host} ({_short(e)}); if it serves plain HTTP, "
                    "add it to insecure_registries in the pyctr config"
                ) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
                attempt += 1
                persistent = any(m in str(e) for m in _PERSISTENT_FAILURES)  # retrying rarely helps
                if attempt >= (2 if persistent else RETRIES):
                    raise RegistryError(f"cannot reach registry {self.endpoint.host}: {_short(e)}") from None
                time.sleep(BACKOFF_SECONDS * (2 ** (attempt - 1)))
                continue
            if resp.status_code == 401 and not authenticated_now:
                challenge_header = resp.headers.get("WWW-Authenticate", "")
                resp.close()
                self._authenticate(challenge_header)
                authenticated_now = True
                continue
            if resp.status_code in RETRY_STATUS and attempt + 1 < RETRIES:
                attempt += 1
                delay = _retry_after(resp.headers.get("Retry-After"), BACKOFF_SECONDS * (2 ** (attempt - 1)))
                resp.close()
                time.sleep(delay)
                continue
            return resp

    def _send(self, method: str, url: str, headers: dict, body: Callable[[], Any] | None, stream: bool) -> Any:
        """One request, following redirects by hand so credentials never leave the registry host."""
        origin = urlsplit(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            send_headers = dict(headers)
            auth = self._current_auth()
            if auth and urlsplit(url).netloc == origin:
                send_headers["Authorization"] = auth
            data = body() if body is not None else None
            verify = not (self.endpoint.insecure and urlsplit(url).netloc == self.endpoint.host)
            resp = self.session.request(method, url, headers=send_headers, data=data, stream=stream, verify=verify,
                                        allow_redirects=False, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
            if resp.status_code in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                url = urljoin(url, resp.headers["Location"])
                resp.close()
                if urlsplit(url).scheme not in ("http", "https"):  # file://, ftp://: not a registry's to choose
                    raise RegistryError(f"refusing a redirect from {origin} to a {urlsplit(url).scheme}: URL")
                if resp.status_code == 303:
                    method, body = "GET", None
                continue
            return resp
        raise RegistryError(f"too many redirects fetching {url}")

    def _current_auth(self) -> str | None:
        with self._lock:
            if self._challenge is not None and self._challenge.scheme == "bearer":
                token = _TOKENS.get(self._token_key(self._challenge))
                if token is None or token.expires_at <= time.time():
                    self._auth_header = None
            return self._auth_header

    # ------------------------------------------------------------ auth

    def _authenticate(self, header: str) -> None:
        challenges = parse_www_authenticate(header)
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None:
            with self._lock:
                self._challenge = bearer
            token = self._token_for(bearer)
            with self._lock:
                self._auth_header = f"Bearer {token}"
            return
        if basic is not None:
            if self.credentials is None:
                raise RegistryError("unauthorized: authentication required "
                                    f"(run 'pyctr login {self.endpoint.registry}')")
            user, password = self.credentials
            with self._lock:
                self._challenge = basic
                self._auth_header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            return
        raise RegistryError(f"unauthorized: registry {self.endpoint.host} sent no usable authentication challenge")

    def _scope(self, challenge: Challenge) -> str:
        wanted = f"repository:{self.repository}:{','.join(self.actions)}"
        offered = challenge.params.get("scope")
        if offered and self.repository in offered and "push" not in self.actions:
            return offered
        return wanted

    def _token_key(self, challenge: Challenge) -> tuple:
        user = self.credentials[0] if self.credentials else ""
        return (challenge.params.get("realm"), challenge.params.get("service"), self._scope(challenge), user)

    def _token_for(self, challenge: Challenge) -> str:
        key = self._token_key(challenge)
        with _TOKENS_LOCK:
            cached = _TOKENS.get(key)
            if cached and cached.expires_at > time.time() + 1:
                return cached.value
        realm = challenge.params.get("realm")
        if not realm:
            raise RegistryError("registry sent a Bearer challenge without a realm")
        query = {"scope": self._scope(challenge)}
        if challenge.params.get("service"):
            query["service"] = challenge.params["service"]
        if self.repository == "":  # a login check: no repository scope
            query.pop("scope")
        headers = {}
        if self.credentials:
            user, password = self.credentials
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            query["account"] = user
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        token = self._fetch_token(url, headers)
        with _TOKENS_LOCK:
            _TOKENS[key] = token
        return token.value

    def _fetch_token(self, url: str, headers: dict) -> _Token:
        import requests

        try:
            resp = self.session.get(url, headers=headers, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
        except requests.exceptions.RequestException as e:
            raise RegistryError(f"cannot get a token from {urlsplit(url).netloc}: {_short(e)}") from None
        with resp:
            if resp.status_code in (401, 403):
                raise RegistryError("unauthorized: incorrect username or password" if self.credentials
                                    else "unauthorized: authentication required")
            if resp.status_code != 200:
                raise RegistryError(f"token server {urlsplit(url).netloc} answered HTTP {resp.status_code}")
            try:
                doc = resp.json()
            except ValueError:
                raise RegistryError("token server returned something that is not JSON") from None
        value = doc.get("token") or doc.get("access_token")
        if not value:
            raise RegistryError("token server returned no token")
        try:
            lifetime = int(doc.get("expires_in") or DEFAULT_TOKEN_SECONDS)
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_SECONDS
        return _Token(value, time.time() + max(lifetime, 1))

    def _check(self, resp: Any, doing: str, ok: tuple[int, ...] = (200, 206)) -> None:
        if resp.status_code in ok:
            return
        try:
            body = resp.content or b""
        except Exception:  # noqa: BLE001 - the body was streamed already; the status is enough
            body = b""
        message = registry_error_message(resp.status_code, body)
        if resp.status_code in (401, 403):
            raise RegistryError(f"{doing}: access denied for {self.repository} on {self.endpoint.host}: {message} "
                                f"(repository does not exist or may require 'pyctr login')")
        if resp.status_code == 404:
            raise NotFoundError(f"{doing}: not found on {self.endpoint.host}: {message}")
        raise RegistryError(f"{doing}: registry {self.endpoint.host} answered {message}")


def _raw_chunks(resp: Any) -> Iterable[bytes]:
    """The body as sent: blobs are stored bytes, so skip requests' decoding layer (faster by ~5x)."""
    import urllib3

    try:
        while chunk := resp.raw.read(CHUNK, decode_content=False):
            yield chunk
    except urllib3.exceptions.ProtocolError as e:
        import requests

        raise requests.exceptions.ChunkedEncodingError(e) from None
    except urllib3.exceptions.ReadTimeoutError as e:
        import requests

        raise requests.exceptions.ConnectionError(e) from None


def _content_range_start(header: str) -> int | None:
    # "bytes 100-199/200"
    try:
        return int(header.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _retry_after(value: str | None, default: float) -> float:
    try:
        return min(float(value), 10.0) if value else default
    except ValueError:
        return default


def _short(exc: Exception) -> str:
    text = str(exc)
    for marker in _PERSISTENT_FAILURES + ("timed out", "Connection reset"):
        if marker in text:
            return marker.lower()
    return text[:200]
