"""`--format` through the real CLI: every printing command speaks Docker's template language and tables.

Expected outputs are Docker's (docker-cli 20.10 formatter, Go text/template), recorded here: the layout of a
custom table, the `upper` function, Docker's error for a missing field and its exit code.
"""

from __future__ import annotations

import json
import re

import pytest

from pyctr import __version__


@pytest.fixture
def busybox(pyctr):
    pyctr("pull", "-q", "busybox", check=True, timeout=120)
    return pyctr


@pytest.fixture
def container(busybox):
    """A running container with an env var and a label, removed after the test."""
    name = "fmt-c1"
    busybox("rm", "-f", name)
    busybox("run", "-d", "--name", name, "--network", "none", "-e", "GREETING=hi", "-l", "tier=web", "busybox",
            "sleep", "60", check=True)
    yield name
    busybox("rm", "-f", name, timeout=60)


def test_images_custom_table_and_functions(busybox):
    image_id = busybox("image", "inspect", "-f", "{{.Id}}", "busybox", check=True).stdout.strip()[7:19]
    size = json.loads(busybox("images", "busybox", "--format", "json", check=True).stdout)["Size"]
    # issue 14: pyctr printed the word "table" here; Docker prints an aligned table with its header
    out = busybox("images", "busybox", "--format", "table {{.ID}}\\t{{.Size}}", check=True).stdout
    assert out == f"IMAGE ID       SIZE\n{image_id}   {size}\n"
    # and `upper` failed in `images` while `ps` knew it
    assert busybox("images", "busybox", "--format", "{{upper .Repository}}", check=True).stdout == "BUSYBOX\n"
    assert busybox("images", "busybox", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout == (
        "busybox:latest\n")


def test_images_missing_field_is_dockers_error(busybox):
    r = busybox("images", "busybox", "--format", "{{.Nope}}")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.strip().endswith('template parsing error: template: :1:2: executing "" at <.Nope>: '
                                     "can't evaluate field Nope in type *formatter.imageContext")


def test_ps_formats(busybox, container):
    ps = ("ps", "-a", "--filter", f"name=^{container}$")
    out = busybox(*ps, "--format", "table {{.Names}}\\t{{.Label \"tier\"}}\\t{{.Platform}}", check=True).stdout
    # header: field names through docker-cli's header map; `.Label "tier"` heads its column "tier"
    assert out.splitlines()[0] == "NAMES     tier      PLATFORM"
    assert re.fullmatch(r"fmt-c1 {4}web {7}linux/[a-z0-9]+(/v\d)?", out.splitlines()[1]), out
    row = json.loads(busybox(*ps, "--format", "json", check=True).stdout)
    assert row["Names"] == container and row["Platform"]["os"] == "linux" and "architecture" in row["Platform"]
    assert list(row) == sorted(row)  # docker-cli's MarshalJSON: a Go map, keys sorted
    assert busybox(*ps, "--format", "{{json .}}", check=True).stdout == busybox(*ps, "--format", "json").stdout
    assert busybox(*ps, "--format", "{{range $i, $e := split .Names \"-\"}}{{$i}}:{{$e}} {{end}}",
                   check=True).stdout == "0:fmt 1:c1 \n"
    r = busybox(*ps, "--format", "{{.Nope}}")
    assert r.returncode == 1 and "can't evaluate field Nope in type *formatter.ContainerContext" in r.stderr


def test_inspect_templates(busybox, container):
    out = busybox("inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", container, check=True).stdout
    assert "GREETING=hi\n" in out and out.endswith("\n\n")  # println per item, then inspect's own newline
    assert busybox("inspect", "-f", '{{if eq .State.Status "running"}}up{{else}}down{{end}} {{.Config.Labels.tier}}',
                   container, check=True).stdout == "up web\n"
    assert busybox("inspect", "-f", '{{index .Config.Labels "tier"}}|{{len .Config.Env}}|{{printf "%05d" 42}}',
                   container, check=True).stdout.startswith("web|")
    # Docker re-runs a failing template on the JSON map with missingkey=error: the error names the key
    r = busybox("inspect", "-f", "{{.Nope}}", container)
    assert (r.returncode, r.stdout) == (1, "\n")
    assert 'executing "" at <.Nope>: map has no entry for key "Nope"' in r.stderr
    r = busybox("inspect", "-f", "{{.Id", container)
    assert r.returncode == 64 and "template parsing error: template: :1: unclosed action" in r.stderr


def test_stats_custom_table(busybox, container):
    out = busybox("stats", "--no-stream", "--format", "table {{.Name}}\\t{{.PIDs}}", container, check=True).stdout
    assert out.splitlines() == ["NAME      PIDS", "fmt-c1    1"]


def test_version_and_info_templates(pyctr):
    assert pyctr("version", "--format", "{{.Server.Version}}", check=True).stdout == f"{__version__}\n"
    assert pyctr("version", "--format", "{{.Client.Version}}", check=True).stdout == f"{__version__}\n"
    doc = json.loads(pyctr("version", "--format", "json", check=True).stdout)
    assert doc["Server"]["Version"] == __version__ and doc["Client"]["ApiVersion"]
    info = json.loads(pyctr("info", "--format", "{{json .}}", check=True).stdout)
    assert info["DockerRootDir"] == str(pyctr.root) and info["Driver"] == "overlay2"
    assert pyctr("info", "--format", "{{.DockerRootDir}}", check=True).stdout == f"{pyctr.root}\n"
    r = pyctr("info", "--format", "{{.Root")
    assert r.returncode == 64 and "template parsing error" in r.stderr
