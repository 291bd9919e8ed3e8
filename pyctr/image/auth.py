"""Registry credentials in Docker's own file, ~/.docker/config.json (or $DOCKER_CONFIG).

Sharing Docker's file means a `docker login` works for pyctr and a
`pyctr login` works for docker, skopeo and podman. Entries are
`auths[<server>].auth = base64("user:password")`; Docker Hub is filed under
`https://index.docker.io/v1/`. Credential helpers (credsStore) are not run:
their entries are simply not found.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from pathlib import Path

from pyctr.errors import ConfigError
from pyctr.fsutil import atomic_write_bytes, file_lock

DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def server_key(server: str | None) -> str:
    """The key Docker files a server's credentials under."""
    host = normalize_server(server or "docker.io")
    return DOCKER_HUB_AUTH_KEY if host in _HUB_NAMES else host


def normalize_server(server: str) -> str:
    """`https://host:5000/v2/` -> `host:5000` (Docker's ConvertToHostname)."""
    s = server.strip()
    for prefix in ("http://", "https://"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    return s.split("/", 1)[0]


def _read(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read Docker credentials file {path}: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"Docker credentials file {path} is not a JSON object")
    return doc


def load_credentials(registry: str) -> tuple[str, str] | None:
    """(user, password) for `registry` from the Docker config, or None."""
    wanted = normalize_server(registry)
    if wanted in _HUB_NAMES:
        wanted = DOCKER_HUB_AUTH_KEY
    auths = _read(docker_config_path()).get("auths") or {}
    for key, entry in auths.items():
        name = key if key == DOCKER_HUB_AUTH_KEY else normalize_server(key)
        if normalize_server(key) in _HUB_NAMES:
            name = DOCKER_HUB_AUTH_KEY
        if name != wanted or not isinstance(entry, dict):
            continue
        creds = _decode_entry(entry)
        if creds:
            return creds
    return None


def _decode_entry(entry: dict) -> tuple[str, str] | None:
    if entry.get("auth"):
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
            if sep:
                return user, password
    if entry.get("username") and entry.get("password"):
        return str(entry["username"]), str(entry["password"])
    return None


def store_credentials(server: str | None, user: str, password: str) -> Path:
    """Add or replace the entry for `server`, keeping everything else in the file."""
    path = docker_config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with file_lock(path.with_name(".config.json.lock")):
        doc = _read(path)
        auths = doc.setdefault("auths", {})
        auths[server_key(server)] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        atomic_write_bytes(path, (json.dumps(doc, indent="\t") + "\n").encode(), mode=0o600)
    return path


def remove_credentials(server: str | None) -> bool:
    """Forget `server`'s credentials; False if there were none."""
    path = docker_config_path()
    if not path.exists():
        return False
    with file_lock(path.with_name(".config.json.lock")):
        doc = _read(path)
        auths = doc.get("auths") or {}
        key = server_key(server)
        victims = [k for k in auths if k == key or normalize_server(k) == normalize_server(key)
                   or (key == DOCKER_HUB_AUTH_KEY and normalize_server(k) in _HUB_NAMES)]
        for k in victims:
            del auths[k]
        if victims:
            atomic_write_bytes(path, (json.dumps(doc, indent="\t") + "\n").encode(), mode=0o600)
    return bool(victims)
