"""Property-based tests of image reference parsing: hostile text never escapes as anything but InvalidReference.

A reference comes straight from the command line (`pyctr run UPPER`) and from stored tags, so any input must either
parse or be refused with Docker's one-line wording; a valid reference must survive `str()` and `familiar` unchanged,
because tags in the store and credentials are looked up by those strings.
"""

from __future__ import annotations

import string

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pyctr.errors import PyctrError
from pyctr.image.reference import DOCKER_HUB, Reference, parse_reference

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Generating structured references costs more than parsing them: fewer, richer examples.
FUZZ_STRUCTURED = settings(FUZZ, max_examples=120)

# Characters that matter to the grammar, plus some that must be refused.
REFERENCE_ALPHABET = string.ascii_letters + string.digits + "._-/:@[]" + " \t\n\x00é/"

_TAG_FIRST = string.ascii_letters + string.digits + "_"
_alnum = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_separator = st.sampled_from([".", "_", "__", "-", "--"])


@st.composite
def path_components(draw) -> str:
    """One repository path component: alnum runs joined by Docker's separators."""
    parts = [draw(_alnum)]
    for _ in range(draw(st.integers(0, 2))):
        parts += [draw(_separator), draw(_alnum)]
    return "".join(parts)


@st.composite
def valid_references(draw) -> str:
    """References Docker accepts: optional domain (with port), 1-3 components, optional tag and digest."""
    domain = draw(st.one_of(
        st.none(),
        st.just("localhost"),
        st.builds(lambda h, p: f"{h}.example:{p}", _alnum, st.integers(1, 65535)),
        st.builds(lambda h: f"{h}.io", _alnum),
        st.builds(lambda p: f"127.0.0.1:{p}", st.integers(1, 65535)),
    ))
    components = draw(st.lists(path_components(), min_size=1, max_size=3))
    if domain is None and len(components) > 1 and "." in components[0]:
        # Docker reads a dotted first component as a registry: it must then be a valid host name
        # (`a.b_c/d` leaves distribution with an empty domain, which pyctr refuses).
        components[0] = components[0].replace("_", "-")
    text = "/".join(([domain] if domain else []) + components)
    tag = draw(st.one_of(st.none(), st.builds(
        str.__add__, st.sampled_from(_TAG_FIRST), st.text(_TAG_FIRST + ".-", max_size=20))))
    if tag is not None:
        text += f":{tag}"
    if draw(st.booleans()):
        text += "@sha256:" + draw(st.text("0123456789abcdef", min_size=64, max_size=64))
    return text


def _parse_or_refuse(text: str) -> Reference | None:
    """Parse; a refusal must be a one-line PyctrError (anything else propagates and fails the test)."""
    try:
        return parse_reference(text)
    except PyctrError as e:
        assert e.message and "\n" not in e.message, repr(e.message)
        return None


@FUZZ
@given(st.text(REFERENCE_ALPHABET, max_size=80))
@example("UPPER")
@example("busybox@sha256:")
@example("busybox:")
@example(":tag")
@example("@sha256:" + "a" * 64)
@example("a" * 300)
@example("[::1]:5000/app")
@example("localhost:/app")
@example("a/" * 200 + "b")
@example("busybox@md5:" + "a" * 32)
@example("0.0_0/0")
def test_random_text_parses_or_is_refused_in_one_line(text: str) -> None:
    ref = _parse_or_refuse(text)
    if ref is not None:
        assert ref.repository and ref.registry
        assert ref.tag is not None or ref.digest is not None


@FUZZ
@given(st.text(max_size=60))
def test_any_unicode_parses_or_is_refused_in_one_line(text: str) -> None:
    _parse_or_refuse(text)


@FUZZ_STRUCTURED
@given(valid_references())
def test_valid_references_round_trip(text: str) -> None:
    ref = parse_reference(text)
    assert parse_reference(str(ref)) == ref
    assert parse_reference(ref.familiar) == ref
    assert str(ref).startswith(ref.registry + "/")
    if ref.registry == DOCKER_HUB:
        assert "/" in ref.repository


@FUZZ_STRUCTURED
@given(valid_references(), st.integers(0, 200), st.text(REFERENCE_ALPHABET, min_size=1, max_size=3))
def test_mutated_valid_references_parse_or_are_refused(text: str, where: int, insert: str) -> None:
    where %= len(text) + 1
    mutated = text[:where] + insert + text[where:]
    ref = _parse_or_refuse(mutated)
    if ref is not None:
        assert parse_reference(str(ref)) == ref
