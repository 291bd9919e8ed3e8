"""Image references parsed and normalised exactly as Docker does.

`busybox` means `docker.io/library/busybox:latest`. Getting this identical to
Docker matters because references are how users, tags in the store and
credentials in ~/.docker/config.json find each other: a name normalised
differently would pull from another registry or miss a stored tag.
Grammar: github.com/distribution/reference (reference.go, normalize.go).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

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
_ANCHORED_NAME = re.compile(rf"^(?:({_DOMAIN})/)?({_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)$")
DOMAIN_REGEX = re.compile(_DOMAIN)
NAME_REGEX = re.compile(_NAME)
REFERENCE_REGEX = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
IDENTIFIER_REGEX = re.compile(r"([a-f0-9]{64})")
_TAG_ONLY = re.compile(rf"^{_TAG}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
_SHA256_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_ANY_DIGEST = re.compile(rf"^{_DIGEST}$")

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
        """distribution's WithTag: the digest, if any, is kept (`name:tag@digest`)."""
        return Reference(self.registry, self.repository, tag, self.digest)

    def with_digest(self, digest: str | None) -> Reference:
        """distribution's WithDigest: the tag, if any, is kept (`name:tag@digest`)."""
        return Reference(self.registry, self.repository, self.tag, digest)

    def trimmed(self) -> Reference:
        """distribution's TrimNamed: the name alone (a repo digest is `trimmed().with_digest(d)`)."""
        return Reference(self.registry, self.repository)

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
    if not sep:
        return DOCKER_HUB, f"library/{name}"
    if first == "localhost" or first == "index.docker.io" or "." in first or ":" in first \
            or first.lower() != first:
        domain, remainder = (DOCKER_HUB if first == "index.docker.io" else first), rest
    else:
        domain, remainder = DOCKER_HUB, name
    if domain == DOCKER_HUB and "/" not in remainder:
        remainder = f"library/{remainder}"
    return domain, remainder


@dataclass(frozen=True)
class RawReference:
    """distribution's reference.Parse result: no normalisation, `domain` empty when none was given."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        return _join(self.name, self.tag, self.digest)

    def with_tag(self, tag: str) -> RawReference:
        """distribution's WithTag: the digest, if any, is kept."""
        if not _TAG_ONLY.match(tag):
            raise InvalidReference(f"invalid tag format: {tag}")
        return replace(self, tag=tag)

    def with_digest(self, digest: str) -> RawReference:
        """distribution's WithDigest: the tag, if any, is kept."""
        if not _ANY_DIGEST.match(digest):
            raise InvalidReference("invalid digest format")
        return replace(self, digest=digest)


def with_name(name: str) -> RawReference:
    """distribution's WithName: a name alone, checked against the grammar and the length rule."""
    match = _ANCHORED_NAME.match(name)
    if not match:
        raise InvalidReference(FORMAT_ERROR)
    if len(match.group(2)) > NAME_MAX:
        raise InvalidReference(f"{FORMAT_ERROR}: repository name must not be more than {NAME_MAX} characters")
    return RawReference(match.group(1) or "", match.group(2))


def familiar_match(pattern: str, ref: Reference) -> bool:
    """distribution's FamiliarMatch: Go's path.Match against `name:tag`, then against the name alone."""
    regex = _path_pattern(pattern)
    return regex is not None and bool(regex.fullmatch(ref.familiar) or regex.fullmatch(ref.familiar_name))


def _path_pattern(pattern: str) -> re.Pattern[str] | None:
    """Go's path.Match syntax as a regex (`*` and `?` stop at `/`); None when malformed."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i >= len(pattern):
                return None
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                return None
            body = pattern[i:end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\").replace("[", "\\[") + "]")
            i = end + 1
        else:
            out.append(re.escape(ch))
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:
        return None


def parse_raw(text: str) -> RawReference:
    """distribution's reference.Parse: the grammar only (Docker's normalisation is parse_reference)."""
    if not text:
        raise InvalidReference(f"{FORMAT_ERROR}: repository name must have at least one component")
    match = _REFERENCE.match(text)
    if not match:
        if text.lower() != text and _REFERENCE.match(text.lower()):
            raise InvalidReference(f"{FORMAT_ERROR}: repository name must be lowercase")
        raise InvalidReference(FORMAT_ERROR)
    name_match = _ANCHORED_NAME.match(match.group(1))
    domain, path = (name_match.group(1) or "", name_match.group(2)) if name_match else ("", match.group(1))
    if len(path) > NAME_MAX:
        raise InvalidReference(f"{FORMAT_ERROR}: repository name must not be more than {NAME_MAX} characters")
    digest = match.group(3)
    if digest:
        check_digest(digest)
    return RawReference(domain, path, match.group(2), digest or None)


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse `text` as Docker's ParseNormalizedNamed (+ TagNameOnly when `default_tag`).

    `name:tag@digest` keeps both, as distribution does. Raises InvalidReference with Docker's wording.
    """
    if _HEX64.match(text):
        raise InvalidReference(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    if not text:
        raise InvalidReference(f"{FORMAT_ERROR}: repository name must have at least one component")
    domain, remainder = split_domain(text)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidReference(f"{FORMAT_ERROR}: repository name must be lowercase")
    raw = parse_raw(f"{domain}/{remainder}")
    if raw.domain != domain:  # `a.b_c/d`: distribution leaves the domain empty; no registry could serve it
        raise InvalidReference(FORMAT_ERROR)
    tag = raw.tag
    if default_tag and tag is None and raw.digest is None:
        tag = DEFAULT_TAG
    return Reference(raw.domain, raw.path, tag, raw.digest)


def parse_docker_ref(text: str) -> Reference:
    """containerd/distribution's ParseDockerRef: `name:tag@digest` pins the digest and drops the tag."""
    ref = parse_reference(text)
    return ref.with_tag(None) if ref.digest else ref


def parse_any_reference(text: str) -> Reference | str:
    """distribution's ParseAnyReference: a bare 64-hex id or a digest is returned as a digest string."""
    if _HEX64.match(text):
        return f"sha256:{text}"
    try:
        check_digest(text)
        return text
    except InvalidReference:
        return parse_reference(text, default_tag=False)


def _join(name: str, tag: str | None, digest: str | None) -> str:
    return name + (f":{tag}" if tag is not None else "") + (f"@{digest}" if digest is not None else "")


def check_digest(digest: str) -> None:
    """go-digest's Parse: only sha256 is an available algorithm, as in distribution's own tests."""
    algorithm, colon, encoded = digest.partition(":")
    if not algorithm or not colon or not encoded:
        raise InvalidReference("invalid checksum digest format")
    if algorithm != "sha256":
        if not _ANY_DIGEST.match(digest):
            raise InvalidReference("invalid checksum digest format")
        raise InvalidReference("unsupported digest algorithm")
    if len(encoded) != 64:
        raise InvalidReference("invalid checksum digest length")
    if not _is_hex(encoded):
        raise InvalidReference("invalid checksum digest format")


def _is_hex(s: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]+", s))


def is_valid_tag(tag: str) -> bool:
    return bool(_TAG_ONLY.match(tag))


def is_sha256_digest(s: str) -> bool:
    return bool(_SHA256_DIGEST.match(s))
