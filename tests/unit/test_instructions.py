"""Each instruction's pure function: the next config/history and the step it requests."""

from __future__ import annotations

import pytest

from pyctr.build import instructions as ins
from pyctr.build.parser import parse_dockerfile
from pyctr.errors import BuildError, DockerfileSyntaxError

NOP = "/bin/sh -c #(nop)  "


def start(config=None, build_args=None, meta_args=None):
    return ins.start_stage(config or {}, (), stage_index=0, stage_name=None, build_args=build_args or {},
                           meta_args=meta_args or {}, created="1970-01-01T00:00:00Z")


def apply(text: str, state=None):
    """Apply every instruction of `text` (under a FROM scratch) and return (state, steps)."""
    state = state or start()
    steps = []
    for inst in parse_dockerfile("FROM scratch\n" + text).stages[0].instructions:
        state, step = ins.apply_instruction(state, inst)
        steps.append(step)
    return state, steps


def last_history(state):
    return dict(state.history[-1])


# --- metadata ------------------------------------------------------------------------------


def test_env_uses_values_from_before_the_line():
    state, _ = apply("ENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n")
    assert state.env == {"abc": "bye", "def": "hello", "ghi": "bye"}


def test_env_replaces_in_place_and_records_history():
    state, steps = apply('ENV B="two words" LEG=1\nENV PATH=/x:$PATH\n', start({"Env": ["PATH=/bin", "X=1"]}))
    assert state.config["Env"] == ["PATH=/x:/bin", "X=1", "B=two words", "LEG=1"]
    assert steps == [None, None]
    assert last_history(state) == {"created": "1970-01-01T00:00:00Z", "created_by": NOP + "ENV PATH=/x:/bin",
                                   "empty_layer": True}


def test_env_legacy_form():
    state, _ = apply("ENV MSG hello  world\n")
    assert state.env["MSG"] == "hello  world"


def test_label_merges_and_expands():
    state, _ = apply('ENV V=2\nLABEL a=1 "b c"="$V"\nLABEL a=3\n', start({"Labels": {"base": "x"}}))
    assert state.config["Labels"] == {"base": "x", "a": "3", "b c": "2"}


@pytest.mark.parametrize("text, ports", [
    ("EXPOSE 8000", {"8000/tcp": {}}),
    ("EXPOSE 53/udp 80/TCP", {"53/udp": {}, "80/tcp": {}}),
    ("EXPOSE 7000-7002", {"7000/tcp": {}, "7001/tcp": {}, "7002/tcp": {}}),
    ("ARG P=9000\nEXPOSE $P", {"9000/tcp": {}}),
    ('ENV PORTS="80 443"\nEXPOSE $PORTS', {"80/tcp": {}, "443/tcp": {}}),  # an unquoted expansion splits
])
def test_expose(text, ports):
    state, _ = apply(text + "\n")
    assert state.config["ExposedPorts"] == ports


def test_expose_history_and_errors():
    state, _ = apply("EXPOSE 8000\n")
    assert last_history(state)["created_by"] == NOP + "EXPOSE 8000/tcp"  # Docker: the parsed, sorted keys
    with pytest.raises(DockerfileSyntaxError, match="invalid containerPort: abc"):
        apply("EXPOSE abc\n")


def test_cmd_entrypoint_forms_and_history():
    state, _ = apply('CMD ["sh"]\n')
    assert state.config["Cmd"] == ["sh"]
    assert last_history(state)["created_by"] == NOP + 'CMD ["sh"]'
    state, _ = apply("CMD echo hi\n")
    assert state.config["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert last_history(state)["created_by"] == NOP + 'CMD ["/bin/sh" "-c" "echo hi"]'
    state, _ = apply('SHELL ["/bin/bash", "-xc"]\nENTRYPOINT exec app\n')
    assert state.config["Entrypoint"] == ["/bin/bash", "-xc", "exec app"]
    assert state.history[0]["created_by"] == "/bin/bash -xc #(nop)  SHELL [/bin/bash -xc]"  # the new shell


def test_entrypoint_resets_inherited_cmd_only():
    state, _ = apply('ENTRYPOINT ["python"]\n', start({"Cmd": ["bash"]}))
    assert "Cmd" not in state.config
    state, _ = apply('CMD ["x"]\nENTRYPOINT ["python"]\n', start({"Cmd": ["bash"]}))
    assert state.config["Cmd"] == ["x"]


def test_workdir_relative_and_created():
    state, steps = apply("WORKDIR /a\nWORKDIR b\nENV D=/d\nWORKDIR $D/e\n")
    assert state.config["WorkingDir"] == "/d/e"
    assert [s.path for s in steps if isinstance(s, ins.MkdirStep)] == ["/a", "/a/b", "/d/e"]
    assert steps[0].created_by == "/bin/sh -c #(nop) WORKDIR /a"


def test_user_volume_stopsignal_shell():
    state, _ = apply("ARG U=app\nUSER ${U}:staff\nVOLUME /data [\"/x\"]\nVOLUME [\"/logs\"]\n"
                     "STOPSIGNAL SIGQUIT\n")
    assert state.config["User"] == "app:staff"
    assert set(state.config["Volumes"]) == {"/data", "[/x]", "/logs"}  # shell form: quotes removed
    assert state.config["StopSignal"] == "SIGQUIT"
    with pytest.raises(DockerfileSyntaxError, match="Invalid signal"):
        apply("STOPSIGNAL not-a-signal!\n")


def test_healthcheck():
    state, _ = apply("HEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD curl -f x\n")
    assert state.config["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f x"], "Interval": 90 * 10**9,
                                           "Timeout": 500 * 10**6, "Retries": 3}
    state, _ = apply('HEALTHCHECK CMD ["true"]\nHEALTHCHECK NONE\n')
    assert state.config["Healthcheck"] == {"Test": ["NONE"]}
    with pytest.raises(DockerfileSyntaxError, match="invalid duration"):
        apply("HEALTHCHECK --interval=5x CMD true\n")


def test_onbuild_and_maintainer():
    state, _ = apply("ONBUILD run echo hi\nMAINTAINER me\n")
    assert state.config["OnBuild"] == ["RUN echo hi"]
    assert state.author == "me"


def test_start_stage_clears_onbuild_and_copies_config():
    base = {"OnBuild": ["RUN x"], "Env": ["A=1"]}
    state = start(base)
    assert "OnBuild" not in state.config and state.env == {"A": "1"}
    assert base["OnBuild"] == ["RUN x"]  # the base's dict is untouched


# --- ARG -----------------------------------------------------------------------------------


def test_arg_defaults_build_args_and_meta():
    state, _ = apply("ARG A=def\nARG B\nARG C\nARG D=$A-x\n",
                     start(build_args={"B": "cli"}, meta_args={"C": "global"}))
    assert dict(state.args) == {"A": "def", "B": "cli", "C": "global", "D": "def-x"}
    assert state.history[0]["created_by"] == NOP + "ARG A=def"


def test_build_arg_beats_default():
    state, _ = apply("ARG A=def\n", start(build_args={"A": "cli"}))
    assert state.args["A"] == "cli"


def test_env_beats_arg_in_expansion():
    state, steps = apply("ARG V=arg\nENV V=env\nUSER $V\n")
    assert state.config["User"] == "env"


def test_run_env_and_history_with_args():
    state, steps = apply("ARG A=1\nARG NOVAL\nENV E=2\nRUN echo $A\n",
                         start(build_args={"HTTP_PROXY": "http://p"}))
    run = steps[-1]
    assert isinstance(run, ins.RunStep)
    assert run.argv == ("/bin/sh", "-c", "echo $A")  # the shell expands RUN, not the builder
    assert run.created_by == "|1 A=1 /bin/sh -c echo $A"
    assert f"PATH={ins.DEFAULT_PATH}" in run.env and "A=1" in run.env and "E=2" in run.env
    assert "HTTP_PROXY=http://p" in run.env  # predefined proxy ARGs are passed, never recorded


def test_run_exec_form_and_shell():
    _, steps = apply('RUN ["echo", "$A"]\nSHELL ["/bin/bash", "-c"]\nRUN echo\n')
    assert steps[0].argv == ("echo", "$A") and steps[0].created_by == "echo $A"
    assert steps[2].argv == ("/bin/bash", "-c", "echo")


def test_run_heredoc_script_and_network():
    _, (step,) = apply("RUN --network=none <<EOF\necho a\necho b\nEOF\n")
    assert step.argv == ("/bin/sh", "-c", "echo a\necho b\n") and step.network == "none"
    _, (step,) = apply("RUN cat <<EOF > /f\nx\nEOF\n")
    assert step.argv[-1] == "cat <<EOF > /f\nx\nEOF\n"
    with pytest.raises(DockerfileSyntaxError, match="unsupported network mode"):
        apply("RUN --network=weird true\n")


def test_run_carries_user_and_workdir():
    _, steps = apply("USER nobody\nWORKDIR /w\nRUN id\n")
    assert steps[-1].user == "nobody" and steps[-1].workdir == "/w"


# --- COPY / ADD ----------------------------------------------------------------------------


def test_copy_destination_rules():
    _, steps = apply("WORKDIR /app\nENV D=sub\nCOPY a $D/\nCOPY --chown=${D}:1 --chmod=755 b c\nADD x .\n")
    copy1, copy2, add = steps[2:]
    assert copy1.sources == ("a",) and copy1.dest == "/app/sub/" and not copy1.is_add
    assert copy2.dest == "/app/c" and copy2.chown == "sub:1" and copy2.chmod == 0o755
    assert add.is_add and add.dest == "/app/"


def test_copy_several_sources_need_a_directory():
    with pytest.raises(DockerfileSyntaxError, match="destination must be a directory and end with a /"):
        apply("COPY a b /dst\n")


def test_copy_from_and_bad_chmod():
    _, (_, step) = apply("ARG S=build\nCOPY --from=$S /out /out\n")
    assert step.from_ == "build"
    with pytest.raises(DockerfileSyntaxError, match="invalid chmod"):
        apply("COPY --chmod=u+x a b\n")


def test_copy_heredocs():
    _, steps = apply("ENV NAME=world\nCOPY <<EOF /greeting\nhello $NAME \"q\"\nEOF\n"
                     "COPY <<'EOF' /raw\nhello $NAME\nEOF\n")
    assert steps[1].heredocs == (("EOF", 'hello world "q"\n'),) and steps[1].sources == ()
    assert steps[2].heredocs == (("EOF", "hello $NAME\n"),)
    _, (step,) = apply("COPY <<EOF /f\ncost \\$5 a\\b 'x'\nEOF\n")
    assert step.heredocs == (("EOF", "cost $5 a\\b 'x'\n"),)


# --- FROM ----------------------------------------------------------------------------------


def test_plan_from():
    df = parse_dockerfile("ARG TAG=3\nFROM python:${TAG}-slim AS build\nFROM build\nFROM scratch\n")
    meta = ins.meta_arg_values(df.meta_args, {})
    first = ins.plan_from(df.stages[0].from_instruction, meta, {})
    assert first.base == "python:3-slim" and first.stage is None
    second = ins.plan_from(df.stages[1].from_instruction, meta, {"build": 0})
    assert second.stage == 0
    assert ins.meta_arg_values(df.meta_args, {"TAG": "4"}) == {"TAG": "4"}
    with pytest.raises(DockerfileSyntaxError, match="should not be blank"):
        ins.plan_from(parse_dockerfile("FROM $NOPE\n").stages[0].from_instruction, {}, {})


# --- helpers -------------------------------------------------------------------------------

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\nbin:x:2:2::/bin:/bin/false\n"
GROUP = "root:x:0:\nbin:x:2:\napp:x:1001:\nstaff:x:50:\n"


@pytest.mark.parametrize("spec, ids", [
    ("app:app", (1000, 1001)),
    ("app:staff", (1000, 50)),
    ("bin", (2, 2)),  # the user name is looked up as the group too
    ("55", (55, 55)),
    ("55:66", (55, 66)),
    ("app:7", (1000, 7)),
])
def test_resolve_chown(spec, ids):
    assert ins.resolve_chown(spec, PASSWD, GROUP) == ids


@pytest.mark.parametrize("spec", ["nobody", "app:nogroup", "a:b:c", ""])
def test_resolve_chown_errors(spec):
    with pytest.raises(BuildError):
        ins.resolve_chown(spec, PASSWD, GROUP)


def test_app_without_same_named_group_fails_like_docker():
    with pytest.raises(BuildError, match="can't find gid for group app"):
        ins.resolve_chown("app", PASSWD, "root:x:0:\n")


@pytest.mark.parametrize("text, ns", [("30s", 30 * 10**9), ("1m30s", 90 * 10**9), ("0", 0), ("1.5s", 1_500_000_000),
                                      ("2h", 7200 * 10**9)])
def test_parse_duration(text, ns):
    assert ins.parse_duration(text) == ns


def test_go_quote_list():
    assert ins.go_quote_list(["a", 'b "c"']) == '["a" "b \\"c\\""]'


def test_run_heredoc_with_shebang_runs_its_interpreter():
    _, (step,) = apply("RUN <<EOF\n#!/usr/bin/env python3\nprint('hi')\nEOF\n")
    script = step.argv[-1]
    assert script.startswith("exec /usr/bin/env python3 /dev/fd/3 3<<'PYCTR_HEREDOC_")
    assert "#!/usr/bin/env python3\nprint('hi')\n" in script


@pytest.mark.parametrize("line, name, content", [
    ("COPY <<eo'f' /d/\n$X\neof\n", "eof", "$X\n"),  # a quote in any part: not expanded
    ("COPY <<'my file' /d/\n$X\nmy file\n", "my file", "$X\n"),
    ("COPY <<-EOF /d/\n\t$X\n\tEOF\n", "EOF", "x\n"),
])
def test_copy_heredoc_names_as_buildkit_reads_them(line, name, content):
    _, steps = apply("ENV X=x\n" + line)
    assert steps[-1].sources == () and steps[-1].heredocs == ((name, content),)
