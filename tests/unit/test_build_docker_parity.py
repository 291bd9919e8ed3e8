"""Build details compared with Docker 20.10's legacy builder (issue 19 items 7 and 11), values recorded here."""

from __future__ import annotations

import gzip
import io
import tarfile

from pyctr.build import instructions as ins
from pyctr.build.context import BuildContext, read_stdin_context
from pyctr.build.executor import with_cli_labels
from pyctr.build.parser import parse_dockerfile


def apply(text: str, config=None):
    state = ins.start_stage(config or {}, (), stage_index=0, stage_name=None, build_args={}, meta_args={},
                            created="1970-01-01T00:00:00Z")
    for inst in parse_dockerfile("FROM scratch\n" + text).stages[0].instructions:
        state, _ = ins.apply_instruction(state, inst)
    return state


def test_history_after_shell_shows_the_new_shell():
    # Docker 20.10 `docker history --no-trunc` of FROM busybox / SHELL ["/bin/ash","-eo","pipefail","-c"] / CMD x:
    docker = ["/bin/ash -eo pipefail -c #(nop)  SHELL [/bin/ash -eo pipefail -c]",
              '/bin/ash -eo pipefail -c #(nop)  CMD ["/bin/ash" "-eo" "pipefail" "-c" "x"]',
              "/bin/ash -eo pipefail -c #(nop) WORKDIR /w"]
    state = apply('SHELL ["/bin/ash", "-eo", "pipefail", "-c"]\nCMD x\n')
    _state, step = ins.apply_instruction(state, parse_dockerfile("FROM scratch\nWORKDIR /w\n").stages[0]
                                         .instructions[0])
    assert [h["created_by"] for h in state.history] + [step.created_by] == docker


def test_expose_is_recorded_sorted_as_docker_does():
    # Docker: `EXPOSE 8080 443 80/udp 443` -> history "EXPOSE 443/tcp 80/udp 8080/tcp", ExposedPorts sorted keys.
    state = apply("EXPOSE 8080 443 80/udp 443\n")
    assert state.history[-1]["created_by"] == "/bin/sh -c #(nop)  EXPOSE 443/tcp 80/udp 8080/tcp"
    assert list(state.config["ExposedPorts"]) == ["443/tcp", "80/udp", "8080/tcp"]


def test_cmd_and_entrypoint_clear_args_escaped():
    # Docker 20.10 on Linux: resolveCmdLine returns argsEscaped=false, so CMD/ENTRYPOINT drop an inherited
    # "ArgsEscaped": true (omitempty: the key disappears); other instructions keep the base's value.
    base = {"Cmd": ["sh"], "ArgsEscaped": True}
    assert "ArgsEscaped" not in apply("CMD echo hi\n", base).config
    assert "ArgsEscaped" not in apply('ENTRYPOINT ["x"]\n', base).config
    assert apply("ENV A=1\n", base).config["ArgsEscaped"] is True


def test_cli_labels_are_label_steps_at_the_end_of_the_target():
    # Docker: `--label b=$HOME --label a=1` -> "Step 3/4 : LABEL a=1", "Step 4/4 : LABEL b=$HOME" (sorted, one
    # step each, never expanded), on the target stage only.
    dockerfile = parse_dockerfile("FROM scratch AS one\nENV HOME=/root\nFROM scratch AS two\nENV X=1\n")
    labelled = with_cli_labels(dockerfile, 0, {"b": "$HOME \"q\" 'x'", "a": "1"})
    extra = labelled.stages[0].instructions[1:]
    assert [i.text for i in extra] == ["LABEL a=1", "LABEL b=$HOME \"q\" 'x'"]
    assert labelled.stages[1] == dockerfile.stages[1]
    state = apply("ENV HOME=/root\n")
    for inst in extra:
        state, _ = ins.apply_instruction(state, inst)
    assert state.config["Labels"] == {"a": "1", "b": "$HOME \"q\" 'x'"}
    assert state.history[-1]["created_by"] == "/bin/sh -c #(nop)  LABEL b=$HOME \"q\" 'x'"


def test_context_tar_size_is_what_dockers_cli_sends(tmp_path):
    # Docker 20.10: a context holding only a 30-byte Dockerfile -> "Sending build context to Docker daemon  2.048kB"
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo hello\n"[:30])
    assert BuildContext.open(tmp_path).tar_size() == 2048
    # + a directory with a 600-byte file and a symlink: 512 (dir) + 512+1024 (file) + 512 (link)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x" * 600)
    (tmp_path / "d" / "l").symlink_to("f")
    assert BuildContext.open(tmp_path).tar_size() == 2048 + 512 + 1536 + 512


def test_stdin_is_a_dockerfile_unless_it_is_an_archive(tmp_path):
    text = "FROM busybox\n"
    read = read_stdin_context(io.BytesIO(text.encode()), tmp_path / "a")
    assert read.dockerfile_text == text and read.sent_size == 2048  # the CLI tars it up: 2.048kB
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text.encode()))
    packed = gzip.compress(buf.getvalue())
    (tmp_path / "b").mkdir()
    read = read_stdin_context(io.BytesIO(packed), tmp_path / "b")
    assert read.dockerfile_text is None and read.sent_size == len(packed)  # raw bytes, as the CLI counts them
    assert (tmp_path / "b" / "Dockerfile").read_text() == text
