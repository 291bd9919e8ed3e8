"""Reference parsing matches Docker's (distribution/reference normalize_test.go and reference_test.go cases)."""

import pytest

from pyctr.errors import InvalidReference
from pyctr.image.reference import parse_reference

DIGEST = "sha256:" + "a" * 64

NORMALISED = [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("user/app/sub", "docker.io/user/app/sub:latest", "user/app/sub:latest"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/app:v1", "localhost:5000/app:v1", "localhost:5000/app:v1"),
    ("127.0.0.1:5000/library/busybox", "127.0.0.1:5000/library/busybox:latest",
     "127.0.0.1:5000/library/busybox:latest"),
    ("quay.io/coreos/etcd", "quay.io/coreos/etcd:latest", "quay.io/coreos/etcd:latest"),
    ("example.com/a/b:tag", "example.com/a/b:tag", "example.com/a/b:tag"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}"),
    (f"busybox:1@{DIGEST}", f"docker.io/library/busybox:1@{DIGEST}", f"busybox:1@{DIGEST}"),
    ("ab/c-d_e.f__g--h", "docker.io/ab/c-d_e.f__g--h:latest", "ab/c-d_e.f__g--h:latest"),
    ("[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest"),
    ("Uppercase.io/app", "Uppercase.io/app:latest", "Uppercase.io/app:latest"),
]


@pytest.mark.parametrize("text,full,familiar", NORMALISED)
def test_normalisation(text, full, familiar):
    ref = parse_reference(text)
    assert str(ref) == full
    assert ref.familiar == familiar


def test_docker_hub_api_host():
    assert parse_reference("busybox").api_host == "registry-1.docker.io"
    assert parse_reference("index.docker.io/x/y").api_host == "registry-1.docker.io"
    assert parse_reference("quay.io/x/y").api_host == "quay.io"


def test_digest_only_has_no_default_tag():
    ref = parse_reference(f"busybox@{DIGEST}")
    assert ref.tag is None and ref.digest == DIGEST and ref.reference == DIGEST


def test_tag_kept_with_digest_but_digest_wins():
    ref = parse_reference(f"busybox:1.36@{DIGEST}")
    assert ref.tag == "1.36" and ref.reference == DIGEST


def test_uppercase_first_component_is_a_registry():
    # Docker: a first component that is not all lowercase is taken as a domain.
    ref = parse_reference("Foo/bar")
    assert ref.registry == "Foo" and ref.repository == "bar"


LOWERCASE = "invalid reference format: repository name must be lowercase"

INVALID = [
    ("", "invalid reference format: repository name must have at least one component"),
    ("Busybox", LOWERCASE),
    ("user/Busybox", LOWERCASE),
    ("docker.io/User/app", LOWERCASE),
    ("busybox:", "invalid reference format"),
    ("busybox@", "invalid reference format"),
    (":tag", "invalid reference format"),
    ("busybox:bad tag", "invalid reference format"),
    ("busybox:" + "a" * 129, "invalid reference format"),
    ("busybox:-tag", "invalid reference format"),
    ("-busybox", "invalid reference format"),
    ("busybox-", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("a/b/", "invalid reference format"),
    ("a___b", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("busybox@sha256:" + "a" * 40, "invalid checksum digest length"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("busybox@sha256:" + "Z" * 64, "invalid reference format"),
    ("a" * 64, f"invalid repository name ({'a' * 64}), cannot specify 64-byte hexadecimal strings"),
    ("docker.io/" + "a" * 256, "invalid reference format: repository name must not be more than 255 characters"),
]


@pytest.mark.parametrize("text,message", INVALID)
def test_invalid(text, message):
    with pytest.raises(InvalidReference) as e:
        parse_reference(text)
    assert e.value.message == message
    assert e.value.exit_code == 125


def test_valid_tag_edges():
    assert parse_reference("busybox:" + "a" * 128).tag == "a" * 128
    assert parse_reference("busybox:_x.y-Z").tag == "_x.y-Z"


def test_with_tag_and_digest_helpers():
    ref = parse_reference("quay.io/a/b:1")
    assert str(ref.with_digest(DIGEST)) == f"quay.io/a/b:1@{DIGEST}"  # distribution keeps the tag
    assert str(ref.with_digest(DIGEST).with_tag("2")) == f"quay.io/a/b:2@{DIGEST}"  # ... and the digest
    assert str(ref.trimmed().with_digest(DIGEST)) == f"quay.io/a/b@{DIGEST}"  # a repo digest
    assert ref.name == "quay.io/a/b" and ref.familiar_name == "quay.io/a/b"


def test_a_dotted_first_component_must_be_a_host():
    """`a.b_c/d`: Docker takes `a.b_c` as the registry but distribution then finds no valid domain; refused."""
    with pytest.raises(InvalidReference, match="invalid reference format"):
        parse_reference("0.0_0/0")
    assert parse_reference("a.b-c/d").registry == "a.b-c"
