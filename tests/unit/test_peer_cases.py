"""Conformance: other projects' own test tables, run against pyctr's ports of their code.

The tables live in `../shared/peer-cases` beside the checkout (tests/peer_cases.py
finds them) and are never copied here: BuildKit's Dockerfile parser testfiles
(Dockerfile + `result` AST dump) and parser/lexer tables, moby/patternmatcher
(.dockerignore), distribution/reference and docker/go-units. Every case is its
own test, named after the table it comes from, so a regression names the exact
upstream case. A missing folder fails `test_peer_tables_present` (no skip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyctr.build.dockerfile_ast import (
    heredocs_from_line,
    name_values,
    parse_ast,
    parse_directives,
    parse_json_array,
)
from pyctr.build.dockerignore import Matcher, compile_patterns, read_ignore_lines
from pyctr.build.shell_words import Lexer, split_words
from pyctr.errors import BuildError, InvalidReference, PyctrError
from pyctr.image.reference import (
    DOMAIN_REGEX,
    IDENTIFIER_REGEX,
    REFERENCE_REGEX,
    familiar_match,
    parse_any_reference,
    parse_docker_ref,
    parse_raw,
    parse_reference,
    with_name,
)
from pyctr.units import bytes_size, from_human_size, human_duration, human_size, ram_in_bytes
from tests.peer_cases import buildkit_dir, peer_cases_dir, table_or_empty

PARSER = table_or_empty("buildkit-parser-tables.json")
LEX = table_or_empty("buildkit-lex-tables.json")
IGNORE = table_or_empty("patternmatcher-cases.json")
REFS = table_or_empty("reference-cases.json")
UNITS = table_or_empty("go-units-cases.json")


def test_peer_tables_present():
    """The tables must be there: a conformance suite that silently runs nothing proves nothing."""
    folder = peer_cases_dir()
    for name in ("buildkit", "buildkit-lex-tables.json", "buildkit-parser-tables.json", "go-units-cases.json",
                 "patternmatcher-cases.json", "reference-cases.json"):
        assert (folder / name).exists(), f"{folder / name} is missing"


def test_missing_tables_fail_with_a_clear_message(monkeypatch, tmp_path):
    """Outside a checkout with ../shared/peer-cases the helper raises (so test_peer_tables_present fails)."""
    import tests.peer_cases as helper

    monkeypatch.setattr(helper, "REPO_ROOT", tmp_path / "nowhere" / "repo")
    helper.peer_cases_dir.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="peer test tables not found: no shared/peer-cases folder"):
            helper.peer_cases_dir()
        assert helper.table_or_empty("reference-cases.json") == {}
    finally:
        helper.peer_cases_dir.cache_clear()


def cases(table: dict[str, Any], name: str) -> list[Any]:
    return list(table.get(name) or [])


def _buildkit_dirs(sub: str) -> list[Path]:
    try:
        root = buildkit_dir() / "parser" / sub
    except FileNotFoundError:
        return []
    return sorted(p for p in root.iterdir() if p.is_dir())


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


# --- BuildKit parser ------------------------------------------------------------------------


@pytest.mark.parametrize("case", _buildkit_dirs("testfiles"), ids=lambda p: f"parser-testfile-{p.name}")
def test_buildkit_parser_testfiles(case: Path):
    """frontend/dockerfile/parser TestParseCases: the AST dump equals buildkit's `result` file."""
    assert parse_ast(_read(case / "Dockerfile")).dump() + "\n" == _read(case / "result")


@pytest.mark.parametrize("case", _buildkit_dirs("testfiles-negative"), ids=lambda p: f"parser-negative-{p.name}")
def test_buildkit_parser_negative_testfiles(case: Path):
    with pytest.raises(PyctrError):
        parse_ast(_read(case / "Dockerfile"))


def test_buildkit_parse_includes_line_numbers():
    table = PARSER["TestParseIncludesLineNumbers"]
    tree = parse_ast(_read(buildkit_dir() / "parser" / table["file"]))
    assert [n.start_line for n in tree.children] == table["start_lines"]
    assert [n.end_line for n in tree.children] == table["end_lines"]


@pytest.mark.parametrize("case", cases(PARSER, "TestParseWords"), ids=lambda c: f"parser-words-{c['input']}")
def test_buildkit_parse_words(case):
    assert split_words(case["input"]) == case["expect"]


@pytest.mark.parametrize("text, expected", list((PARSER.get("TestJSONArraysOfStrings") or {}).get("valid", {}).items()),
                         ids=lambda v: "parser-json-valid" if isinstance(v, str) else "")
def test_buildkit_json_arrays_valid(text, expected):
    assert parse_json_array(text) == expected


@pytest.mark.parametrize("text", (PARSER.get("TestJSONArraysOfStrings") or {}).get("invalid", []),
                         ids=lambda t: f"parser-json-invalid-{t}")
def test_buildkit_json_arrays_invalid(text):
    """`CMD ["a", 42]` is an error in buildkit, not a shell-form command."""
    with pytest.raises(BuildError, match="arrays must be comprised of strings only"):
        parse_json_array(text)


@pytest.mark.parametrize("case", cases(PARSER, "TestParseNameVal"), ids=lambda c: f"parser-nameval-{c['test']}")
def test_buildkit_parse_name_val(case):
    if case.get("error"):
        with pytest.raises(BuildError, match="must have two arguments"):
            name_values(case["rest"], case["cmd"])
        return
    separator = "" if case.get("legacy") else "="
    assert name_values(case["rest"], case["cmd"]) == [(k, v, separator) for k, v in case["pairs"]]


@pytest.mark.parametrize("case", cases(PARSER, "TestDirectives"), ids=lambda c: f"parser-directives-{c['text']!r}")
def test_buildkit_directives(case):
    assert parse_directives(case["text"]) == case["expected"]


def _heredoc_cases() -> list[tuple[int, dict]]:
    table = PARSER.get("TestParseExtractsHeredoc") or {}
    return list(enumerate(table.get("cases") or []))


@pytest.mark.parametrize("index, case", _heredoc_cases(), ids=lambda v: f"parser-heredoc-{v}" if isinstance(v, int)
                         else "")
def test_buildkit_extracts_heredocs(index, case):
    node = parse_ast(PARSER["TestParseExtractsHeredoc"]["dockerfile"]).children[index + 1]
    assert node.start_line == case["start_line"]
    assert node.original == case["line_text"]
    got = [{"Name": h.name, "Content": h.content, "Expand": h.expand, "Chomp": h.chomp, "FileDescriptor": h.fd}
           for h in node.heredocs]
    want = [{"Name": h["Name"], "Content": h["Content"], "Expand": h.get("Expand", False),
             "Chomp": h.get("Chomp", False), "FileDescriptor": h.get("FileDescriptor", 0)}
            for h in case["heredocs"] or []]
    assert got == want


@pytest.mark.parametrize("case", cases(PARSER, "TestHeredocsFromLine"),
                         ids=lambda c: f"parser-heredoc-line-{c['line']}")
def test_buildkit_heredocs_from_line(case):
    """Upstream checks each heredoc found against the list (`RUN <<- EOF` finds none in buildkit, nor here)."""
    names = [h.name for h in heredocs_from_line(case["line"])]
    assert names == case["names"][: len(names)]
    if case["line"] != "RUN <<- EOF":
        assert names == case["names"]


# --- BuildKit shell lexer -------------------------------------------------------------------

_ENV_VAR_TEST_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _env_var_lines() -> list[tuple[int, str, str]]:
    """shell/envVarTest: `platform|input|expected`; A (all) and U (unix) lines apply to us."""
    try:
        text = _read(buildkit_dir() / "shell" / "envVarTest")
    except FileNotFoundError:
        return []
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("#") or not line.strip():
            continue
        platform, source, expected = (part.strip() for part in line.strip().split("|"))
        if platform in ("A", "U"):
            out.append((number, source, expected))
    return out


@pytest.mark.parametrize("number, source, expected", _env_var_lines(),
                         ids=lambda v: f"lex-envVarTest-{v}" if isinstance(v, int) else "")
def test_buildkit_env_var_test(number, source, expected):
    lexer = Lexer("\\")
    if expected == "error":
        with pytest.raises(BuildError):
            lexer.process(source, _ENV_VAR_TEST_ENV)
        return
    assert lexer.process(source, _ENV_VAR_TEST_ENV).word == expected


def _words_lines() -> list[tuple[int, str, list[str], dict[str, str]]]:
    """shell/wordsTest: `ENV k=v` lines add to the environment; `input | w1,w2` lines are cases.

    Upstream runs the file once (its second, raw-quotes mode reads an exhausted scanner).
    """
    try:
        text = _read(buildkit_dir() / "shell" / "wordsTest")
    except FileNotFoundError:
        return []
    env: dict[str, str] = {}
    out = []
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("#") or not line:
            continue
        if line.startswith("ENV "):
            key, _, value = line[3:].lstrip(" ").partition("=")
            env[key] = value
            continue
        source, expected = line.split("|")
        out.append((number, source.strip(), expected.lstrip(" ").split(","), dict(env)))
    return out


@pytest.mark.parametrize("number, source, expected, env", _words_lines(),
                         ids=lambda v: f"lex-wordsTest-{v}" if isinstance(v, int) else "")
def test_buildkit_words_test(number, source, expected, env):
    try:
        words = Lexer("\\").process(source, env).words
    except BuildError:
        words = ["error"]
    assert words == expected


@pytest.mark.parametrize("case", cases(LEX, "TestShellParserMandatoryEnvVars"),
                         ids=lambda c: f"lex-mandatory-{c['input']}-{sorted(c['envs'])}")
def test_buildkit_mandatory_env_vars(case):
    if "error_contains" in case:
        with pytest.raises(BuildError, match=case["error_contains"]):
            Lexer("\\").process(case["input"], case["envs"])
        return
    assert Lexer("\\").process(case["input"], case["envs"]).word == case["expected"]


@pytest.mark.parametrize("case", cases(LEX, "TestProcessWithMatches"), ids=lambda c: f"lex-matches-{c['input']}")
def test_buildkit_process_with_matches(case):
    """`${VAR#..}`, `${VAR%%..}`, `${VAR//..}`, `:-`, `:+`, `:?` and which variables were looked up."""
    if case.get("expectedErr"):
        with pytest.raises(BuildError):
            Lexer("\\").process(case["input"], case["envs"])
        return
    result = Lexer("\\").process(case["input"], case["envs"])
    assert result.word == case["expected"]
    assert result.matched == set(case.get("matches") or [])
    assert result.unmatched == set(case.get("unmatched") or [])


@pytest.mark.parametrize("case", cases(LEX, "TestProcessWithMatchesPlatform"),
                         ids=lambda c: f"lex-platform-{c['expected']}")
def test_buildkit_process_with_matches_platform(case):
    assert Lexer("\\").process(case["input"], case["envs"]).word == case["expected"]


# --- moby/patternmatcher (.dockerignore) ----------------------------------------------------


def _matches_or_parent(patterns: list[str], text: str) -> bool:
    return Matcher(compile_patterns(patterns)).excluded(text)


@pytest.mark.parametrize("case", cases(IGNORE, "TestMatches"),
                         ids=lambda c: f"ignore-matches-{c['pattern']}-{c['text']}")
def test_patternmatcher_matches(case):
    assert _matches_or_parent([case["pattern"]], case["text"]) is case["pass"]


@pytest.mark.parametrize("case", cases(IGNORE, "TestMatches_multi"),
                         ids=lambda c: f"ignore-multi-{c['patterns']}-{c['text']}")
def test_patternmatcher_matches_multi(case):
    assert _matches_or_parent(case["patterns"], case["text"]) is case["pass"]


@pytest.mark.parametrize("case", cases(IGNORE, "TestMatch_filepath"),
                         ids=lambda c: f"ignore-filepath-{c['pattern']}-{c['s']}")
def test_patternmatcher_filepath_match(case):
    """Go's filepath.Match table through patternmatcher.Matches; malformed patterns are errors."""
    if case["err"]:
        with pytest.raises(BuildError, match="syntax error in pattern"):
            Matcher(compile_patterns([case["pattern"]])).excluded_legacy(case["s"])
        return
    assert Matcher(compile_patterns([case["pattern"]])).excluded_legacy(case["s"]) is case["match"]


@pytest.mark.parametrize("case", cases(IGNORE, "simple"), ids=lambda c: f"ignore-simple-{c['test']}")
def test_patternmatcher_simple(case):
    if case.get("error"):
        with pytest.raises(BuildError):
            Matcher(compile_patterns(case["patterns"])).excluded_legacy(case["file"])
        return
    assert Matcher(compile_patterns(case["patterns"])).excluded_legacy(case["file"]) is case["match"]


@pytest.mark.parametrize("case", cases(IGNORE, "clean_patterns"), ids=lambda c: f"ignore-clean-{c['test']}")
def test_patternmatcher_clean_patterns(case):
    if case.get("error"):
        with pytest.raises(BuildError, match='illegal exclusion pattern: "!"'):
            compile_patterns(case["patterns"])
        return
    patterns = compile_patterns(case["patterns"])
    if "count" in case:
        assert len(patterns) == case["count"]
    if "exclusions" in case:
        assert any(p.exclusion for p in patterns) is case["exclusions"]


@pytest.mark.parametrize("case", cases(IGNORE, "ignorefile_ReadAll"), ids=lambda c: f"ignore-readall-{c['test']}")
def test_ignorefile_read_all(case):
    assert read_ignore_lines(case["content"]) == case["expected"]


# --- distribution/reference -----------------------------------------------------------------

_REFERENCE_ERRORS = {
    "ErrNameEmpty": "at least one component",
    "ErrReferenceInvalidFormat": "invalid reference format",
    "ErrNameContainsUppercase": "must be lowercase",
    "ErrNameTooLong": "must not be more than 255 characters",
    "digest.ErrDigestInvalidLength": "invalid checksum digest length",
    "digest.ErrDigestUnsupported": "unsupported digest algorithm",
    "digest.ErrDigestInvalidFormat": "invalid checksum digest format",
}


def _short(value: str) -> str:
    return value if len(value) < 60 else value[:40] + f"...({len(value)})"


@pytest.mark.parametrize("case", cases(REFS, "TestReferenceParse"), ids=lambda c: f"ref-parse-{_short(c['input'])}")
def test_reference_parse(case):
    if "err" in case:
        with pytest.raises(InvalidReference, match=_REFERENCE_ERRORS[case["err"]]):
            parse_raw(case["input"])
        return
    ref = parse_raw(case["input"])
    assert ref.name == case.get("repository", "")
    assert ref.domain == case.get("domain", "")
    assert ref.tag == case.get("tag")
    assert ref.digest == case.get("digest")


@pytest.mark.parametrize("case", cases(REFS, "TestSerialization"),
                         ids=lambda c: f"ref-serialization-{c['description']}")
def test_reference_serialization(case):
    if "err" in case:
        with pytest.raises(InvalidReference, match=_REFERENCE_ERRORS[case["err"]]):
            parse_raw(case.get("input", ""))
        return
    ref = parse_raw(case["input"])
    assert (ref.name, ref.tag, ref.digest) == (case["name"], case.get("tag"), case.get("digest"))
    assert str(ref) == case["input"]


@pytest.mark.parametrize("case", cases(REFS, "TestWithTag"), ids=lambda c: f"ref-with-tag-{c['combined']}")
def test_reference_with_tag(case):
    """WithTag keeps a digest already there (`name:tag@digest`)."""
    ref = with_name(case["name"])
    if "digest" in case:
        ref = ref.with_digest(case["digest"])
    assert str(ref.with_tag(case["tag"])) == case["combined"]


@pytest.mark.parametrize("case", cases(REFS, "TestWithDigest"), ids=lambda c: f"ref-with-digest-{c['combined']}")
def test_reference_with_digest(case):
    """WithDigest keeps a tag already there (`name:tag@digest`)."""
    ref = with_name(case["name"])
    if "tag" in case:
        ref = ref.with_tag(case["tag"])
    assert str(ref.with_digest(case["digest"])) == case["combined"]


def _validate_cases(table: str) -> list[tuple[str, bool]]:
    data = REFS.get(table) or {}
    return [(name, True) for name in data.get("valid", [])] + [(name, False) for name in data.get("invalid", [])]


@pytest.mark.parametrize("name, valid", _validate_cases("TestValidateReferenceName"),
                         ids=lambda v: f"ref-validate-name-{_short(v)}" if isinstance(v, str) else "")
def test_reference_validate_reference_name(name, valid):
    _check_normalized(name, valid)


@pytest.mark.parametrize("name, valid", _validate_cases("TestValidateRemoteName"),
                         ids=lambda v: f"ref-validate-remote-{_short(v)}" if isinstance(v, str) else "")
def test_reference_validate_remote_name(name, valid):
    _check_normalized(name, valid)


def _check_normalized(name: str, valid: bool) -> None:
    if valid:
        parse_reference(name, default_tag=False)
    else:
        with pytest.raises(InvalidReference):
            parse_reference(name, default_tag=False)


@pytest.mark.parametrize("case", cases(REFS, "TestParseRepositoryInfo"),
                         ids=lambda c: f"ref-repository-info-{c['FullName']}")
def test_reference_parse_repository_info(case):
    for text in filter(None, (case["FamiliarName"], case["FullName"], case["AmbiguousName"])):
        ref = parse_reference(text, default_tag=False)
        assert ref.familiar_name == case["FamiliarName"]
        assert str(ref) == case["FullName"]
        assert ref.registry == case["Domain"]
        assert ref.repository == case["RemoteName"]


@pytest.mark.parametrize("case", cases(REFS, "TestParseAnyReference"), ids=lambda c: f"ref-any-{c['Reference']}")
def test_reference_parse_any_reference(case):
    assert str(parse_any_reference(case["Reference"])) == case["Equivalent"]


@pytest.mark.parametrize("case", cases(REFS, "TestNormalizedSplitHostname"), ids=lambda c: f"ref-split-{c['input']}")
def test_reference_normalized_split_hostname(case):
    ref = parse_reference(case["input"], default_tag=False)
    assert (ref.registry, ref.repository) == (case["domain"], case["path"])


@pytest.mark.parametrize("case", cases(REFS, "TestMatch"), ids=lambda c: f"ref-match-{c['reference']}-{c['pattern']}")
def test_reference_familiar_match(case):
    assert familiar_match(case["pattern"], parse_reference(case["reference"], default_tag=False)) is case["expected"]


@pytest.mark.parametrize("case", cases(REFS, "TestParseDockerRef"), ids=lambda c: f"ref-docker-ref-{c['name']}")
def test_reference_parse_docker_ref(case):
    assert str(parse_docker_ref(case["input"])) == case["expected"]


@pytest.mark.parametrize("case", cases(REFS, "TestDomainRegexp"), ids=lambda c: f"ref-domain-re-{c['input']}")
def test_reference_domain_regexp(case):
    assert (DOMAIN_REGEX.fullmatch(case["input"]) is not None) is case["match"]


@pytest.mark.parametrize("case", cases(REFS, "TestFullNameRegexp"), ids=lambda c: f"ref-name-re-{_short(c['input'])}")
def test_reference_full_name_regexp(case):
    try:
        ref = with_name(case["input"])
    except InvalidReference:
        assert not case["match"]
        return
    assert case["match"]
    if "subs" in case:
        assert [ref.domain, ref.path] == case["subs"]


@pytest.mark.parametrize("case", cases(REFS, "TestReferenceRegexp"), ids=lambda c: f"ref-reference-re-{c['input']}")
def test_reference_reference_regexp(case):
    match = REFERENCE_REGEX.fullmatch(case["input"])
    assert (match is not None) is case["match"]
    if match and "subs" in case:
        assert [g or "" for g in match.groups()] == case["subs"]


@pytest.mark.parametrize("case", cases(REFS, "TestIdentifierRegexp"), ids=lambda c: f"ref-identifier-re-{c['input']}")
def test_reference_identifier_regexp(case):
    assert (IDENTIFIER_REGEX.fullmatch(case["input"]) is not None) is case["match"]


# --- docker/go-units ------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases(UNITS, "TestFromHumanSize"), ids=lambda c: f"units-from-human-{c['input']!r}")
def test_units_from_human_size(case):
    if case.get("error"):
        with pytest.raises(ValueError):
            from_human_size(case["input"])
        return
    assert from_human_size(case["input"]) == case["expected"]


@pytest.mark.parametrize("case", cases(UNITS, "TestRAMInBytes"), ids=lambda c: f"units-ram-{c['input']!r}")
def test_units_ram_in_bytes(case):
    """`-m " 32 "` is refused, as Docker refuses it."""
    if case.get("error"):
        with pytest.raises(ValueError):
            ram_in_bytes(case["input"])
        return
    assert ram_in_bytes(case["input"]) == case["expected"]


@pytest.mark.parametrize("case", cases(UNITS, "TestHumanSize"), ids=lambda c: f"units-human-size-{c['input']}")
def test_units_human_size(case):
    """go-units HumanSize is HumanSizeWithPrecision(size, 4)."""
    assert human_size(case["input"], precision=4) == case["expected"]


@pytest.mark.parametrize("case", cases(UNITS, "TestBytesSize"), ids=lambda c: f"units-bytes-size-{c['input']}")
def test_units_bytes_size(case):
    assert bytes_size(case["input"]) == case["expected"]


@pytest.mark.parametrize("case", cases(UNITS, "TestHumanDuration"), ids=lambda c: f"units-duration-{c['go_expr']}")
def test_units_human_duration(case):
    assert human_duration(case["input_seconds"]) == case["expected"]
