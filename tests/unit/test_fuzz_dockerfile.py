"""Property-based tests of the Dockerfile parser: any text parses or is refused with one line naming file and line.

`pyctr build` reads Dockerfiles users wrote by hand (and sometimes generated): a stray quote, a broken heredoc or a
binary file must give Docker's kind of message (`Dockerfile:3: unknown instruction: FORM`), never a traceback.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pyctr.build.parser import parse_dockerfile
from pyctr.errors import BuildError

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FILENAME = "ctx/Dockerfile.fuzz"
# "<file>:<line>: ..." or, for whole-file problems, "<file>: ...".
LOCATED = re.compile(rf"^{re.escape(FILENAME)}(:\d+)?: \S")

VALID = """\
# syntax=docker/dockerfile:1
# escape=\\
ARG BASE=busybox
FROM ${BASE} AS build
ENV A=1 B="two words" \\
    C=3
LABEL org.example.x="y" z=w
RUN echo hello && \\
    echo world
RUN <<EOF
echo in heredoc
EOF
COPY --chown=1000:1000 --chmod=644 a.txt b.txt /dst/
ADD ["src with space", "/dst2/"]
WORKDIR /app
USER app:app
EXPOSE 80/tcp 443
VOLUME ["/data"]
HEALTHCHECK --interval=5s CMD ["true"]
ONBUILD RUN echo later
SHELL ["/bin/sh", "-c"]
STOPSIGNAL SIGTERM
FROM scratch
COPY --from=build /app /app
ENTRYPOINT ["/app/run"]
CMD ["--flag"]
"""

KEYWORDS = ["FROM", "RUN", "CMD", "COPY", "ADD", "ENV", "ARG", "LABEL", "ONBUILD", "HEALTHCHECK", "SHELL",
            "USER", "WORKDIR", "EXPOSE", "VOLUME", "ENTRYPOINT", "STOPSIGNAL", "MAINTAINER", "FORM"]
FRAGMENTS = KEYWORDS + ["\\\n", "`\n", "\n", "<<EOF", "<<-'X'", "EOF\n", "[", "]", '"', "'", "--", "--from=",
                        "=", "$", "${", "}", "# escape=`\n", "# syntax=x\n", " AS ", "\t", "\x00", "\r\n", "\ufeff"]


def _parse_or_refuse(text: str) -> None:
    """Parse; a refusal must be a BuildError whose single line names the file (and line)."""
    try:
        parse_dockerfile(text, FILENAME)
    except BuildError as e:
        assert "\n" not in e.message, repr(e.message)
        assert LOCATED.match(e.message), repr(e.message)


def test_the_valid_dockerfile_parses() -> None:
    """The seed of the mutation tests must itself be valid, or they would only test error paths."""
    parsed = parse_dockerfile(VALID, FILENAME)
    assert len(parsed.stages) == 2


@FUZZ
@given(st.text(max_size=300))
@example("")
@example("\x00")
@example("FROM")
@example("RUN echo\n")
@example("FROM busybox\nRUN <<EOF\n")
@example("FROM busybox\nCOPY <<A <<B /x\nA\n")
@example("# escape=x\nFROM busybox")
@example("# escape=\\\n# escape=`\nFROM busybox")
@example("FROM busybox AS 1bad")
@example("FROM a AS x\nFROM b AS x")
@example("FROM busybox\nONBUILD ONBUILD RUN x")
@example("FROM busybox\nHEALTHCHECK NONE x")
@example('FROM busybox\nENV "')
@example("FROM busybox\nRUN --mount=type=cache true")
def test_random_text_parses_or_is_refused_in_one_line(text: str) -> None:
    _parse_or_refuse(text)


@FUZZ
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=40))
def test_keyword_soup_parses_or_is_refused_in_one_line(parts: list[str]) -> None:
    _parse_or_refuse(" ".join(parts))


@st.composite
def mutated_valid(draw) -> str:
    """The valid Dockerfile with a few slices deleted, duplicated or replaced by grammar fragments."""
    text = VALID
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 30)))
        action = draw(st.sampled_from(["delete", "duplicate", "insert"]))
        if action == "delete":
            text = text[:start] + text[end:]
        elif action == "duplicate":
            text = text[:end] + text[start:end] + text[end:]
        else:
            text = text[:start] + draw(st.sampled_from(FRAGMENTS)) + text[start:]
    return text


@FUZZ
@given(mutated_valid())
def test_mutated_valid_dockerfile_parses_or_is_refused_in_one_line(text: str) -> None:
    _parse_or_refuse(text)
