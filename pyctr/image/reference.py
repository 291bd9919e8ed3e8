"""Image references parsed and normalised exactly as Docker does.

`busybox` means `docker.io/library/busybox:latest`. Getting this identical to
Docker matters because references are how users, tags in the store and
credentials in ~/.docker/config.json find each other: a name normalised
differently would pull from another registry or miss a stored tag.
Grammar: github.com/distribution/reference (reference.go, normalize.go).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyctr.errors import InvalidReference

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io")
DEFAULT_TAG = "latest"
NAME_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_TAG_ONLY = re.compile(rf"^{_TAG}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
_SHA256_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")

FORMAT_ERROR = "invalid reference format"


@dataclass(frozen=True)
class Reference:
    """A fully normalised image reference: registry, repository, optional tag and digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`docker.io/library/busybox`: the repository with its registry."""
        return f"{self.registry}/{self.repository}"

    @property
    def is_docker_hub(self) -> bool:
        return self.registry == DOCKER_HUB

    @property
    def api_host(self) -> str:
        """The host the registry API is served on (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API_HOST if self.is_docker_hub else self.registry

    @property
    def familiar_name(self) -> str:
        """Docker's short form of the name: `busybox`, `user/app`, `localhost:5000/app`."""
        if self.is_docker_hub:
            return self.repository.removeprefix("library/") if self.repository.count("/") == 1 else self.repository
        return self.name

    @property
    def familiar(self) -> str:
        """Docker's short form with tag and digest: `busybox:latest`."""
        return self._with_suffix(self.familiar_name)

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest if pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str | None) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, None, digest)

    def _with_suffix(self, name: str) -> str:
        out = name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def __str__(self) -> str:
        return self._with_suffix(self.name)


def split_domain(name: str) -> tuple[str, str]:
    """Docker's splitDockerDomain: the registry, and the path within it."""
    first, sep, rest = name.partition("/")
    is_domain = sep and (
        "." in first or ":" in first or first == "localhost" or first.lower() != first
    )
    if not is_domain:
        domain, remainder = DOCKER_HUB, name
    else:
        domain, remainder = first, rest
    if domain in DOCKER_HUB_ALIASES:
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in remainder:
        remainder = f"library/{remainder}"
    return domain, remainder


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse `text` as Docker's ParseNormalizedNamed (+ TagNameOnly when `default_tag`).

    Raises InvalidReference with Docker's wording.
    """
    if not text:
        raise InvalidReference(f"{FORMAT_ERROR}: repository name must have at least one component")
    if _HEX64.match(text):
        raise InvalidReference(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    name_part, tag, digest = _split_tag_digest(text)
    domain, remainder = split_domain(name_part)
    if remainder.lower() != remainder:
        raise InvalidReference(f"{FORMAT_ERROR}: repository name must be lowercase")
    full = f"{domain}/{remainder}"
    match = _REFERENCE.match(_join(full, tag, digest))
    if not match:
        if _REFERENCE.match(_join(full.lower(), tag, digest)):
            raise InvalidReference(f"{FORMAT_ERROR}: repository name must be lowercase")
        raise InvalidReference(FORMAT_ERROR)
    if len(full) > NAME_MAX:
        raise InvalidReference(f"{FORMAT_ERROR}: repository name must not be more than {NAME_MAX} characters")
    if digest is not None:
        _check_digest(digest)
    if default_tag and tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain, remainder, tag, digest)


def _split_tag_digest(text: str) -> tuple[str, str | None, str | None]:
    name, at, digest = text.partition("@")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not tag:
            raise InvalidReference(FORMAT_ERROR)
    if at and not digest:
        raise InvalidReference(FORMAT_ERROR)
    if not name:
        raise InvalidReference(FORMAT_ERROR)
    return name, tag, (digest if at else None)


def _join(name: str, tag: str | None, digest: str | None) -> str:
    return name + (f":{tag}" if tag is not None else "") + (f"@{digest}" if digest is not None else "")


def _check_digest(digest: str) -> None:
    algorithm, _, encoded = digest.partition(":")
    if algorithm == "sha256" and not _SHA256_DIGEST.match(digest):
        raise InvalidReference("invalid checksum digest length" if _is_hex(encoded)
                               else "invalid checksum digest format")
    if algorithm not in ("sha256", "sha384", "sha512"):
        raise InvalidReference("unsupported digest algorithm")


def _is_hex(s: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]+", s))


def is_valid_tag(tag: str) -> bool:
    return bool(_TAG_ONLY.match(tag))


def is_sha256_digest(s: str) -> bool:
    return bool(_SHA256_DIGEST.match(s))
