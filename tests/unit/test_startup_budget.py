"""Start-up cost guards: what made `pyctr run` and `pyctr ps` faster must not silently come back.

Import sets are checked in a fresh interpreter (this process has imported everything already).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

RUN_PATH_MODULES = (
    "pyctr.config", "pyctr.commands", "pyctr.runtime.spec", "pyctr.runtime.state", "pyctr.runtime.process.launcher",
    "pyctr.runtime.init", "pyctr.runtime.users", "pyctr.runtime.rootfs", "pyctr.runtime.seccomp",
    "pyctr.runtime.cgroups", "pyctr.runtime.cgroups.manager", "pyctr.image.store", "pyctr.image.reference",
)


def modules_after(statement: str) -> set[str]:
    probe = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(result.stdout))


def test_hostfiles_does_not_load_the_rest_of_the_network_package():
    loaded = modules_after("import pyctr.runtime.network.hostfiles")
    assert not loaded & {"socket", "pyctr.runtime.network.loopback", "pyctr.runtime.network.veth",
                         "pyctr.runtime.network.publish", "pyctr.runtime.network._rtnl"}


def test_image_store_and_seccomp_do_not_load_hashlib():
    loaded = modules_after("import pyctr.image.store, pyctr.runtime.seccomp")
    assert "hashlib" not in loaded and "_hashlib" not in loaded


def test_every_public_network_name_still_resolves():
    import pyctr.runtime.network as network

    for name in network.__all__:
        assert getattr(network, name) is not None, name
    with pytest.raises(AttributeError):
        network.no_such_name  # noqa: B018


def test_the_seccomp_program_is_compiled_once_per_profile_and_caps(tmp_path, monkeypatch):
    """The cache that spares `run` the compile (and its hashlib-free key) must still tell profiles apart."""
    from pyctr.runtime import seccomp

    compiled: list[tuple] = []

    def compile_bpf(profile: dict, caps: frozenset[str]) -> bytes:
        compiled.append((json.dumps(profile, sort_keys=True), sorted(caps)))
        return f"program {len(compiled)}".encode()

    monkeypatch.setattr(seccomp, "compile_bpf", compile_bpf)
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    other = {**profile, "defaultAction": "SCMP_ACT_KILL"}
    first = seccomp.cached_bpf(tmp_path, profile, frozenset({"CAP_CHOWN"}))
    assert seccomp.cached_bpf(tmp_path, profile, frozenset({"CAP_CHOWN"})) == first == b"program 1"
    assert seccomp.cached_bpf(tmp_path, other, frozenset({"CAP_CHOWN"})) == b"program 2"
    assert seccomp.cached_bpf(tmp_path, profile, frozenset({"CAP_KILL"})) == b"program 3"
    assert len(compiled) == 3 and len(list(tmp_path.glob("*.bpf"))) == 3


def _auto_doc(cls: type) -> bool:
    return (cls.__doc__ or "").startswith(f"{cls.__name__}(")


def test_run_path_dataclasses_have_docstrings():
    """A dataclass without one makes Python build its signature with inspect at import: ~1 ms each."""
    import importlib

    undocumented = []
    for module_name in RUN_PATH_MODULES:
        module = importlib.import_module(module_name)
        undocumented += [f"{module_name}.{name}" for name, value in vars(module).items()
                         if isinstance(value, type) and dataclasses.is_dataclass(value)
                         and value.__module__ == module_name and _auto_doc(value)]
    assert not undocumented


def test_sys_exit_of_a_command_keeps_its_code_and_output(tmp_path):
    """The CLI leaves by os._exit after a command's sys.exit too: the code and the flushed message survive."""
    probe = "from pyctr.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", probe, "--root", str(tmp_path), "rm", "no-such-container"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1  # rm reports each failure, then sys.exit(1) as docker-cli
    assert "No such container: no-such-container" in result.stderr


def test_sys_exit_still_raises_when_main_is_called_with_arguments(tmp_path):
    from pyctr.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["--root", str(tmp_path), "rm", "no-such-container"])
    assert caught.value.code == 1
