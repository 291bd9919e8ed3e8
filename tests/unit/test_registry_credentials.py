"""Credentials live in Docker's config.json ($DOCKER_CONFIG respected), in Docker's format, both ways."""

import base64
import json

import pytest

from pyctr.image import auth


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dockercfg"))
    return tmp_path / "dockercfg" / "config.json"


def test_store_writes_docker_format_and_keeps_other_keys(docker_config):
    docker_config.parent.mkdir()
    docker_config.write_text(json.dumps({"psFormat": "table {{.ID}}", "auths": {"other:1": {"auth": "eDp5"}}}))
    auth.store_credentials("127.0.0.1:5000", "alice", "pa:ss")
    doc = json.loads(docker_config.read_text())
    assert doc["psFormat"] == "table {{.ID}}"
    assert doc["auths"]["other:1"] == {"auth": "eDp5"}
    assert base64.b64decode(doc["auths"]["127.0.0.1:5000"]["auth"]).decode() == "alice:pa:ss"
    assert docker_config.stat().st_mode & 0o777 == 0o600


def test_docker_written_entries_are_read(docker_config):
    docker_config.parent.mkdir()
    docker_config.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hubuser:hubpw").decode()},
        "http://my.reg:5000/v2/": {"auth": base64.b64encode(b"u:p").decode()},
        "plain.reg": {"username": "x", "password": "y"},
    }}))
    assert auth.load_credentials("docker.io") == ("hubuser", "hubpw")
    assert auth.load_credentials("registry-1.docker.io") == ("hubuser", "hubpw")
    assert auth.load_credentials("my.reg:5000") == ("u", "p")
    assert auth.load_credentials("plain.reg") == ("x", "y")
    assert auth.load_credentials("unknown.reg") is None


def test_docker_hub_key_is_dockers(docker_config):
    auth.store_credentials(None, "a", "b")
    assert "https://index.docker.io/v1/" in json.loads(docker_config.read_text())["auths"]
    assert auth.load_credentials("docker.io") == ("a", "b")


def test_remove(docker_config):
    auth.store_credentials("r:1", "a", "b")
    assert auth.remove_credentials("r:1") is True
    assert auth.load_credentials("r:1") is None
    assert auth.remove_credentials("r:1") is False


def test_missing_file_means_no_credentials(docker_config):
    assert auth.load_credentials("docker.io") is None


def test_corrupt_file_is_a_clear_error(docker_config):
    from pyctr.errors import ConfigError

    docker_config.parent.mkdir()
    docker_config.write_text("{nope")
    with pytest.raises(ConfigError, match="config.json"):
        auth.load_credentials("x")


def test_normalize_server():
    assert auth.normalize_server("https://my.reg:5000/v2/") == "my.reg:5000"
    assert auth.server_key("index.docker.io") == "https://index.docker.io/v1/"
    assert auth.server_key("127.0.0.1:5000") == "127.0.0.1:5000"
