"""`RUN --mount=...` and `build --secret ...`: what the options mean, decided without touching anything.

BuildKit's rules (frontend/dockerfile/instructions/commands_runmount.go and
dockerfile2llb/convert_runmount.go): a CSV list of `key=value` fields; the type
is bind (default), cache, tmpfs, secret or ssh; bind and secret mounts are
read-only unless `rw`; cache and tmpfs are writable; `mode`/`uid`/`gid` only for
cache, secret and ssh; `sharing` only for cache; `required` only for secret and
ssh; `size` only for tmpfs. A relative target is under the WORKDIR; a cache's id
defaults to its target; a secret's id defaults to the target's base name and
its target to /run/secrets/<id>. Nothing a mount provides ever becomes part of
the layer: executor.py and run_step.py perform these decisions.
"""

from __future__ import annotations

import csv
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, replace

from pyctr.errors import BuildError, UsageError
from pyctr.units import ram_in_bytes

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
SECRETS_DIR = "/run/secrets"
SSH_AGENT_DIR = "/run/buildkit"
_KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required", "size", "mode", "uid",
         "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


@dataclass(frozen=True)
class RunMount:
    """One `--mount` of a RUN, as BuildKit's instructions.Mount."""

    type: str = "bind"
    target: str = ""
    source: str = ""
    from_: str = ""
    readonly: bool = True
    id: str = ""
    sharing: str = ""
    required: bool = False
    size: int = 0
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    env: str | None = None


def _parse_bool(key: str, value: str) -> bool:
    """Go's strconv.ParseBool."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BuildError(f"invalid value for {key}: {value}")


def _parse_uint(key: str, value: str, base: int) -> int:
    """Go's strconv.ParseUint(value, base, 32): digits only (no sign, blanks, `0o` or `_`)."""
    digits = "01234567" if base == 8 else "0123456789"
    if not value or any(c not in digits for c in value) or int(value, base) >= 1 << 32:
        raise BuildError(f"invalid value {value} for {key}")
    return int(value, base)


def _fields(text: str) -> list[str]:
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as e:
        raise BuildError(f"failed to parse csv mounts: {e}") from None
    return rows[0] if rows else []


def parse_mount(text: str, expand: Callable[[str], str] | None = None) -> RunMount:
    """One `--mount` value -> RunMount, with BuildKit's errors; `expand` substitutes `$VAR` in each value."""
    fields: dict[str, object] = {"type": "bind"}
    readonly_auto = True
    for item in _fields(text):
        key, eq, value = item.partition("=")
        key = key.lower()
        if not eq:
            readonly_auto = _bare_field(fields, key, item) and readonly_auto
            continue
        if expand is not None:
            value = expand(value)
        readonly_auto = _key_value(fields, key, value, item) and readonly_auto
    mount = RunMount(**fields)  # type: ignore[arg-type]
    return _check(mount, readonly_auto)


def mount_from_refs(values: list[str]) -> list[str]:
    """The `from=` stages or images of some `--mount` values, for deciding which stages a build needs.

    Malformed values yield nothing here: parse_mount reports them when the RUN is planned.
    """
    refs = []
    for text in values:
        try:
            fields = _fields(text)
        except BuildError:
            continue
        for item in fields:
            key, eq, value = item.partition("=")
            if eq and key.lower() == "from" and value:
                refs.append(value)
    return refs


def _bare_field(fields: dict[str, object], key: str, item: str) -> bool:
    """`ro`, `rw`, `required` without a value; returns whether read-only is still automatic."""
    if key in ("readonly", "ro"):
        fields["readonly"] = True
        return False
    if key in ("readwrite", "rw"):
        fields["readonly"] = False
        return False
    if key == "required":
        if fields["type"] not in ("secret", "ssh"):
            raise BuildError(f"unexpected key '{key}' for mount type '{fields['type']}'")
        fields["required"] = True
        return True
    raise BuildError(f"invalid field '{item}' must be a key=value pair")


def _key_value(fields: dict[str, object], key: str, value: str, item: str) -> bool:
    """One `key=value`; returns whether read-only is still automatic."""
    kind = fields["type"]
    if key == "type":
        if value.lower() not in MOUNT_TYPES:
            raise BuildError(f'unsupported mount type "{value}"')
        fields["type"] = value.lower()
    elif key == "from":
        fields["from_"] = value
    elif key in ("source", "src"):
        fields["source"] = value
    elif key in ("target", "dst", "destination"):
        fields["target"] = value
    elif key in ("readonly", "ro"):
        fields["readonly"] = _parse_bool(key, value)
        return False
    elif key in ("readwrite", "rw"):
        fields["readonly"] = not _parse_bool(key, value)
        return False
    elif key == "required":
        if kind not in ("secret", "ssh"):
            raise BuildError(f"unexpected key '{key}' for mount type '{kind}'")
        fields["required"] = _parse_bool(key, value)
    elif key == "size":
        if kind != "tmpfs":
            raise BuildError(f"unexpected key '{key}' for mount type '{kind}'")
        try:
            fields["size"] = ram_in_bytes(value)
        except ValueError:
            raise BuildError(f"invalid value for {key}: {value}") from None
    elif key == "id":
        fields["id"] = value
    elif key == "sharing":
        if value.lower() not in SHARING_MODES:
            raise BuildError(f'unsupported sharing value "{value}"')
        fields["sharing"] = value.lower()
    elif key in ("mode", "uid", "gid"):
        fields[key] = _parse_uint(key, value, 8 if key == "mode" else 10)
    elif key == "env":
        fields["env"] = value
    else:
        raise BuildError(f"unexpected key '{key}' in '{item}'")
    return True


def _check(mount: RunMount, readonly_auto: bool) -> RunMount:
    if mount.type not in ("secret", "ssh", "cache"):
        for name in ("mode", "uid", "gid"):
            if getattr(mount, name) is not None:
                raise BuildError(f'{name} not allowed for "{mount.type}" type mounts')
    if readonly_auto:
        mount = replace(mount, readonly=mount.type not in ("cache", "tmpfs"))
    if mount.type == "secret":
        if mount.from_:
            raise BuildError("secret mount should not have a from")
        if mount.sharing:
            raise BuildError("secret mount should not define sharing")
        if not (mount.source or mount.target or mount.id):
            raise BuildError("invalid secret mount. one of source, target required")
        if mount.source and mount.id:
            raise BuildError("both source and id can't be set")
    if mount.sharing and mount.type != "cache":
        raise BuildError(f"invalid cache sharing set for {mount.type} mount")
    return mount


def resolve_mount(mount: RunMount, workdir: str, index: int = 0) -> RunMount:
    """Fill BuildKit's defaults: absolute target (relative to WORKDIR), cache/secret ids, secret target."""
    if mount.type == "secret":
        secret_id = mount.source or mount.id or posixpath.basename(posixpath.normpath(mount.target))
        target = mount.target or (f"{SECRETS_DIR}/{secret_id}" if mount.env is None else "")
        mount = replace(mount, id=secret_id, source="", target=target)
        if not target:
            return mount
    elif mount.type == "ssh":
        mount = replace(mount, id=mount.id or "default",
                        target=mount.target or f"{SSH_AGENT_DIR}/ssh_agent.{index}")
    if not mount.target:
        raise BuildError("mount target must be specified")
    target = posixpath.normpath(posixpath.join("/", workdir, mount.target))
    if target == "/":
        raise BuildError(f'invalid mount target "{target}"')
    mount = replace(mount, target=target)
    if mount.type == "cache" and not mount.id:
        mount = replace(mount, id=posixpath.normpath(mount.target))
    return mount


@dataclass(frozen=True)
class SecretSource:
    """`build --secret id=x,src=path` (a file) or `id=x,env=VAR` (an environment variable)."""

    id: str
    path: str | None = None
    env: str | None = None


def parse_secret_flag(text: str, environ: dict[str, str]) -> SecretSource:
    """Docker's `--secret` syntax; a bare `id=x` reads the variable x if set, else the file x."""
    values: dict[str, str] = {}
    for item in _fields(text):
        key, eq, value = item.partition("=")
        key = key.lower()
        if not eq:
            raise UsageError(f"invalid secret: field '{item}' must be a key=value pair")
        if key not in ("id", "src", "source", "env", "type"):
            raise UsageError(f"unexpected key '{key}' in '{item}'")
        values["src" if key == "source" else key] = value
    kind = values.get("type", "")
    if kind not in ("", "file", "env"):
        raise UsageError(f"unsupported secret type {kind!r}")
    secret_id = values.get("id") or (posixpath.basename(values["src"]) if values.get("src") else values.get("env"))
    if not secret_id:
        raise UsageError(f"invalid secret: {text}: no id")
    if "src" in values and "env" in values:
        raise UsageError(f"invalid secret: {text}: both src and env")
    if kind == "env" or "env" in values:
        return SecretSource(secret_id, env=values.get("env") or values.get("src") or secret_id)
    if "src" in values:
        return SecretSource(secret_id, path=values["src"])
    if kind != "file" and secret_id in environ:
        return SecretSource(secret_id, env=secret_id)
    return SecretSource(secret_id, path=secret_id)
