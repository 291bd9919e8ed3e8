"""The Dockerfile parser and the word lexer, against Docker's documented rules (tables)."""

from __future__ import annotations

import pytest

from pyctr.build.parser import parse_dockerfile, parse_trigger
from pyctr.build.shell_words import process_word, process_words, split_words
from pyctr.errors import BuildError, DockerfileSyntaxError


def only(text: str):
    """The single in-stage instruction of `FROM scratch\\n<text>`."""
    stage = parse_dockerfile("FROM scratch\n" + text).stages[0]
    assert len(stage.instructions) == 1, stage.instructions
    return stage.instructions[0]


# --- variable substitution (buildkit shell lexer) ------------------------------------------

ENV = {"A": "a", "EMPTY": "", "SP": "x y"}


@pytest.mark.parametrize("word, expected", [
    ("$A", "a"),
    ("${A}", "a"),
    ("pre${A}post", "preapost"),
    ("$A/b", "a/b"),
    ("$UNSET", ""),
    ("${UNSET:-def}", "def"),
    ("${EMPTY:-def}", "def"),
    ("${EMPTY-def}", ""),
    ("${UNSET-def}", "def"),
    ("${A:-def}", "a"),
    ("${A:+alt}", "alt"),
    ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"),
    ("${UNSET+alt}", ""),
    ("${UNSET:-$A}", "a"),
    (r"\$A", "$A"),
    ("'$A'", "$A"),
    ('"$A"', "a"),
    ('"a \\"q\\" b"', 'a "q" b'),
    ('"\\n"', "\\n"),
    ("a\\ b", "a b"),
    ("$", "$"),
    ("a$", "a$"),
    ("$1", ""),
    ("$SP", "x y"),
    ('"${SP}"', "x y"),
])
def test_process_word(word, expected):
    assert process_word(word, ENV) == expected


def test_backtick_escape():
    assert process_word("`$A", ENV, escape="`") == "$A"
    assert process_word("C:\\path", ENV, escape="`") == "C:\\path"


@pytest.mark.parametrize("word", ["${A", "'open", '"open', "${A:?is required}", "${UNSET?}", "${A:x}"])
def test_process_word_errors(word):
    with pytest.raises(BuildError):
        process_word(word, {"A": ""} if "?" in word else ENV)


def test_required_variable_present():
    assert process_word("${A:?missing}", ENV) == "a"


def test_process_words_splits_after_quotes():
    assert process_words('80 "443/tcp" $A', ENV) == ["80", "443/tcp", "a"]
    assert process_words("", ENV) == []


def test_split_words_keeps_quotes_raw():
    assert split_words('a="b c" d=\'e f\' g\\ h') == ['a="b c"', "d='e f'", "g\\ h"]


# --- line structure ------------------------------------------------------------------------


def test_comments_and_blank_lines_are_skipped():
    df = parse_dockerfile("# hello\n\nFROM scratch\n  # indented comment\nUSER me\n")
    assert [i.cmd for i in df.stages[0].instructions] == ["user"]


def test_continuation_joins_and_skips_comment_lines():
    inst = only("RUN echo a \\\n  # a comment\n\n  && echo b\n")
    assert inst.args == ("echo a   && echo b",)
    assert inst.line == 2


def test_doubled_escape_at_the_end_does_not_continue():
    """buildkit: `\\\\` at the end is an escaped escape, not a continuation (the next line stands alone)."""
    df = parse_dockerfile("FROM scratch\nRUN echo a\\\\\nUSER me\n")
    run, user = df.stages[0].instructions
    assert run.args == ("echo a\\\\",)
    assert user.cmd == "user" and user.line == 3


def test_continuation_with_trailing_whitespace_after_escape():
    inst = only("RUN echo a \\  \n b\n")
    assert inst.args == ("echo a  b",)


def test_escape_directive_backtick():
    df = parse_dockerfile("# escape=`\nFROM scratch\nRUN dir `\n  c:\\\nCOPY a\\b c:\\\n")
    assert df.escape == "`"
    run, copy = df.stages[0].instructions
    assert run.args == ("dir   c:\\",)
    assert copy.args == ("a\\b", "c:\\")


@pytest.mark.parametrize("text, directives", [
    ("# syntax=docker/dockerfile:1\n# escape=\\\nFROM scratch\n", {"syntax": "docker/dockerfile:1", "escape": "\\"}),
    ("#escape = `\nFROM scratch\n", {"escape": "`"}),
    ("# comment\n# escape=`\nFROM scratch\n", {}),  # after a comment: not a directive
    ("\n# escape=`\nFROM scratch\n", {}),  # after a blank line: not a directive
    ("FROM scratch\n# escape=`\n", {}),
    ("# unknown=x\n# escape=`\nFROM scratch\n", {}),
])
def test_directives_only_at_top(text, directives):
    assert parse_dockerfile(text).directives == directives


@pytest.mark.parametrize("text, message", [
    ("FROM scratch\nRUNN x\n", "Dockerfile:2: unknown instruction: RUNN"),
    ("# escape=x\nFROM scratch\n", "Dockerfile:1: invalid escape token"),
    ("# escape=`\n# escape=\\\nFROM scratch\n", "Dockerfile:2: only one escape parser directive"),
    ("RUN x\n", "Dockerfile:1: RUN instruction before FROM"),
    ("", "Dockerfile: file with no instructions"),
    ("ARG A\n", "no FROM instruction"),
    ("FROM scratch\nCOPY a\n", "Dockerfile:2: COPY requires at least 2 arguments"),
    ("FROM scratch\nSHELL /bin/sh -c\n", "Dockerfile:2: SHELL requires the arguments to be in JSON form"),
    ("FROM scratch\nENV\n", "Dockerfile:2: ENV requires at least one argument"),
    ("FROM scratch\nENV a=b c\n", "Dockerfile:2: Syntax error - can't find = in \"c\""),
    ("FROM scratch\nENV onlykey\n", "Dockerfile:2: ENV must have two arguments"),
    ("FROM scratch\nCOPY --bogus=1 a b\n", "Dockerfile:2: COPY: unknown flag: --bogus"),
    ("FROM scratch\nUSER --x=1 me\n", "Dockerfile:2: USER: unknown flag: --x"),
    ("FROM a b\n", "Dockerfile:1: FROM requires either one or three arguments"),
    ("FROM a AS 1bad\n", "invalid name for build stage"),
    ("FROM a AS x\nFROM b AS x\n", "Dockerfile:2: duplicate name x"),
    ("FROM scratch\nONBUILD ONBUILD RUN x\n", "Chaining ONBUILD"),
    ("FROM scratch\nONBUILD FROM x\n", "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM scratch\nRUN <<EOF\nno end\n", "Dockerfile:2: unterminated heredoc"),
    ('FROM scratch\nRUN ["echo", 1]\n', "Dockerfile:2: when using JSON array syntax, arrays must be comprised of "
                                         "strings only"),  # buildkit: an error, not shell form
    ("FROM scratch\nHEALTHCHECK FOO x\n", "Unknown type \"FOO\" in HEALTHCHECK"),
    ("FROM scratch\nWORKDIR\n", "WORKDIR requires exactly one argument"),
])
def test_syntax_errors_name_file_and_line(text, message):
    with pytest.raises(DockerfileSyntaxError) as err:
        parse_dockerfile(text)
    assert message in err.value.message
    assert "\n" not in err.value.message


def test_error_names_custom_file():
    with pytest.raises(DockerfileSyntaxError, match="^build.df:1: unknown instruction: FOO$"):
        parse_dockerfile("FOO bar\n", "build.df")


def test_instructions_are_case_insensitive():
    inst = only("run echo hi\n")
    assert inst.cmd == "run" and inst.text == "run echo hi"  # Docker echoes the line as written


def test_crlf_and_bom():
    df = parse_dockerfile("\ufeffFROM scratch\r\nUSER me\r\n")
    assert df.stages[0].instructions[0].args == ("me",)


# --- argument shapes -----------------------------------------------------------------------


@pytest.mark.parametrize("line, args, json_form", [
    ('RUN ["echo", "hi"]', ("echo", "hi"), True),
    ("RUN echo hi", ("echo hi",), False),
    ("RUN [ -f x ] && echo", ("[ -f x ] && echo",), False),
    ('CMD ["sh"]', ("sh",), True),
    ("CMD []", (), True),
    ("ENTRYPOINT python server.py", ("python server.py",), False),
    ('SHELL ["/bin/bash", "-c"]', ("/bin/bash", "-c"), True),
    ('COPY ["a b", "/c/"]', ("a b", "/c/"), True),
    ("COPY a b /c/", ("a", "b", "/c/"), False),
    ("ADD server.py /server.py", ("server.py", "/server.py"), False),
    ('VOLUME ["/data", "/logs"]', ("/data", "/logs"), True),
    ("VOLUME /data /logs", ("/data", "/logs"), False),
    ("EXPOSE 80 443/tcp", ("80", "443/tcp"), False),
    ("USER 1000:1000", ("1000:1000",), False),
    ("WORKDIR /path with space", ("/path with space",), False),
    ("STOPSIGNAL SIGKILL", ("SIGKILL",), False),
    ("MAINTAINER me <me@example.org>", ("me <me@example.org>",), False),
])
def test_argument_forms(line, args, json_form):
    inst = only(line + "\n")
    assert inst.args == args
    assert inst.json_form is json_form


@pytest.mark.parametrize("line, pairs", [
    ('ENV a=b c="d e" f=g\\ h', (("a", "b"), ("c", '"d e"'), ("f", "g\\ h"))),
    ("ENV key the whole value", (("key", "the whole value"),)),
    ('LABEL "com.example"="v" other=1', (('"com.example"', '"v"'), ("other", "1"))),
    ("LABEL legacy value here", (("legacy", "value here"),)),
    ("ARG A", (("A", None),)),
    ("ARG A=1 B", (("A", "1"), ("B", None))),
    ("ARG A=", (("A", ""),)),
])
def test_name_value_pairs(line, pairs):
    assert only(line + "\n").pairs == pairs


def test_flags():
    inst = only("COPY --from=build --chown=app:app --chmod=0755 a /b\n")
    assert inst.flags == (("from", "build"), ("chown", "app:app"), ("chmod", "0755"))
    assert inst.flag("from") == "build" and inst.flag("link") is None
    assert inst.args == ("a", "/b")
    assert only("COPY --link a /b\n").flag("link") == "true"


def test_from_forms():
    df = parse_dockerfile("ARG V=1\nFROM --platform=linux/amd64 busybox:${V} AS Build\nFROM build\n")
    first, second = df.stages
    assert first.name == "build" and first.base == "busybox:${V}" and first.platform == "linux/amd64"
    assert second.name is None and second.base == "build"
    assert [a.pairs for a in df.meta_args] == [(("V", "1"),)]
    assert df.step_count == 3


def test_healthcheck_forms():
    inst = only('HEALTHCHECK --interval=5s --retries=3 CMD ["curl", "-f", "x"]\n')
    assert inst.args == ("CMD", "curl", "-f", "x") and inst.json_form
    assert only("HEALTHCHECK NONE\n").args == ("NONE",)
    shell = only("HEALTHCHECK CMD curl -f localhost || exit 1\n")
    assert shell.args == ("CMD", "curl -f localhost || exit 1") and not shell.json_form


def test_onbuild_keeps_the_trigger():
    inst = only("ONBUILD copy . /app\n")
    assert inst.sub is not None and inst.sub.cmd == "copy" and inst.sub.args == (".", "/app")
    assert parse_trigger("RUN echo hi").args == ("echo hi",)


# --- heredocs ------------------------------------------------------------------------------


def test_run_heredoc():
    inst = only("RUN <<EOF\necho one\necho two\nEOF\n")
    (doc,) = inst.heredocs
    assert doc.name == "EOF" and doc.content == "echo one\necho two\n" and doc.expand and not doc.chomp


def test_heredoc_chomp_and_quoted_delimiters():
    inst = only("RUN <<-'END' cat\n\techo $x\n\tEND\n")
    (doc,) = inst.heredocs
    assert doc.content == "echo $x\n" and doc.chomp and not doc.expand
    assert only('COPY <<"X" /f\n$a\nX\n').heredocs[0].expand is False


def test_multiple_heredocs_and_following_instructions():
    df = parse_dockerfile("FROM scratch\nCOPY <<A <<B /dir/\naaa\nA\nbbb\nB\nUSER me\n")
    copy, user = df.stages[0].instructions
    assert [(d.name, d.content) for d in copy.heredocs] == [("A", "aaa\n"), ("B", "bbb\n")]
    assert user.args == ("me",) and user.line == 7


def test_heredoc_not_recognised_in_exec_form_or_other_instructions():
    assert only('RUN ["cat", "<<EOF"]\n').heredocs == ()
    assert only("ENV X=<<EOF\n").heredocs == ()


def test_stage_grouping():
    df = parse_dockerfile("ARG A\nFROM a AS one\nRUN x\nFROM one\nUSER u\nCMD c\n")
    assert [len(s.instructions) for s in df.stages] == [1, 2]
    assert df.step_count == 6
