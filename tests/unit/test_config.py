"""Configuration: defaults, environment, and one-line errors naming file and key."""

from pathlib import Path

import pytest

from pyctr.config import DEFAULT_SUBNET, load_config
from pyctr.errors import ConfigError


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return str(p)


def test_defaults_when_file_absent(tmp_path, monkeypatch):
    monkeypatch.delenv("PYCTR_CONFIG", raising=False)
    monkeypatch.delenv("PYCTR_ROOT", raising=False)
    cfg = load_config(config_file=None)
    assert str(cfg.root) == "/var/lib/pyctr"
    assert cfg.network.subnet == DEFAULT_SUBNET
    assert cfg.registry_mirrors == ()


def test_env_root_and_explicit_root(tmp_path, monkeypatch):
    monkeypatch.setenv("PYCTR_ROOT", str(tmp_path / "envroot"))
    assert load_config().root == tmp_path / "envroot"
    assert load_config(root=str(tmp_path / "opt")).root == tmp_path / "opt"


def test_full_file(tmp_path):
    path = write(tmp_path, """
registry_mirrors = ["http://127.0.0.1:5000/"]
insecure_registries = ["127.0.0.1:5000"]
[network]
bridge = "pyctrtest0"
subnet = "10.78.0.0/24"
dns = ["192.0.2.53"]
""")
    cfg = load_config(config_file=path)
    assert cfg.registry_mirrors == ("http://127.0.0.1:5000",)
    assert cfg.insecure_registries == ("127.0.0.1:5000",)
    assert cfg.network.bridge == "pyctrtest0"
    assert cfg.network.subnet == "10.78.0.0/24"
    assert cfg.network.dns == ("192.0.2.53",)


@pytest.mark.parametrize("text,key", [
    ('registry_mirrors = "x"', "registry_mirrors"),
    ('registry_mirrors = ["ftp://x"]', "registry_mirrors"),
    ('insecure_registries = [1]', "insecure_registries"),
    ('bogus = 1', "bogus"),
    ('[network]\nsubnet = "10.0.0.1/8"', "network.subnet"),
    ('[network]\nsubnet = "fd00::/64"', "network.subnet"),
    ('[network]\nbridge = "a-very-long-bridge-name"', "network.bridge"),
    ('[network]\ncolour = "blue"', "network.colour"),
    ('[network]\ndns = ["not-an-ip"]', "network.dns"),
    ('registry_mirrors = [', "invalid TOML"),
])
def test_bad_values_name_file_and_key(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(config_file=path)
    assert path in str(e.value) and key in str(e.value)
    assert "\n" not in str(e.value)


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError):
        load_config(config_file=str(tmp_path / "missing.toml"))
