"""Fixtures shared by unit and integration tests: one real registry per session, seeded with real images.

`registry` starts Debian's docker-registry on loopback and pushes every seed image (tests/fixtures/seed.py) with
skopeo. The images are cached OCI layouts, so with a warm cache the whole fixture takes a few seconds; a cold
cache builds them first (minutes, for the python image).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures import seed
from tests.fixtures.registry import RegistryProcess, start_registry


@dataclass
class SeededRegistry:
    """The session registry: `.host` "127.0.0.1:PORT", `.url` "http://127.0.0.1:PORT",
    `.images` {short name: full reference}, e.g. images["busybox"] == "127.0.0.1:PORT/library/busybox:latest"."""

    host: str
    url: str
    images: dict[str, str] = field(default_factory=dict)
    process: RegistryProcess | None = None

    def reference(self, name: str) -> str:
        """The full reference of a seed image (KeyError naming the known ones)."""
        try:
            return self.images[name]
        except KeyError:
            raise KeyError(f"no seed image {name!r}; known: {sorted(self.images)}") from None


_build_error: list[str] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build missing seed images before any test starts, so a cold cache (minutes) does not hit a test's timeout."""
    if any("registry" in getattr(item, "fixturenames", ()) for item in session.items) and seed.missing_layouts():
        try:
            seed.ensure_layouts(log=lambda msg: print(f"\n{msg}", flush=True))
        except seed.SeedBuildError as e:
            _build_error.append(str(e))


@pytest.fixture(scope="session")
def seed_layouts() -> dict[str, Path]:
    """{layout name: Path} of the cached OCI layouts, built first if missing (fails, never skips, if it cannot)."""
    if _build_error:
        pytest.fail(f"cannot build seed images: {_build_error[0]}", pytrace=False)
    try:
        return seed.ensure_layouts(log=print)
    except seed.SeedBuildError as e:
        pytest.fail(f"cannot build seed images: {e}", pytrace=False)


@pytest.fixture(scope="session")
def registry(seed_layouts, tmp_path_factory) -> Iterator[SeededRegistry]:
    """One registry for the session with all seed images pushed (see tests/fixtures/seed.py SEED_IMAGES)."""
    workdir = tmp_path_factory.mktemp("registry")
    with start_registry(workdir) as proc:
        try:
            images = seed.push_images(proc.host)
        except seed.SeedBuildError as e:
            pytest.fail(f"{e}\nregistry log:\n{proc.log()}", pytrace=False)
        yield SeededRegistry(proc.host, proc.url, images, proc)
    shutil.rmtree(workdir / "storage", ignore_errors=True)


@pytest.fixture
def registry_factory(tmp_path) -> Iterator[Callable[..., RegistryProcess]]:
    """`make(extra_config=None, push=())`: an extra, empty (or partly seeded) registry, stopped after the test.

    For push tests and auth variants, e.g. make({"auth": {"htpasswd": {"realm": "r", "path": str(file)}}}).
    `push` names seed images to push first (only works without auth).
    """
    started: list[RegistryProcess] = []

    def make(extra_config: dict | None = None, push: tuple[str, ...] = ()) -> RegistryProcess:
        proc = start_registry(tmp_path / f"registry-{len(started)}", extra_config)
        started.append(proc)
        if push:
            seed.push_images(proc.host, push)
        return proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture
def empty_registry(registry_factory) -> RegistryProcess:
    """A fresh registry with nothing in it (for push tests), stopped after the test."""
    return registry_factory()
