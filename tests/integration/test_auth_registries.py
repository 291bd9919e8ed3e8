"""Authentication against real registries: Docker's token flow (a JWT token server the registry trusts) and
htpasswd basic auth, with `pyctr login/logout` writing Docker's config.json."""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fixtures.registry import start_registry

USER, PASSWORD = "alice", "s3cret-pw"
SERVICE, ISSUER = "pyctr-test-registry", "pyctr-test-issuer"


def _key_and_cert(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyctr test token issuer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    bundle = tmp_path / "token-root.pem"
    bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, bundle


class TokenServer:
    """Issues registry JWTs: alice (Basic auth) gets pull+push everywhere, anonymous gets pull on public/* only."""

    def __init__(self, key, cert):
        from cryptography.hazmat.primitives import serialization

        self.key = key
        self.x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.requests: list[dict] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def issue(self, user: str, scopes: list[str]) -> str:
        import jwt

        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = actions.split(",")
            granted = wanted if user == USER else (["pull"] if name.startswith("public/") and "pull" in wanted
                                                   else [])
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": [self.x5c]})

    def _handler(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = parse_qs(urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                outer.requests.append({"query": query, "authorization": auth})
                user = ""
                if auth.startswith("Basic "):
                    given = base64.b64decode(auth[6:]).decode()
                    if given != f"{USER}:{PASSWORD}":
                        self.send_response(401)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    user = USER
                body = json.dumps({"token": outer.issue(user, query.get("scope", [])), "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@pytest.fixture
def token_registry(tmp_path):
    key, cert, bundle = _key_and_cert(tmp_path)
    tokens = TokenServer(key, cert)
    extra = {"auth": {"token": {"realm": tokens.realm, "service": SERVICE, "issuer": ISSUER,
                                "rootcertbundle": str(bundle)}}}
    proc = start_registry(tmp_path / "token-registry", extra_config=extra)
    try:
        yield proc, tokens
    finally:
        proc.stop()
        tokens.close()


@pytest.fixture
def htpasswd_registry(tmp_path):
    import bcrypt

    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
    extra = {"auth": {"htpasswd": {"realm": "pyctr-test", "path": str(htpasswd)}}}
    proc = start_registry(tmp_path / "htpasswd-registry", extra_config=extra)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def docker_config(tmp_path):
    path = tmp_path / "docker-config"
    path.mkdir()
    return {"DOCKER_CONFIG": str(path)}


def _login(runner, host, env, password=PASSWORD):
    return runner("login", "-u", USER, "--password-stdin", host, input=password + "\n", env_extra=env)


def test_token_flow_login_push_pull_logout(fresh_pyctr, token_registry, docker_config, tmp_path):
    proc, tokens = token_registry
    fresh_pyctr("pull", "-q", "busybox", check=True)
    target = f"{proc.host}/team/bb:1"
    fresh_pyctr("tag", "busybox", target, check=True)

    denied = fresh_pyctr("push", target, env_extra=docker_config)
    assert denied.returncode == 1 and "Traceback" not in denied.stderr
    assert len(denied.stderr.strip().splitlines()) == 1, denied.stderr

    wrong = _login(fresh_pyctr, proc.host, docker_config, password="nope")
    assert wrong.returncode == 1 and "incorrect username or password" in wrong.stderr
    assert not (tmp_path / "docker-config" / "config.json").exists()

    ok = _login(fresh_pyctr, proc.host, docker_config)
    assert ok.returncode == 0 and ok.stdout.strip() == "Login Succeeded", ok.stderr
    saved = json.loads((tmp_path / "docker-config" / "config.json").read_text())
    assert base64.b64decode(saved["auths"][proc.host]["auth"]).decode() == f"{USER}:{PASSWORD}"

    before_push = len(tokens.requests)
    pushed = fresh_pyctr("push", target, env_extra=docker_config, check=True)
    assert f"The push refers to repository [{proc.host}/team/bb]" in pushed.stdout
    assert "1: digest: sha256:" in pushed.stdout
    push_requests = tokens.requests[before_push:]
    assert [q for r in push_requests for q in r["query"].get("scope", [])] == ["repository:team/bb:pull,push"]
    assert push_requests[0]["authorization"].startswith("Basic ")

    fresh_pyctr("rmi", target, check=True)
    pulled = fresh_pyctr("pull", target, env_extra=docker_config, check=True)
    assert pulled.stdout.splitlines()[-1] == target

    out = fresh_pyctr("logout", proc.host, env_extra=docker_config, check=True)
    assert out.stdout.strip() == f"Removing login credentials for {proc.host}"
    fresh_pyctr("rmi", target, check=True)
    anonymous = fresh_pyctr("pull", target, env_extra=docker_config)
    assert anonymous.returncode == 1 and "Traceback" not in anonymous.stderr
    assert fresh_pyctr("logout", proc.host, env_extra=docker_config).stdout.strip() == f"Not logged in to {proc.host}"


def test_anonymous_token_pull(fresh_pyctr, token_registry, docker_config):
    proc, tokens = token_registry
    fresh_pyctr("pull", "-q", "busybox", check=True)
    assert _login(fresh_pyctr, proc.host, docker_config).returncode == 0
    fresh_pyctr("tag", "busybox", f"{proc.host}/public/bb:1", check=True)
    fresh_pyctr("push", "-q", f"{proc.host}/public/bb:1", env_extra=docker_config, check=True)
    fresh_pyctr("logout", proc.host, env_extra=docker_config, check=True)
    fresh_pyctr("rmi", f"{proc.host}/public/bb:1", check=True)
    before = len(tokens.requests)
    fresh_pyctr("pull", f"{proc.host}/public/bb:1", env_extra=docker_config, check=True)
    anonymous = tokens.requests[before:]
    assert anonymous and all(r["authorization"] == "" for r in anonymous)
    assert anonymous[0]["query"]["service"] == [SERVICE]
    assert len(anonymous) == 1  # one token reused for manifest, config and layers


def test_htpasswd_basic_auth(fresh_pyctr, htpasswd_registry, docker_config, tmp_path):
    proc = htpasswd_registry
    fresh_pyctr("pull", "-q", "busybox", check=True)
    target = f"{proc.host}/team/bb:2"
    fresh_pyctr("tag", "busybox", target, check=True)
    r = fresh_pyctr("push", target, env_extra=docker_config)
    assert r.returncode == 1 and "authentication required" in r.stderr
    assert _login(fresh_pyctr, proc.host, docker_config, password="bad").returncode == 1
    assert _login(fresh_pyctr, proc.host, docker_config).returncode == 0
    fresh_pyctr("push", target, env_extra=docker_config, check=True)
    fresh_pyctr("rmi", target, check=True)
    fresh_pyctr("pull", target, env_extra=docker_config, check=True)
    # Docker's own file format: an entry written by `docker login` works too
    cfg = tmp_path / "docker-config" / "config.json"
    cfg.write_text(json.dumps({"auths": {f"http://{proc.host}/v2/": {
        "auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}))
    fresh_pyctr("rmi", target, check=True)
    fresh_pyctr("pull", target, env_extra=docker_config, check=True)
