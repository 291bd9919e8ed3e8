"""The registry client against a small in-process HTTP server on 127.0.0.1: auth flows, redirects, retries, resume.

The real registry (docker-registry) is exercised by the integration tests; this server produces the cases a
healthy loopback registry never does (dropped connections, 503s, redirects to another host, token expiry).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pyctr.errors import NotFoundError, RegistryError
from pyctr.image import registry as reg
from pyctr.image.registry import Endpoint, RegistryClient, parse_www_authenticate

BLOB = bytes(range(256)) * 4096 * 4  # 4 MiB: a drop at a third leaves whole chunks to resume from
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
MANIFEST = b'{"schemaVersion":2}'


class Sink:
    def __init__(self):
        self.data = bytearray()

    @property
    def offset(self):
        return len(self.data)

    def write(self, chunk):
        self.data += chunk

    def reset(self):
        self.data = bytearray()


class FakeRegistry:
    """Behaviour switches are attributes; every request is logged as (method, path, headers)."""

    def __init__(self):
        self.log: list[tuple[str, str, dict]] = []
        self.auth = "bearer"  # bearer | basic | none
        self.credentials: tuple[str, str] | None = None
        self.token_field = "token"
        self.expires_in: int | None = 300
        self.fail_times = 0
        self.drop_blob_once = False
        self.honour_range = True
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def requests(self, path_part):
        return [entry for entry in self.log if path_part in entry[1]]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send(self, code, body=b"", headers=None):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def authorised(self):
                got = self.headers.get("Authorization")
                if fake.auth == "none":
                    return True
                if fake.auth == "basic":
                    user, pw = fake.credentials
                    return got == "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
                return got == "Bearer tok-1"

            def challenge(self):
                if fake.auth == "basic":
                    header = 'Basic realm="fake"'
                else:
                    header = (f'Bearer realm="http://127.0.0.1:{fake.port}/token",service="fake",'
                              'scope="repository:lib/app:pull,push"')
                self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                          {"WWW-Authenticate": header})

            def do_GET(self):
                fake.log.append(("GET", self.path, dict(self.headers)))
                if self.path.startswith("/token"):
                    if fake.credentials is not None:
                        user, pw = fake.credentials
                        expected = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
                        if self.headers.get("Authorization") != expected:
                            return self.send(401)
                    doc = {fake.token_field: "tok-1"}
                    if fake.expires_in is not None:
                        doc["expires_in"] = fake.expires_in
                    return self.send(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})
                if self.path.startswith("/storage/"):
                    return self.serve_blob()
                if not self.authorised():
                    return self.challenge()
                if fake.fail_times > 0:
                    fake.fail_times -= 1
                    return self.send(503, b"busy")
                if self.path == "/v2/":
                    return self.send(200, b"{}")
                if self.path == "/v2/lib/app/manifests/latest":
                    return self.send(200, MANIFEST, {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                                                     "Docker-Content-Digest": "sha256:x"})
                if self.path == f"/v2/lib/app/blobs/{BLOB_DIGEST}":
                    # blob storage on "another host": localhost instead of 127.0.0.1
                    return self.send(307, b"", {"Location": f"http://localhost:{fake.port}/storage/blob"})
                if self.path == "/v2/lib/app/blobs/direct":
                    return self.serve_blob()
                self.send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')

            def serve_blob(self):
                rng = self.headers.get("Range")
                if rng and fake.honour_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    body = BLOB[start:]
                    return self.send(206, body, {"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"})
                if fake.drop_blob_once:
                    fake.drop_blob_once = False
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(BLOB)))
                    self.end_headers()
                    self.wfile.write(BLOB[: len(BLOB) // 3])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                return self.send(200, BLOB)

        return Handler


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(reg, "BACKOFF_SECONDS", 0.0)
    reg._TOKENS.clear()
    server = FakeRegistry()
    yield server
    server.close()


def client_for(fake, credentials=None):
    return RegistryClient(Endpoint(f"127.0.0.1:{fake.port}", f"http://127.0.0.1:{fake.port}"), "lib/app",
                          credentials)


# ---------------------------------------------------------------- WWW-Authenticate parsing (pure)

def test_challenge_with_comma_in_quoted_scope():
    [c] = parse_www_authenticate(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.example/token", "service": "registry.example",
                        "scope": "repository:a/b:pull,push"}


def test_challenge_with_spaces_escapes_and_unquoted_values():
    [c] = parse_www_authenticate('Bearer  realm = "x\\"y" , service=plain, error="insufficient_scope"')
    assert c.params == {"realm": 'x"y', "service": "plain", "error": "insufficient_scope"}


def test_several_challenges():
    cs = parse_www_authenticate('Basic realm="r1", Bearer realm="r2",scope="repository:x:pull"')
    assert [c.scheme for c in cs] == ["basic", "bearer"]
    assert cs[1].params["scope"] == "repository:x:pull"


def test_empty_challenge():
    assert parse_www_authenticate("") == []


# ---------------------------------------------------------------- endpoints (pure)

def test_mirrors_first_for_docker_hub_only():
    from pyctr.image.reference import parse_reference

    hub = reg.endpoints_for(parse_reference("busybox"), ["http://127.0.0.1:5000"], [])
    assert [e.base_url for e in hub] == ["http://127.0.0.1:5000", "https://registry-1.docker.io"]
    assert hub[0].mirror and not hub[1].mirror
    other = reg.endpoints_for(parse_reference("quay.io/a/b"), ["http://127.0.0.1:5000"], [])
    assert [e.base_url for e in other] == ["https://quay.io"]


def test_http_only_for_insecure_and_loopback():
    from pyctr.image.reference import parse_reference

    [insecure] = reg.endpoints_for(parse_reference("my.reg:5000/a"), [], ["my.reg:5000"])
    assert insecure.base_url == "https://my.reg:5000" and insecure.insecure  # HTTPS unverified, then HTTP
    [secure] = reg.endpoints_for(parse_reference("my.reg:5000/a"), [], [])
    assert secure.base_url == "https://my.reg:5000" and not secure.insecure
    assert reg.is_insecure("127.0.0.1:5000", [])
    assert reg.is_insecure("localhost:5000", [])
    assert reg.is_insecure("[::1]:5000", [])
    assert not reg.is_insecure("10.0.0.1:5000", [])


def test_registry_error_message():
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
    assert reg.registry_error_message(404, body) == "manifest_unknown: manifest unknown"
    assert reg.registry_error_message(500, b"oops") == "HTTP 500"


# ---------------------------------------------------------------- flows against the fake server

def test_anonymous_bearer_token_flow_and_reuse(fake):
    client = client_for(fake)
    body, ctype, _ = client.get_manifest("latest")
    assert body == MANIFEST and "oci" in ctype
    client.get_manifest("latest")
    client_for(fake).get_manifest("latest")  # another client, same scope: cached token
    tokens = fake.requests("/token")
    assert len(tokens) == 1
    assert "scope=repository%3Alib%2Fapp%3Apull" in tokens[0][1] and "service=fake" in tokens[0][1]
    assert "Authorization" not in tokens[0][2]


def test_token_with_basic_credentials_and_access_token_field(fake):
    fake.credentials = ("alice", "s3cret")
    fake.token_field = "access_token"
    fake.expires_in = None
    client = client_for(fake, ("alice", "s3cret"))
    assert client.get_manifest("latest")[0] == MANIFEST


def test_wrong_credentials_rejected_clearly(fake):
    fake.credentials = ("alice", "s3cret")
    with pytest.raises(RegistryError, match="incorrect username or password"):
        client_for(fake, ("alice", "nope")).get_manifest("latest")


def test_expired_token_is_fetched_again(fake, monkeypatch):
    fake.expires_in = 1
    client = client_for(fake)
    client.get_manifest("latest")
    now = reg.time.time()
    monkeypatch.setattr(reg.time, "time", lambda: now + 120)
    client.get_manifest("latest")
    assert len(fake.requests("/token")) == 2


def test_plain_basic_auth(fake):
    fake.auth = "basic"
    fake.credentials = ("bob", "pw")
    assert client_for(fake, ("bob", "pw")).get_manifest("latest")[0] == MANIFEST
    reg._TOKENS.clear()
    with pytest.raises(RegistryError, match="authentication required"):
        client_for(fake).get_manifest("latest")


def test_redirect_to_other_host_drops_authorization(fake):
    sink = Sink()
    client_for(fake).fetch_blob(BLOB_DIGEST, sink, len(BLOB))
    assert bytes(sink.data) == BLOB
    [storage] = fake.requests("/storage/")
    assert "Authorization" not in storage[2]
    assert any(r[2].get("Authorization") == "Bearer tok-1" for r in fake.requests(f"/blobs/{BLOB_DIGEST}"))


def test_retries_on_503_then_succeeds(fake):
    fake.fail_times = 2
    assert client_for(fake).get_manifest("latest")[0] == MANIFEST


def test_gives_up_after_bounded_retries(fake):
    fake.fail_times = 100
    with pytest.raises(RegistryError, match="503|HTTP"):
        client_for(fake).get_manifest("latest")
    assert fake.fail_times > 90  # bounded: a handful of attempts, not a hundred


def test_dropped_download_resumes_with_range(fake):
    fake.auth = "none"
    fake.drop_blob_once = True
    sink = Sink()
    client_for(fake).fetch_blob("direct", sink, len(BLOB))
    assert bytes(sink.data) == BLOB
    ranged = [r for r in fake.requests("/blobs/direct") if "Range" in r[2]]
    assert ranged and ranged[0][2]["Range"].startswith("bytes=")
    assert ranged[0][2]["Range"] != "bytes=0-"


def test_server_ignoring_range_restarts_cleanly(fake):
    fake.auth = "none"
    fake.drop_blob_once = True
    fake.honour_range = False
    sink = Sink()
    client_for(fake).fetch_blob("direct", sink, len(BLOB))
    assert bytes(sink.data) == BLOB


def test_a_manifest_request_accepts_indexes_and_manifests_of_both_formats(fake):
    """What the registry sees on the wire (a registry answers a schema-1 manifest to a request that omits one)."""
    client_for(fake).get_manifest("latest")
    [(_, _, headers)] = fake.requests("/manifests/latest")[-1:]
    accepted = {t.strip() for t in headers["Accept"].split(",")}
    assert accepted == {"application/vnd.oci.image.index.v1+json",
                        "application/vnd.docker.distribution.manifest.list.v2+json",
                        "application/vnd.oci.image.manifest.v1+json",
                        "application/vnd.docker.distribution.manifest.v2+json"}


def test_manifest_not_found(fake):
    with pytest.raises(NotFoundError, match="manifest unknown"):
        client_for(fake).get_manifest("nope")


def test_connection_refused_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(reg, "BACKOFF_SECONDS", 0.0)
    from tests.fixtures.registry import free_port

    port = free_port()
    client = RegistryClient(Endpoint(f"127.0.0.1:{port}", f"http://127.0.0.1:{port}"), "lib/app")
    with pytest.raises(RegistryError, match=f"cannot reach registry 127.0.0.1:{port}"):
        client.get_manifest("latest")


def test_https_to_plain_http_server_suggests_insecure_registries(fake):
    client = RegistryClient(Endpoint(f"127.0.0.1:{fake.port}", f"https://127.0.0.1:{fake.port}"), "lib/app")
    with pytest.raises(RegistryError, match="insecure_registries"):
        client.get_manifest("latest")


def test_insecure_registry_falls_back_from_https_to_http(fake):
    endpoint = Endpoint(f"127.0.0.1:{fake.port}", f"https://127.0.0.1:{fake.port}", insecure=True)
    client = RegistryClient(endpoint, "lib/app")
    assert client.get_manifest("latest")[0] == MANIFEST
    assert client.base_url == f"http://127.0.0.1:{fake.port}"


def test_leaving_a_client_closes_its_pooled_connections(fake):
    """A pooled socket left to the garbage collector is finalised in whichever child the API daemon forks next;
    a client used as a context manager closes its connections when left."""
    import gc
    import socket

    def open_sockets_to_fake() -> int:
        return sum(1 for o in gc.get_objects() if isinstance(o, socket.socket) and o.fileno() >= 0
                   and _peer_port(o) == fake.port)

    with client_for(fake) as client:
        client.get_manifest("latest")
        assert open_sockets_to_fake() >= 1  # pooled, kept for the next request
    assert open_sockets_to_fake() == 0


def _peer_port(sock) -> int | None:
    try:
        return sock.getpeername()[1]
    except (OSError, IndexError, TypeError):
        return None
