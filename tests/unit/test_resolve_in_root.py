"""The one path resolver inside a root (rootfs, cp, build staging) and the one overlay mount."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pyctr.build.staging import resolve_in_root as staging_resolve
from pyctr.errors import BuildError, RuntimeFailure
from pyctr.runtime import rootfs, syscalls
from pyctr.runtime.rootfs import OPENAT2_RETRIES, host_path_in_root, mount_overlay, resolve_in_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An image-like root: etc/real, an absolute link into it, a `..` escape, a dangling link."""
    top = tmp_path / "root"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "real").write_text("inside\n")
    os.symlink("/etc/real", top / "etc" / "abs")
    os.symlink("../../../../../../etc", top / "up")
    os.symlink("/new/place", top / "dangling")
    return top


def _fd_host_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _root_fd(root: Path) -> int:
    return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def test_absolute_symlink_and_dotdot_are_clamped_to_the_root(root: Path) -> None:
    fd = _root_fd(root)
    try:
        assert _fd_host_path(resolve_in_root(fd, "/etc/abs")) == str(root / "etc" / "real")
        assert _fd_host_path(resolve_in_root(fd, "/up")) == str(root / "etc")  # not the host's /etc
        assert _fd_host_path(resolve_in_root(fd, "../../../etc/real")) == str(root / "etc" / "real")
        with pytest.raises(FileNotFoundError):  # the host has /etc/passwd; the root does not
            resolve_in_root(fd, "/up/passwd")
    finally:
        os.close(fd)


def test_follow_false_refuses_symlinks_and_o_nofollow_opens_the_link(root: Path) -> None:
    fd = _root_fd(root)
    try:
        with pytest.raises(OSError) as refused:
            resolve_in_root(fd, "/etc/abs", follow=False)
        assert refused.value.errno == errno.ELOOP
        link = resolve_in_root(fd, "/etc/abs", flags=os.O_NOFOLLOW)
        try:
            assert os.readlink("", dir_fd=link) == "/etc/real"
        finally:
            os.close(link)
    finally:
        os.close(fd)


def test_magic_links_are_refused() -> None:
    """/proc/self/root is a magic link to the host's /: never followed, even inside a root."""
    fd = os.open("/proc/self", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with pytest.raises(OSError) as refused:
            resolve_in_root(fd, "root/etc")
        assert refused.value.errno == errno.ELOOP
    finally:
        os.close(fd)


def test_eagain_is_retried_then_given_up(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = syscalls.openat2
    calls: list[str] = []

    def flaky(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
        calls.append(path)
        if len(calls) < 3:
            raise OSError(errno.EAGAIN, "rename race", path)
        return real(dirfd, path, flags, resolve, mode)

    monkeypatch.setattr(syscalls, "openat2", flaky)
    fd = _root_fd(root)
    try:
        assert _fd_host_path(resolve_in_root(fd, "/etc/real")) == str(root / "etc" / "real")
        assert len(calls) == 3
        calls.clear()

        def always_racing(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
            calls.append(path)
            raise OSError(errno.EAGAIN, "rename race", path)

        monkeypatch.setattr(syscalls, "openat2", always_racing)
        with pytest.raises(RuntimeFailure, match="keeps changing"):
            resolve_in_root(fd, "/etc/real")
        assert len(calls) == OPENAT2_RETRIES
    finally:
        os.close(fd)


def test_host_path_of_missing_and_dangling_paths_stays_inside(root: Path) -> None:
    assert host_path_in_root(root, "/etc/abs") == root / "etc" / "real"
    assert host_path_in_root(root, "/up/new/file") == root / "etc" / "new" / "file"
    assert host_path_in_root(root, "/dangling") == root / "new" / "place"
    assert host_path_in_root(root, "/dangling/below") == root / "new" / "place" / "below"
    assert host_path_in_root(root, "/") == root


def test_build_staging_uses_it_and_reports_loops(root: Path) -> None:
    assert staging_resolve(root, "/up/real") == root / "etc" / "real"
    os.symlink("loop", root / "loop")
    with pytest.raises(BuildError, match="too many levels of symbolic links"):
        staging_resolve(root, "/loop")
    os.symlink("/dangling-loop", root / "dangling-loop")
    with pytest.raises(BuildError, match="too many levels of symbolic links"):
        staging_resolve(root, "/dangling-loop/x")


def _record_mounts(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    mounts: list[tuple] = []
    monkeypatch.setattr(syscalls, "mount",
                        lambda source, target, fstype, flags, data: mounts.append((target, flags, data, os.getcwd())))
    return mounts


def test_overlay_lists_the_top_layer_first_and_is_read_only_without_upper(monkeypatch: pytest.MonkeyPatch) -> None:
    mounts = _record_mounts(monkeypatch)
    mount_overlay(["/l/base", "/l/top"], "/c/upper", "/c/work", "/c/merged")
    mount_overlay(["/l/base", "/l/top"], None, None, "/view")
    assert mounts[0][:3] == ("/c/merged", 0, "lowerdir=/l/top:/l/base,upperdir=/c/upper,workdir=/c/work")
    assert mounts[1][:3] == ("/view", syscalls.MS_RDONLY, "lowerdir=/l/top:/l/base")
    with pytest.raises(RuntimeFailure):
        mount_overlay([], None, None, "/view")


def test_overlay_long_layer_lists_go_relative_and_cwd_is_restored(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / ("d" * 200)
    layers = [base / f"layer-{i:02d}" for i in range(40)]
    for layer in layers:
        layer.mkdir(parents=True)
    mounts = _record_mounts(monkeypatch)
    before = os.getcwd()
    mount_overlay([str(d) for d in layers], None, None, "/view")
    (_, _, data, cwd_during) = mounts[0]
    assert len(data) <= 4096 and str(base) not in data
    assert data.startswith(f"lowerdir={layers[-1].name}:")
    assert cwd_during == str(base) and os.getcwd() == before
    assert rootfs.overlay_options(["a"], "u", "w") == "lowerdir=a,upperdir=u,workdir=w"
